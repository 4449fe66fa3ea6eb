"""Subcommands of the ``pnp`` CLI, one module each; shared argument helpers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_entry(text: str) -> dict:
    """A synth entry given as JSON text, or as ``@path`` to a JSON/YAML file."""
    if text.startswith("@"):
        import yaml

        return yaml.safe_load(Path(text[1:]).read_text())
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--entry is not valid JSON: {err}") from None
    if not isinstance(entry, dict):
        raise argparse.ArgumentTypeError("--entry must be a JSON object")
    return entry


def spec_from_args(args):
    """The :class:`~pnp_core.spec.RunSpec` of ``args.entry`` (validated, plugins imported).

    An optional ``plugins`` list in the JSON (added by the workflow from the
    config's top-level ``plugins``) is imported first, so user-registered
    synthesizers and features resolve in this process too.
    """
    from pnp_core.spec import RunSpec

    return RunSpec.from_entry(args.entry)


def add_entry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--entry", type=parse_entry, required=True,
        help="the synthesizer's config entry (synths.<name>, or the slice this step uses) "
             "as JSON, or @file",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto = CUDA if available, else CPU (default: auto)")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads on the CPU (default: torch's own choice)")


def apply_threads(args) -> None:
    """Set torch's intra-op thread count from ``--threads`` (when given)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
