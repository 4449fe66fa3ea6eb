"""Config loading and validation: JSON schema with defaults, then semantic checks.

Errors name the offending key as a dotted path (``synths.ftm.dataset.bins``)
and say what is allowed, so a wrong config fails at once, before any job runs.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml
from jsonschema import Draft202012Validator, validators


from pnp_core.errors import ConfigError  # noqa: F401  (re-exported)


def _with_defaults(cls):
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


_Validator = _with_defaults(Draft202012Validator)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        keys = ", ".join(repr(_key(path + [e])) for e in extra)
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"config key {keys} is not allowed (unknown key){hint}"
    if error.validator == "enum":
        return f"config key {_key(path)!r}: {error.instance!r} is not one of {error.validator_value}"
    return f"config key {_key(path)!r}: {error.message}"


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path``; a missing file or a syntax error names the file and line."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
    return data


def merge(base: dict, override: Mapping) -> dict:
    """Recursive dict merge (like Snakemake's --configfile layering); returns a new dict."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: the schema shipped with the package (a link to workflow/schemas/config.schema.yaml)
SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


def _check(instance, schema: dict, what: str, prefix=()) -> None:
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    for e in errors:
        e.absolute_path.extendleft(reversed(prefix))
    if errors:
        raise ConfigError(f"invalid {what}:\n  " + "\n  ".join(_describe(e) for e in errors))


def validate_config(config: dict, schema_path: str | Path | None = None) -> dict:
    """Validate ``config`` in place (filling defaults) and run the semantic checks.

    Returns the same dict. Raises :class:`ConfigError` naming the bad key(s).
    """
    _check(config, load_yaml(schema_path or SCHEMA_PATH), "config")
    check_semantics(config)
    return config


def validate_entry(entry: dict, name: str = "<entry>") -> dict:
    """Validate one ``synths.<name>`` entry (as passed to the CLI), filling defaults."""
    schema = load_yaml(SCHEMA_PATH)
    sub = {**schema["$defs"]["synth"], "$defs": schema["$defs"]}
    given = set(entry)
    _check(entry, sub, f"entry synths.{name}", prefix=("synths", name))
    # a rule's slice leaves out sections its stage does not use: their defaults (e.g. a
    # JTFS too large for a short sound) are not this stage's business
    check_semantics({"synths": {name: entry}}, sections=given)
    return entry


def import_plugins(config: Mapping) -> None:
    """Import the modules listed under ``plugins`` (they register user classes).

    Modules are found on ``sys.path`` and, like ``python -m``, in the current working
    directory, which for every ``pnp`` process Snakemake starts is the workflow's
    directory: ``plugins: [mylab.synths]`` finds ``./mylab/synths.py`` there without
    installing it or setting ``PYTHONPATH``.
    """
    import os
    import sys

    if config.get("plugins") and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for module in config.get("plugins", []):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"config key 'plugins': cannot import {module!r}: {err}") from None


def _check_kwargs(cls, settings: Mapping, key: str, injected=()) -> None:
    params = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for name in settings:
        if name not in params or name in injected:
            allowed = [p for p in params if p not in injected]
            raise ConfigError(f"config key '{key}.{name}' is not a setting of {cls.__name__} "
                              f"(allowed: {', '.join(allowed)})")


def _culprit(message: str, names) -> str | None:
    """The setting an error message is about: the only one it mentions as ``name=…``,
    else the only one it mentions at all; None when that is ambiguous."""
    for pattern in (r"(?<![\w]){}\s*=", r"(?<![\w]){}(?![\w])"):
        hits = [n for n in names if re.search(pattern.format(re.escape(str(n))), message)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            return None
    return None


def _refuse(err: Exception, key: str, names) -> ConfigError:
    name = _culprit(str(err), names)
    return ConfigError(f"config key '{key}.{name}' is invalid: {err}" if name
                       else f"config key '{key}' is invalid: {err}")


def _check_integers(cls, settings: Mapping, key: str) -> None:
    """Settings annotated ``int`` (or ``int | None``) must be integers: the classes call
    ``int()`` on them, which would silently turn 8192.5 into 8192."""
    try:
        params = inspect.signature(cls, eval_str=True).parameters
    except Exception:  # unresolvable annotations in a plugin: nothing to check here
        return
    for name, value in settings.items():
        ann = params[name].annotation if name in params else None
        args = typing.get_args(ann) if isinstance(ann, types.UnionType) or \
            typing.get_origin(ann) is typing.Union else (ann,)
        if int not in args or (value is None and type(None) in args):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not float(value).is_integer():
            raise ConfigError(f"config key '{key}.{name}' must be an integer, got {value!r}")


def check_semantics(config: dict, sections=None) -> None:
    """Checks a schema cannot express: registry names, settings, fold sizes.

    Every synthesizer, dataset design and feature configured is built (cheaply: a
    feature validates its settings with ``check_settings``, without its filter bank),
    so any value the classes would refuse is refused here, naming the full key.
    ``sections`` (default: all) limits the dataset and feature checks to the entry
    sections named (a rule's slice of an entry).
    """
    from pnp_core.synth.datasets import GridDesign
    from pnp_core.features import FEATURES
    from pnp_core.synth import SYNTHS

    import_plugins(config)
    for name, entry in config["synths"].items():
        entry.setdefault("type", name)
        base = f"synths.{name}"
        try:
            cls = SYNTHS.get(entry["type"])
        except KeyError as err:
            raise ConfigError(f"config key '{base}.type': {err.args[0]}") from None
        _check_kwargs(cls, entry["settings"], f"{base}.settings")
        _check_integers(cls, entry["settings"], f"{base}.settings")
        try:
            synth = cls(**entry["settings"])
        except (ValueError, TypeError) as err:
            raise _refuse(err, f"{base}.settings", entry["settings"]) from None
        if sections is None or "dataset" in sections:
            try:
                GridDesign(**entry["dataset"]).fold_sizes(len(synth.space))
            except (ValueError, TypeError) as err:
                raise _refuse(err, f"{base}.dataset", entry["dataset"]) from None
        if sections is not None and "feature" not in sections:
            continue
        try:
            fcls = FEATURES.get(entry["feature"]["type"])
        except KeyError as err:
            raise ConfigError(f"config key '{base}.feature.type': {err.args[0]}") from None
        fkey, fset = f"{base}.feature.settings", entry["feature"]["settings"]
        _check_kwargs(fcls, fset, fkey, injected=("n_samples",))
        _check_integers(fcls, fset, fkey)
        try:
            fcls.check_settings(n_samples=synth.n_samples, **fset)
        except (ValueError, TypeError) as err:
            raise _refuse(err, fkey, fset) from None


def synth_entry(config: Mapping, name: str) -> dict:
    """The validated entry of synthesizer ``name`` (a plain dict, JSON-serialisable)."""
    try:
        return dict(config["synths"][name])
    except KeyError:
        raise ConfigError(f"no synthesizer {name!r} in config key 'synths' "
                          f"(have: {', '.join(config['synths'])})") from None


def resolve_device(name: str = "auto") -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda' but no CUDA device is available")
    return torch.device(name)
