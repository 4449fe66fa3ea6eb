import copy
import json
import sys
import textwrap

import pandas as pd
import pytest

from pnp_core.cli import main
from pnp_core.config import ConfigError, load_yaml, merge, validate_config


@pytest.fixture
def base(repo):
    return load_yaml(repo / "config.yaml")


def test_default_and_paper_configs_are_valid(repo, base):
    cfg = validate_config(copy.deepcopy(base))
    assert cfg["jacobian"]["dtype"] == "float64"
    paper = validate_config(merge(base, load_yaml(repo / "workflow/presets/paper.yaml")))
    assert paper["synths"]["ftm"]["settings"]["n_samples"] == 2**16
    assert paper["synths"]["ftm"]["dataset"]["bins"] == 10
    assert paper["synths"]["amfm"]["dataset"]["n_test"] == 2700


def test_defaults_are_filled():
    cfg = validate_config({"synths": {"ftm": {"feature": {"type": "mss"}}}})
    assert cfg["device"] == "auto" and cfg["plugins"] == []
    assert cfg["synths"]["ftm"]["dataset"]["bins"] == 4
    assert cfg["synths"]["ftm"]["type"] == "ftm"
    assert cfg["synths"]["ftm"]["rescaling"] == "logminmax"


@pytest.mark.parametrize(
    "patch,key",
    [
        ({"jacobain": {}}, "'jacobain'"),                                        # unknown key
        ({"synths": {"ftm": {"dataset": {"binz": 3}}}}, "synths.ftm.dataset.binz"),
        ({"synths": {"ftm": {"dataset": {"bins": "ten"}}}}, "synths.ftm.dataset.bins"),  # type
        ({"synths": {"ftm": {"dataset": {"bins": 0}}}}, "synths.ftm.dataset.bins"),      # range
        ({"jacobian": {"method": "jacrev"}}, "jacobian.method"),                  # enum
        ({"synths": {"ftm": {"rescaling": "zscore"}}}, "synths.ftm.rescaling"),
        ({"synths": {"ftm": {"settings": {"sample_rate": 1}}}}, "synths.ftm.settings.sample_rate"),
        ({"synths": {"ftm": {"type": "nope"}}}, "synths.ftm.type"),
        ({"synths": {"ftm": {"dataset": {"bins": 4, "val_margin": 2}}}}, "synths.ftm"),
        ({"synths": {"ftm": {"feature": {"settings": {"JJ": 3}}}}}, "synths.ftm.feature.settings.JJ"),
    ],
)
def test_bad_config_fails_naming_the_key(base, patch, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(merge(base, patch))


def test_check_config_cli(repo, tmp_path, capsys):
    assert main(["check-config", str(repo / "config.yaml")]) == 0
    assert "shard_size" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: tpu\n")
    assert main(["check-config", str(repo / "config.yaml"), str(bad)]) == 2
    assert "'device'" in capsys.readouterr().err


def test_user_synth_registered_by_plugin_works_by_config(tmp_path, monkeypatch):
    (tmp_path / "mylab_synth.py").write_text(textwrap.dedent('''
        import torch
        from pnp_core.params import Param, ParamSpace
        from pnp_core.synth import SYNTHS, Synth

        @SYNTHS.register("sine")
        class Sine(Synth):
            space = ParamSpace([Param("f", "Hz", 100.0, 1000.0, log=True)])
            def __init__(self, sr=8000, n_samples=512):
                self.sr, self.n_samples = sr, n_samples
            def synthesize(self, theta):
                return torch.sin(2 * torch.pi * theta[:, :1] * self.time(theta))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = validate_config({"plugins": ["mylab_synth"],
                           "synths": {"sine": {"feature": {"type": "mss"},
                                               "dataset": {"bins": 8, "val_margin": 2,
                                                           "n_test": 2}}}})
    assert cfg["synths"]["sine"]["type"] == "sine"
    # the CLI imports the plugins named in the entry (as the workflow passes them)
    from pnp_core.synth import SYNTHS

    SYNTHS._classes.pop("sine")
    sys.modules.pop("mylab_synth")
    out = tmp_path / "p.parquet"
    entry = {**cfg["synths"]["sine"], "plugins": ["mylab_synth"]}
    assert main(["dataset", "--entry", json.dumps(entry), "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["id", "fold", "bin_code", "f"] and len(df) == 8
    SYNTHS._classes.pop("sine")
    sys.modules.pop("mylab_synth")
    with pytest.raises(ConfigError, match="plugins"):
        validate_config({"plugins": ["no_such_module_xyz"], "synths": {"ftm": {}}})
