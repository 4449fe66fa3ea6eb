"""The paper's figures, listening WAVs and report pages on fixture files
(tests/figure_fixtures.py), through the library and the `pnp` commands."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

import figure_fixtures as fx
from pnp_core.cli import main
from pnp_core.errors import DataError, TableFileError
from pnp_core.evaluation.figures.style import parse_run, run_label, run_of_path
from pnp_core.evaluation.listen import pair_scale, pick_sounds
from pnp_core.evaluation.report_pages import mean_std_columns, write_listening_page, write_table_page
from pnp_core.spec import entry_slice

SYNTH = "amfm"


def entry(repo, stage="train") -> str:
    config = yaml.safe_load((repo / "config.yaml").read_text())
    return json.dumps(entry_slice(config["synths"][SYNTH], stage))


def assert_figure(tmp_path, name):
    for ext, magic in (("pdf", b"%PDF"), ("png", b"\x89PNG")):
        data = (tmp_path / f"{name}.{ext}").read_bytes()
        assert data.startswith(magic) and len(data) > 5000, (name, ext)


def figure(tmp_path, kind, *args):
    out = ["--pdf", str(tmp_path / f"{kind}.pdf"), "--png", str(tmp_path / f"{kind}.png")]
    assert main(["figure", kind, *map(str, args), *out]) == 0
    assert_figure(tmp_path, kind)


# -- names -------------------------------------------------------------------------------------


def test_run_names_give_method_variant_and_seed():
    assert parse_run("pnp-jtfs_seed0") == ("PNP-JTFS", "", 0)
    assert parse_run("p_seed3") == ("P-loss", "", 3)
    assert parse_run("pnp-jtfs_damp-constant_seed1") == ("PNP-JTFS", "damp-constant", 1)
    assert parse_run("ddsp-mss_finetune_seed0") == ("DDSP-MSS", "finetune", 0)
    assert parse_run("mine") == ("mine", "", None)
    assert run_label("pnp-jtfs_D-diag_seed2") == "PNP-JTFS (D-diag)"
    assert run_of_path("results/eval/ftm/p_seed0/metrics.parquet") == ("ftm", "p_seed0")


# -- each figure writes a PDF and a PNG ----------------------------------------------------------


def test_spectra_figure(tmp_path):
    path = fx.write_summary(tmp_path, SYNTH)
    figure(tmp_path, "spectra", path, fx.write_summary(tmp_path, "ftm"))


def test_learning_curves_and_damping_figures(tmp_path):
    paths = [fx.write_history(tmp_path, SYNTH, run) for run in fx.TABLE1 + fx.DAMPING]
    figure(tmp_path, "curves", *paths[:4])
    figure(tmp_path, "damping", *[p for p in paths if "pnp" in str(p)])


def test_errors_figure_also_without_test_metric(tmp_path):
    paths = [fx.write_eval(tmp_path, SYNTH, run)[0] for run in fx.TABLE1]
    figure(tmp_path, "errors", *paths)
    nan = [fx.write_eval(tmp_path / "nan", SYNTH, run, m_diag=False)[0] for run in fx.TABLE1]
    figure(tmp_path, "errors", *nan)   # panels say M is missing instead of failing


def test_table1_figure(tmp_path):
    figure(tmp_path, "table1", fx.write_table1(tmp_path, synths=("amfm", "ftm")))


def test_cqt_figure_draws_the_same_sounds_for_every_method(tmp_path, repo, capsys):
    paths = [fx.write_eval(tmp_path, SYNTH, run, n_test=7)[1] for run in fx.TABLE1]
    figure(tmp_path, "cqt", *paths, "--entry", entry(repo), "--sounds", 2)
    assert "test ids drawn: [100, 106]" in capsys.readouterr().out


def test_a_history_given_as_metrics_is_refused_with_its_path(tmp_path):
    path = fx.write_history(tmp_path, SYNTH, "p_seed0")
    with pytest.raises(TableFileError, match="history.parquet"):
        from pnp_core.evaluation.figures import figure_errors

        figure_errors([path], tmp_path / "x.pdf", tmp_path / "x.png")


# -- listening ---------------------------------------------------------------------------------


def test_pick_sounds_evenly_spaced_and_deterministic():
    ids = np.array([9, 3, 7, 1, 5, 11, 13])
    assert pick_sounds(ids, 3).tolist() == [1, 7, 13]
    assert pick_sounds(ids, 10).tolist() == [1, 3, 5, 7, 9, 11, 13]
    with pytest.raises(DataError):
        pick_sounds([], 2)


def test_pair_scale_keeps_the_loudness_ratio():
    x, y = np.array([0.1, -0.5]), np.array([0.05, 0.25])
    s = pair_scale(x, y)
    assert np.max(np.abs(x * s)) == pytest.approx(0.9)
    assert np.max(np.abs(y * s)) == pytest.approx(0.45)
    assert pair_scale(np.zeros(3), np.zeros(3)) == 1.0


def test_listen_writes_readable_wavs_of_the_synth_rate_and_length(tmp_path, repo):
    from pnp_core.spec import RunSpec

    pred = fx.write_eval(tmp_path, SYNTH, "pnp-jtfs_seed0", n_test=5)[1]
    out = tmp_path / "listen"
    assert main(["listen", "--entry", entry(repo), "--predictions", str(pred), "--sounds", "2",
                 "--out-dir", str(out)]) == 0
    synth = RunSpec.from_entry(json.loads(entry(repo))).synth
    sounds = pd.read_csv(out / "sounds.csv")
    assert sounds["id"].tolist() == [100, 104] and sounds["k"].tolist() == [1, 2]
    predictions = pd.read_parquet(pred).set_index("id")
    for k, i in zip(sounds["k"], sounds["id"]):
        x, sr = sf.read(out / f"sound{k}_target.wav")
        y, sr2 = sf.read(out / f"sound{k}_match.wav")
        assert sr == sr2 == synth.sr and len(x) == len(y) == synth.n_samples
        assert sf.info(out / f"sound{k}_target.wav").subtype == "PCM_16"
        assert max(np.abs(x).max(), np.abs(y).max()) == pytest.approx(0.9, abs=1e-3)
        # the WAV is g(θ) of that id, up to the pair's gain and 16-bit rounding
        import torch

        theta = predictions.loc[i, [f"theta_{p}" for p in synth.space.names]].to_numpy(float)
        ref = synth(torch.tensor(theta)[None]).numpy()[0] * sounds.loc[k - 1, "gain"]
        assert np.max(np.abs(x - ref)) < 1e-4
        assert sounds.loc[k - 1, "f_c [Hz]"] == pytest.approx(theta[0])


def test_listen_refuses_fewer_test_sounds_than_asked(tmp_path, repo):
    pred = fx.write_eval(tmp_path, SYNTH, "p_seed0", n_test=2)[1]
    assert main(["listen", "--entry", entry(repo), "--predictions", str(pred), "--sounds", "3",
                 "--out-dir", str(tmp_path / "l")]) == 2


def test_listen_mushra_bundle_of_the_table1_runs(tmp_path, repo):
    """``pnp listen --mushra``: one stimulus per run, each the run's match g(θ̂) of the
    trial's test sound, the reference g(θ) shared (the bundle's own files: test_mushra.py)."""
    import torch

    from pnp_core.spec import RunSpec

    preds = [fx.write_eval(tmp_path, SYNTH, run, n_test=5)[1] for run in fx.TABLE1]
    labels = [parse_run(run)[0] for run in fx.TABLE1]
    out = tmp_path / "mushra"
    assert main(["listen", "--mushra", "--entry", entry(repo), "--predictions", *map(str, preds),
                 "--labels", *labels, "--sounds", "2", "--out-dir", str(out)]) == 0
    manifest = pd.read_csv(out / "manifest.csv")
    methods = manifest[manifest["role"] == "method"]
    assert sorted(methods["method"].unique()) == sorted(labels)
    assert sorted(manifest["id"].unique()) == [100, 104]  # the sounds pnp listen picks
    synth = RunSpec.from_entry(json.loads(entry(repo))).synth
    names = [f"theta_hat_{p}" for p in synth.space.names]
    for row in methods.itertuples():
        pred = pd.read_parquet(preds[labels.index(row.method)]).set_index("id")
        x, sr = sf.read(out / row.file)
        ref = synth(torch.tensor(pred.loc[row.id, names].to_numpy(float))[None]).numpy()[0]
        assert sr == synth.sr and np.max(np.abs(x - ref * row.gain)) < 1e-4
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert "mushra" in json.dumps(config)
    # one label per run, or a clear refusal
    assert main(["listen", "--mushra", "--entry", entry(repo), "--predictions", *map(str, preds),
                 "--labels", "P-loss", "--out-dir", str(tmp_path / "m2")]) == 2
    assert main(["listen", "--mushra", "--entry", entry(repo), "--predictions", str(preds[0]),
                 "--out-dir", str(tmp_path / "m3")]) == 2


# -- report pages ------------------------------------------------------------------------------


def test_mean_std_columns():
    df = pd.DataFrame({"method": ["P-loss", "PNP-JTFS"], "n_runs": [1, 3],
                       "jtfs_mean": [1.23456, 0.5], "jtfs_std": [np.nan, 0.0123]})
    out = mean_std_columns(df)
    assert list(out.columns) == ["method", "n_runs", "jtfs (mean ± std)"]
    assert out["jtfs (mean ± std)"].tolist() == ["1.235", "0.5 ± 0.012"]


def test_table_page_holds_every_row(tmp_path):
    csv = fx.write_table1(tmp_path, synths=("amfm", "ftm"))
    write_table_page(csv, tmp_path / "t.html", "Table 1")
    text = (tmp_path / "t.html").read_text()
    assert text.count("<tr>") == 1 + 8 and "PNP-JTFS" in text and "±" in text


def test_listening_page_embeds_every_wav(tmp_path, repo):
    dirs = []
    for run in fx.TABLE1:
        pred = fx.write_eval(tmp_path, SYNTH, run, n_test=4)[1]
        dirs.append(tmp_path / "listen" / run)
        assert main(["listen", "--entry", entry(repo), "--predictions", str(pred), "--sounds",
                     "2", "--out-dir", str(dirs[-1])]) == 0
    write_listening_page(SYNTH, dirs, tmp_path / "page.html")
    text = (tmp_path / "page.html").read_text()
    wavs = re.findall(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", text)
    assert len(wavs) == 2 * (1 + len(fx.TABLE1))
    assert base64.b64decode(wavs[0]) == (dirs[0] / "sound1_target.wav").read_bytes()
    # Table-1 order of the methods
    heads = re.findall(r"<th>([^<]+)<br>", text)
    assert heads == ["P-loss", "DDSP-MSS", "DDSP-JTFS", "PNP-JTFS"]
    # another run's sounds.csv with other ids is refused
    other = pd.read_csv(dirs[1] / "sounds.csv").assign(id=[1, 2])
    other.to_csv(dirs[1] / "sounds.csv", index=False)
    with pytest.raises(DataError, match="differ"):
        write_listening_page(SYNTH, dirs, tmp_path / "page.html")
