"""Each preset writes under its own results_dir / logs_dir, so a paper run leaves the laptop
default's results/ alone; targets go before --configfile (real Snakemake, scratch copies of
the workflow: conftest.workdir)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from test_workflow import snakemake

PAPER = ("--configfile", "workflow/presets/paper.yaml")
#: the job fields of a `snakemake -n` listing that hold file paths
FILE_FIELDS = re.compile(r"^\s+(input|output|log|benchmark): (.*)$", re.M)


def planned_files(output: str) -> dict[str, set[str]]:
    """The files of every job in a `snakemake -n` listing, by field (input, output, …)."""
    files: dict[str, set[str]] = {}
    for field, paths in FILE_FIELDS.findall(output):
        files.setdefault(field, set()).update(p.strip() for p in paths.split(", "))
    return files


def test_paper_preset_plans_only_files_under_results_paper(workdir):
    # every target of the workflow: default, ablations, DTFA, diagnostics
    proc = snakemake(workdir, "-n", "all", "ablations", "dtfa", "diagnostics", *PAPER)
    files = planned_files(proc.stdout)
    assert {"input", "output", "log", "benchmark"} <= files.keys(), proc.stdout[-2000:]
    assert len(files["output"]) > 1000  # the whole paper grid
    for field, paths in files.items():
        root = "logs/paper/" if field == "log" else "results/paper/"
        outside = sorted(p for p in paths if not p.startswith(root))
        assert not outside, (field, outside[:10])


def test_laptop_default_still_plans_results(workdir):
    files = planned_files(snakemake(workdir, "-n").stdout)
    for field, paths in files.items():
        root = "logs/" if field == "log" else "results/"
        assert all(p.startswith(root) for p in paths), field
        assert not any(p.startswith(("results/paper/", "logs/paper/")) for p in paths), field
    assert "results/table1.csv" in files["output"]
    assert "logs/make_dataset/ftm.log" in files["log"]


def test_laptop_results_survive_a_paper_run(workdir):
    laptop = workdir / "results/data/ftm/params.parquet"
    snakemake(workdir, "--cores", "2", "results/data/ftm/params.parquet")
    before = (laptop.read_bytes(), laptop.stat().st_mtime_ns)
    log = workdir / "logs/make_dataset/ftm.log"
    log_before = (log.read_bytes(), log.stat().st_mtime_ns)

    # the paper preset's own dataset rule (100,000 FTM sounds' θ: seconds), for real
    snakemake(workdir, "--cores", "2", "results/paper/data/ftm/params.parquet", *PAPER)
    paper = pd.read_parquet(workdir / "results/paper/data/ftm/params.parquet")
    assert paper["fold"].value_counts().to_dict() == {"train": 82224, "test": 10000, "val": 7776}
    assert (workdir / "logs/paper/make_dataset/ftm.log").exists()

    assert (laptop.read_bytes(), laptop.stat().st_mtime_ns) == before
    assert (log.read_bytes(), log.stat().st_mtime_ns) == log_before
    laptop_folds = pd.read_parquet(laptop)["fold"].value_counts().to_dict()
    assert laptop_folds == {"train": 928, "test": 64, "val": 32}
    # nothing of the laptop's is out of date afterwards, and the paper plan never touches it
    again = snakemake(workdir, "-n", "results/data/ftm/params.parquet")
    assert "Nothing to be done" in again.stdout + again.stderr
    planned = planned_files(snakemake(workdir, "-n", *PAPER).stdout)
    assert str(laptop.relative_to(workdir)) not in planned["output"] | planned["input"]


def test_report_of_a_paper_run_goes_to_results_paper(workdir):
    """`snakemake --report results/paper/report.html --configfile …paper.yaml` renders the
    captions with the preset's folder. The outputs are stand-ins (empty files): the report
    needs every file marked for it to exist, not a 100-GPU-hour run."""
    planned = planned_files(snakemake(workdir, "-n", *PAPER).stdout)
    for path in planned["output"]:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    snakemake(workdir, "--report", "results/paper/report.html", *PAPER)
    html = (workdir / "results/paper/report.html").read_text()
    assert "--report</span> results/paper/report.html" in html  # workflow.rst
    assert "results/paper/jacobian/{synth}/train.summary.parquet" in html  # a figure caption
    assert "results/table1.csv" not in html


@pytest.mark.parametrize("value", ["results/", "my results", "results/{synth}"])
def test_a_results_dir_that_cannot_be_a_path_prefix_is_refused(workdir, value):
    proc = snakemake(workdir, "-n", "--config", f"results_dir={value}", check=False)
    assert proc.returncode != 0
    assert "config key 'results_dir'" in proc.stdout + proc.stderr


def test_target_after_configfile_stops_snakemake_before_the_snakefile(workdir):
    """`--configfile` takes several values, so a target after it is read as a config file.
    Snakemake loads config files before the Snakefile runs, so the workflow cannot catch it:
    the docs put targets first (next test). This pins what the user sees."""
    proc = snakemake(workdir, "-n", *PAPER, "results/paper/table1.csv", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results/paper/table1.csv" in out and "Building DAG" not in out
    ok = snakemake(workdir, "-n", "results/paper/table1.csv", *PAPER)
    assert "table1" in ok.stdout


#: the files whose `snakemake …` commands a user copies
DOCS = ["README.md", "Snakefile", "docs/*.md", "workflow/presets/*.yaml",
        "workflow/profiles/*/config.yaml", "workflow/rules/*.smk", "workflow/report/*.rst"]


#: a `snakemake … --configfile …` command on one line, up to a code span's or comment's end
COMMAND = re.compile(r"\bsnakemake\b[^`#|;&]*?--configfile([^`#|;&]*)")


def test_docs_write_targets_before_configfile(repo):
    """Every value after `--configfile` in a documented command is a config file."""
    checked = 0
    for pattern in DOCS:
        for path in sorted(repo.glob(pattern)):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                for rest in COMMAND.findall(line):
                    values = []
                    for token in rest.split():
                        if token.startswith("-"):
                            break
                        values.append(token)
                    bad = [v for v in values if not v.endswith((".yaml", ".yml", ".json"))]
                    assert not bad, f"{path.relative_to(repo)}:{n}: {bad} after --configfile"
                    checked += bool(values)
    assert checked >= 10  # the check saw the documented commands
