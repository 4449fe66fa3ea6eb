"""List the registered synthesizers (with their parameter spaces) and features."""

from __future__ import annotations

HELP = "list registered synthesizers, their parameters, and features"


def add_arguments(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[],
                        help="module to import first (registers user classes); repeatable")


def run(args) -> int:
    from pnp_core.config import import_plugins
    from pnp_core.features import FEATURES
    from pnp_core.synth import SYNTHS

    import_plugins({"plugins": args.plugin})
    for name in SYNTHS.names():
        cls = SYNTHS.get(name)
        print(f"synth {name} ({cls.__module__}.{cls.__qualname__})")
        print(cls.space.describe())
    print("features: " + ", ".join(FEATURES.names()))
    return 0
