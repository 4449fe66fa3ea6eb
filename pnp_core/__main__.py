"""``python -m pnp_core <subcommand>``: same as the ``pnp`` console script."""

from pnp_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
