"""Errors meant for the person running the pipeline.

Every error a user can fix (a wrong config value, a missing or damaged file, a
bad parameter row) derives from :class:`PnpError`. The ``pnp`` CLI prints those
in one line (``pnp <command>: error: …``) and exits with status 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class PnpError(Exception):
    """Base class of errors that carry a complete, user-facing message."""


class ConfigError(PnpError, ValueError):
    """A config key or value is wrong; the message names the full key."""


class TableFileError(PnpError, ValueError):
    """A table file (Parquet) is missing, unreadable, of the wrong format or inconsistent."""


class DataError(PnpError, ValueError):
    """Input data (a parameter row, an audio file) is invalid; the message names the id or file."""


__all__ = ["PnpError", "ConfigError", "TableFileError", "DataError"]
