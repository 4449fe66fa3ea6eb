"""The figure, listening and report-page rules in real Snakemake runs on fixture inputs
(tests/figure_fixtures.py) in a scratch copy of the workflow."""

from __future__ import annotations

import pytest
import soundfile as sf
import yaml

import figure_fixtures as fx
from test_workflow import snakemake

FIGURES = ["spectra", "curves", "damping_table1", "table1", "errors_amfm", "cqt_amfm"]


@pytest.fixture
def amfm_workdir(workdir):
    """The default config with the AM/FM synth only, 2 sounds per figure, and every input
    of the figure rules written as fixtures."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    del config["synths"]["ftm"]
    config["figures"]["sounds"] = 2
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    fx.write_all(workdir, synths=("amfm",), n_test=5)
    return workdir


def test_figures_target_plans_every_figure_wav_and_page(amfm_workdir):
    out = snakemake(amfm_workdir, "figures", "-n", "--quiet", "rules").stdout
    counts = dict(line.split()[:2] for line in out.splitlines() if len(line.split()) == 2
                  and line.split()[1].isdigit())
    counts.pop("total")
    assert counts == {"figure_spectra": "1", "figure_curves": "1", "figure_damping": "1",
                      "figure_errors": "1", "figure_cqt": "1", "figure_table1": "1",
                      "listen": "4", "mushra": "1", "listen_page": "1", "table_page": "1",
                      "figures": "1"}


def test_damping_ablation_figure_takes_the_damping_runs(amfm_workdir):
    out = snakemake(amfm_workdir, "results/figures/damping_ablation.png", "-n").stdout
    job = out.split("rule figure_damping:")[1].split("output:")[0]
    for run in ("pnp-jtfs_seed0", "pnp-jtfs_damp-constant_seed0",
                "pnp-jtfs_damp-scheduled_seed0", "pnp-jtfs_D-diag_seed0", "pnp-jtfs_D-mean_seed0"):
        assert f"results/runs/amfm/{run}/history.parquet" in job, run
    assert "p_seed0" not in job and "finetune" not in job


@pytest.mark.slow
def test_figures_wavs_and_report(amfm_workdir):
    """`snakemake figures` on fixtures, then `snakemake --report`: every figure (PDF and
    PNG), WAV, page and caption ends up in one HTML file."""
    wd = amfm_workdir
    pages = ["results/report/tables/ablation_damping.html"]
    snakemake(wd, "figures", *pages, "--cores", "2")
    for name in FIGURES:
        for ext, magic in (("pdf", b"%PDF"), ("png", b"\x89PNG")):
            data = (wd / f"results/figures/{name}.{ext}").read_bytes()
            assert data.startswith(magic) and len(data) > 5000, name
    for run in fx.TABLE1:
        for k in (1, 2):
            for role in ("target", "match"):
                info = sf.info(wd / f"results/listen/amfm/{run}/sound{k}_{role}.wav")
                assert (info.samplerate, info.frames) == (8192, 16384)
    again = snakemake(wd, "figures", *pages, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    snakemake(wd, "figures", *pages, "--report", "results/report.html")
    html = (wd / "results/report.html").read_text()
    for name in [f"{n}.png" for n in FIGURES] + ["listen_amfm.html", "table1.html",
                                                   "ablation_damping.html",
                                                   "sound2_match.wav", "sound1_target.wav"]:
        assert name in html, name
    for caption in ("Eigenvalue spectra", "Learning curves", "Table 1 as bar charts",
                    "sound matching (Han, Lostanlen"):
        assert caption in html, caption
