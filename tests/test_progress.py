"""Progress on screen: summary lines every interval, and through a real Snakemake run."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pnp_core.progress import Progress, summary_line

LINE = re.compile(r"^\[pnp\] (?P<desc>.+): (?P<done>\d+)/(?P<total>\d+) samples .*elapsed, "
                  r"(ETA \d+:\d\d|ETA unknown.*|done)$")


def test_summary_line_has_done_total_and_eta():
    line = summary_line("ftm/train shard 2 jacobian", 96, 256, 62.0)
    assert line == ("[pnp] ftm/train shard 2 jacobian: 96/256 samples (38%), 1:02 elapsed, "
                    "ETA 1:43")
    assert LINE.match(line)


def test_lines_come_every_interval_even_during_a_long_step():
    screen = io.StringIO()
    with Progress(4, "amfm/test features", interval=0.1, screen=screen) as bar:
        bar.update(1)
        time.sleep(0.45)  # one long "batch": the timer still reports
        bar.update(3)
    lines = screen.getvalue().splitlines()
    assert len(lines) >= 4 and all(LINE.match(x) for x in lines), lines
    assert "1/4" in lines[0] and lines[-1].endswith("done")


def test_no_screen_lines_when_disabled():
    screen = io.StringIO()
    with Progress(2, "x", interval=0.05, screen=screen, disable=True) as bar:
        time.sleep(0.15)
        bar.update(2)
    assert screen.getvalue() == ""


TINY = """
plugins: []
device: cpu
synths:
  amfm:
    type: amfm
    settings: {sr: 8192, n_samples: 2048}
    dataset: {bins: 3, val_margin: 1, n_test: 4, seed: 1, jitter: linear}
    feature: {type: jtfs, settings: {J: 6, Q: [8, 1], Q_fr: 1, F: 2, T: global}}
features: {folds: [train], batch_size: 1}
jacobian: {folds: [test, val], shard_size: 100, batch_size: 1, method: jvp, threads: 1}
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` (a pty)")
def test_snakemake_run_shows_job_progress_on_the_terminal(workdir):
    """A real `snakemake --cores 2` in a pseudo-terminal: each long job prints summary lines
    on the terminal while its full log (with the bar) goes to logs/."""
    (workdir / "config.yaml").write_text(TINY)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PNP_PROGRESS_INTERVAL": "0.05"}  # the tiny jobs last about a second
    env.pop("PNP_PROGRESS", None)
    cmd = f"{bindir / 'snakemake'} --cores 2 results/jacobian/amfm/test.parquet " \
          "results/features/amfm/train.pt"
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900)
    screen = proc.stdout.replace("\r\n", "\n")
    assert proc.returncode == 0, screen
    lines = [x.strip() for x in screen.splitlines() if x.strip().startswith("[pnp]")]
    descs = {LINE.match(x).group("desc") for x in lines if LINE.match(x)}
    assert {"amfm/test shard 0 jacobian", "amfm/train features"} <= descs, screen
    # the logs keep the whole record, bar included
    log = (workdir / "logs/compute_jacobian/amfm/test/shard-0000.log").read_text()
    assert "amfm/test shard 0 jacobian" in log and "4/4" in log
