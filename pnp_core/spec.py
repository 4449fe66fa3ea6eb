"""One synth entry of the config, as the objects every stage needs.

A :class:`RunSpec` is built from one validated ``synths.<name>`` entry (or from
the slice of it a rule passes on the command line) and offers the synthesizer,
the feature map, the dataset design, the scaler fitted on the train fold of a
params table, and the provenance record that every output carries::

    spec = RunSpec.from_entry(entry)             # or RunSpec.from_config(config, "ftm")
    params = spec.read_params("results/data/ftm/params.parquet")
    scaler = spec.fit_scaler(params)             # min-max bounds from the train rows
    x = spec.synth(theta); S = spec.feature(x)
    write_table(df, path, FORMAT, {"provenance": spec.provenance()})

Rules pass only the sections of an entry their output depends on (see
:data:`SECTIONS`), so the provenance of an output lists exactly those.
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np
import pandas as pd

from pnp_core.errors import ConfigError, DataError

#: the entry sections each stage's output depends on (what a rule passes as --entry)
SECTIONS = {
    "dataset": ("type", "settings", "dataset"),
    "features": ("type", "settings", "dataset", "feature"),
    "jacobian": ("type", "settings", "dataset", "feature", "rescaling"),
    "dtfa": ("type", "settings", "dataset", "feature"),
    "train": ("type", "settings", "dataset", "feature", "rescaling", "cqt"),
}

#: the provenance record of every output: package version, then the entry's sections
PROVENANCE_KEYS = ("pnp_core", "synth", "synth_settings", "dataset", "feature",
                   "feature_settings", "rescaling")


def entry_slice(entry: Mapping, stage: str, plugins=()) -> dict:
    """The sections of a config entry that ``stage``'s outputs depend on (+ ``plugins``)."""
    out = {k: entry[k] for k in SECTIONS[stage] if k in entry}
    if plugins:
        out["plugins"] = list(plugins)
    return out


class RunSpec:
    """The objects of one synth entry.

    Parameters
    ----------
    entry : mapping
        A ``synths.<name>`` entry, validated (defaults filled) by
        :func:`pnp_core.config.validate_entry`.
    given : iterable of str, optional
        The sections the caller really provided (the rest are schema defaults and
        are left out of the provenance). Default: all of them.
    """

    def __init__(self, entry: Mapping, given=None) -> None:
        self.entry = dict(entry)
        self.given = set(self.entry if given is None else given)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_entry(cls, entry: Mapping, name: str | None = None) -> "RunSpec":
        """Validate a (possibly partial) entry, importing its ``plugins`` first."""
        from pnp_core.config import import_plugins, validate_entry

        entry = dict(entry)
        import_plugins({"plugins": entry.pop("plugins", [])})
        given = set(entry)
        return cls(validate_entry(entry, name or entry.get("type", "<entry>")), given)

    @classmethod
    def from_config(cls, config: Mapping, name: str) -> "RunSpec":
        """The spec of ``synths.<name>`` of a validated config."""
        from pnp_core.config import synth_entry

        return cls(synth_entry(config, name))

    # -- objects ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.entry["type"]

    @cached_property
    def synth(self):
        """The synthesizer g (a :class:`pnp_core.synth.Synth`)."""
        from pnp_core.synth import get_synth

        return get_synth(self.entry["type"], **self.entry.get("settings", {}))

    @property
    def space(self):
        return self.synth.space

    @cached_property
    def feature(self):
        """The feature map Φ, with ``n_samples`` taken from the synthesizer."""
        from pnp_core.features import get_feature

        feat = self.entry["feature"]
        return get_feature(feat["type"], n_samples=self.synth.n_samples, **feat.get("settings", {}))

    @cached_property
    def design(self):
        """The dataset design (:class:`pnp_core.synth.datasets.GridDesign`)."""
        from pnp_core.synth.datasets import GridDesign

        return GridDesign(**self.entry["dataset"])

    @property
    def rescaling(self) -> str:
        return self.entry["rescaling"]

    def fold_sizes(self) -> dict[str, int]:
        return self.design.fold_sizes(len(self.space))

    # -- params -----------------------------------------------------------------------------------

    def read_params(self, path, fold: str | None = None) -> pd.DataFrame:
        """The params table (sorted by id), optionally one fold, checked for this synth.

        Raises :class:`~pnp_core.errors.TableFileError` naming the file when it is
        missing, not a params table, or lacks a parameter column of the synthesizer.
        """
        from pnp_core.synth.datasets import load_params

        return load_params(path, fold, space=self.space)

    def fit_scaler(self, params: pd.DataFrame, kind: str | None = None):
        """The rescaling h (``kind``, default the entry's) fitted on the train rows of ``params``.

        Every train row is validated first (finite, in range), since a bad row would
        silently change the min-max bounds of every fold: the error names its id.
        """
        from pnp_core.params import Scaler

        kind = kind or self.rescaling
        train = params[params["fold"] == "train"]
        theta = train[self.space.names].to_numpy(dtype=np.float64)
        self.space.validate(theta, train["id"].to_numpy(), fold="train",
                            source=params.attrs.get("source"))
        if kind in ("minmax", "logminmax") and len(train) == 0:
            raise DataError(f"the train fold is empty, cannot fit the {kind!r} rescaling")
        try:
            return Scaler.fit(self.space, kind, theta)
        except ValueError as err:
            raise ConfigError(f"config key 'synths.{self.name}.rescaling': {err}") from None

    # -- provenance -------------------------------------------------------------------------------

    def provenance(self) -> dict:
        """Where an output comes from: :data:`PROVENANCE_KEYS`, for the given sections only."""
        import pnp_core

        full = {
            "pnp_core": pnp_core.__version__,
            "synth": self.entry["type"],
            "synth_settings": self.synth.settings(),
            "dataset": self.entry.get("dataset"),
            "feature": self.entry["feature"]["type"],
            "feature_settings": self.entry["feature"].get("settings", {}),
            "rescaling": self.entry.get("rescaling"),
        }
        needs = {"dataset": "dataset", "feature": "feature", "feature_settings": "feature",
                 "rescaling": "rescaling"}
        return {k: full[k] for k in PROVENANCE_KEYS
                if k not in needs or needs[k] in self.given}


__all__ = ["RunSpec", "SECTIONS", "PROVENANCE_KEYS", "entry_slice"]
