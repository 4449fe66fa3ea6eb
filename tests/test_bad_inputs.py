"""Bad inputs are refused early, naming the file / config key / sample id and what to do."""

from __future__ import annotations

import copy
import json
import time

import pytest

from pnp_core.cli import main
from pnp_core.config import load_yaml, merge, validate_config
from pnp_core.io import read_table, write_table
from pnp_core.formats import PARAMS_FORMAT

ENTRY = {"type": "amfm", "settings": {"sr": 8192, "n_samples": 2048}, "rescaling": "logminmax",
         "dataset": {"bins": 3, "val_margin": 1, "n_test": 4},
         "feature": {"type": "mss", "settings": {"n_ffts": [256, 64]}}}


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line for the user
    return err


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.parquet"
    assert main(["dataset", "--entry", json.dumps(ENTRY), "--out", str(path)]) == 0
    return path


def _with_bad_train_row(params, tmp_path, column, value):
    table = read_table(params, PARAMS_FORMAT)
    df = table.data
    row = df.index[df["fold"] == "train"][2]
    df.loc[row, column] = value
    out = tmp_path / "bad.parquet"
    write_table(df, out, PARAMS_FORMAT, {k: v for k, v in table.meta.items()
                                         if k not in ("format", "meta_sha256")})
    return out, int(df.loc[row, "id"])


# -- 1. a bad train row fails every stage that uses it ---------------------------------------

@pytest.mark.parametrize("column,value,what", [("f_c", 1e6, "out of range"),
                                                ("f_m", float("nan"), "not finite")])
def test_bad_train_row_fails_val_jacobian_naming_id_and_fold(params, tmp_path, capsys,
                                                              column, value, what):
    bad, bad_id = _with_bad_train_row(params, tmp_path, column, value)
    err = _error(capsys, ["jacobian", "--entry", json.dumps(ENTRY), "--params", str(bad),
                          "--fold", "val", "--no-progress", "--out", str(tmp_path / "m.parquet")])
    assert f"sample id {bad_id} (train fold)" in err and repr(column) in err and what in err
    assert str(bad) in err and "pnp dataset" in err
    assert not (tmp_path / "m.parquet").exists()


def test_bad_train_row_fails_train_features_not_test_features(params, tmp_path, capsys):
    bad, bad_id = _with_bad_train_row(params, tmp_path, "f_c", 1e6)
    base = ["features", "--entry", json.dumps(ENTRY), "--params", str(bad)]
    err = _error(capsys, base + ["--fold", "train", "--out", str(tmp_path / "train.pt")])
    assert f"sample id {bad_id} (train fold)" in err and str(bad) in err
    # the test fold's features do not use the train rows (no scaler): they are computed
    assert main(base + ["--fold", "test", "--out", str(tmp_path / "test.pt")]) == 0


# -- 2. late config errors fail at validation, naming the full key ---------------------------

@pytest.mark.parametrize("patch,key", [
    ({"synths": {"ftm": {"feature": {"settings": {"J": 40}}}}}, "synths.ftm.feature.settings.J"),
    ({"synths": {"ftm": {"feature": {"settings": {"T": "local"}}}}},
     "synths.ftm.feature.settings.T"),
    ({"synths": {"ftm": {"settings": {"n_samples": 8192.5}}}}, "synths.ftm.settings.n_samples"),
    ({"synths": {"amfm": {"settings": {"n_samples": 8192.5}}}},
     "synths.amfm.settings.n_samples"),
    ({"synths": {"ftm": {"feature": {"settings": {"log_eps": -1}}}}},
     "synths.ftm.feature.settings.log_eps"),
    ({"synths": {"amfm": {"dataset": {"n_test": 200}}}}, "synths.amfm.dataset.n_test"),
    ({"synths": {"ftm": {"feature": {"type": "mss", "settings": {"n_ffts": [2]}}}}},
     "synths.ftm.feature.settings.n_ffts"),
])
def test_late_config_errors_fail_at_check_config(repo, tmp_path, capsys, patch, key):
    # replace (not merge) the feature settings, so only the patched key is wrong
    cfg = merge(load_yaml(repo / "config.yaml"), patch)
    for entry in patch.get("synths", {}).values():
        if "feature" in entry and "type" in entry["feature"]:
            name = next(iter(patch["synths"]))
            cfg["synths"][name]["feature"]["settings"] = entry["feature"]["settings"]
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(cfg))
    err = _error(capsys, ["check-config", str(path)])
    assert f"config key '{key}'" in err


def test_feature_validation_is_cheap_for_the_paper_jtfs(repo):
    """Validation checks JTFS settings without building its filter bank (~5 s at J=13)."""
    paper = merge(load_yaml(repo / "config.yaml"), load_yaml(repo / "workflow/presets/paper.yaml"))
    validate_config(copy.deepcopy(paper))  # imports warm up
    t0 = time.perf_counter()
    validate_config(paper)
    assert time.perf_counter() - t0 < 1.0


def test_the_schema_defaults_validate():
    cfg = validate_config({})
    assert set(cfg["synths"]) == {"ftm", "amfm"}
    from pnp_core.spec import RunSpec

    for name in cfg["synths"]:
        sizes = RunSpec.from_config(cfg, name).fold_sizes()
        assert min(sizes.values()) > 0


# -- 3. messages name the file, say what is wrong and what to do -----------------------------

def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("device: cpu\nsynths:\n  ftm: {type: ftm\n  amfm: {}\n")
    err = _error(capsys, ["check-config", str(path)])
    assert f"{path}, line 4" in err and "YAML syntax error" in err


def test_jacobian_on_a_table_lacking_a_column(params, tmp_path, capsys):
    table = read_table(params, PARAMS_FORMAT)
    out = tmp_path / "nocol.parquet"
    write_table(table.data.drop(columns=["gamma"]), out, PARAMS_FORMAT, {})
    err = _error(capsys, ["jacobian", "--entry", json.dumps(ENTRY), "--params", str(out),
                          "--fold", "val", "--out", str(tmp_path / "m.parquet")])
    assert str(out) in err and "['gamma']" in err and "pnp dataset" in err


def test_flipped_bit_in_a_shards_metadata_is_refused_naming_the_file(params, tmp_path, capsys):
    shard = tmp_path / "shard-0000.parquet"
    assert main(["jacobian", "--entry", json.dumps(ENTRY), "--params", str(params), "--fold",
                 "test", "--method", "jvp", "--no-progress", "--out", str(shard)]) == 0
    capsys.readouterr()
    data = bytearray(shard.read_bytes())
    # the pnp JSON as Parquet stores it in the footer (the copy pyarrow reads is inside the
    # base64 ARROW:schema; flip a bit there: find it by decoding)
    import base64
    import re

    blob = re.search(rb"ARROW:schema.{0,8}?([A-Za-z0-9+/=]{100,})", bytes(data), re.S)
    raw = bytearray(base64.b64decode(blob.group(1)))
    at = raw.find(b'"n_params": 3')
    raw[at + len(b'"n_params": ')] ^= 1  # 3 → 2
    enc = base64.b64encode(bytes(raw))
    assert len(enc) == len(blob.group(1))
    data[blob.start(1):blob.end(1)] = enc
    shard.write_bytes(bytes(data))
    err = _error(capsys, ["merge-jacobian", "--entry", json.dumps(ENTRY), "--params",
                          str(params), "--fold", "test", "--out", str(tmp_path / "t.parquet"),
                          str(shard)])
    assert str(shard) in err and "corrupted metadata" in err and "rerun" in err


def test_jacobian_summary_given_a_params_table(params, tmp_path, capsys):
    err = _error(capsys, ["jacobian-summary", str(params), "--out", str(tmp_path / "s.parquet"),
                          "--quantiles-out", str(tmp_path / "q.parquet")])
    assert str(params) in err and "this is a params table" in err and "metric file" in err
    assert "delete" not in err and "pass the right path" in err


def test_missing_params_file(tmp_path, capsys):
    missing = tmp_path / "results/data/amfm/params.parquet"
    err = _error(capsys, ["features", "--entry", json.dumps(ENTRY), "--params", str(missing),
                          "--fold", "test", "--out", str(tmp_path / "f.pt")])
    assert f"{missing}: file not found" in err and "params table" in err and "snakemake" in err


# -- the same through Snakemake ---------------------------------------------------------------

def test_snakemake_names_yaml_file_and_line_and_late_config_keys(workdir):
    from test_workflow import snakemake

    good = (workdir / "config.yaml").read_text()
    (workdir / "config.yaml").write_text(good.replace("device: auto", "device: [auto"))
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "config.yaml, line" in proc.stdout + proc.stderr
    (workdir / "config.yaml").write_text(good)
    (workdir / "j40.yaml").write_text("synths: {ftm: {feature: {settings: {J: 40}}}}\n")
    proc = snakemake(workdir, "-n", "--configfile", "j40.yaml", check=False)
    assert proc.returncode != 0
    assert "config key 'synths.ftm.feature.settings.J'" in proc.stdout + proc.stderr


def test_a_rules_slice_is_not_judged_on_sections_it_leaves_out(tmp_path):
    """The dataset rule gets no `feature` section: the default JTFS (J = 13) would not fit
    2048 samples, but that is not the dataset stage's business."""
    from pnp_core.spec import RunSpec

    spec = RunSpec.from_entry({k: ENTRY[k] for k in ("type", "settings", "dataset")})
    assert spec.fold_sizes()["test"] == 4
