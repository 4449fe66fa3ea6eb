"""Validate config files (merged left to right, like Snakemake's --configfile)
against the schema, fill defaults and print the resolved config as YAML."""

from __future__ import annotations

HELP = "validate config files against the schema and print the resolved config"


def add_arguments(parser) -> None:
    parser.add_argument("configfiles", nargs="+", help="config.yaml [preset.yaml …]")
    parser.add_argument("--schema", default=None,
                        help="schema path (default: the one shipped with pnp_core)")


def run(args) -> int:
    import yaml

    from pnp_core.config import load_yaml, merge, validate_config

    config: dict = {}
    for path in args.configfiles:
        config = merge(config, load_yaml(path))
    validate_config(config, args.schema)
    print(yaml.safe_dump(config, sort_keys=False), end="")
    return 0
