"""A tiny name → class registry, shared by synthesizers and features.

A user plugs in a new synthesizer or feature by decorating its class with the
registry's :meth:`Registry.register`; config then refers to it by name.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@REGISTRY.register("name")``."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered "
                                 f"(by {self._classes[name].__qualname__})")
            self._classes[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: "
                           f"{', '.join(self.names()) or '(none)'}") from None

    def create(self, name: str, **settings: Any) -> T:
        """Instantiate the class registered under ``name`` with ``settings``."""
        cls = self.get(name)
        try:
            return cls(**settings)
        except TypeError as err:
            raise TypeError(f"bad settings for {self.kind} {name!r}: {err}") from None
