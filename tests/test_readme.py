"""README is the contract: its "your own synthesizer" example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def readme_section(repo: Path, title: str) -> list[tuple[str, str]]:
    """The fenced code blocks (language, text) of one README section."""
    text = (repo / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n## ", start)
    return FENCE.findall(text[start:end if end > 0 else None])


def test_readme_example_blocks_are_where_the_test_expects_them(repo):
    blocks = readme_section(repo, "### Your own synthesizer")
    assert [lang for lang, _ in blocks] == ["python", "yaml", "bash"]
    assert blocks[0][1].startswith("# mylab/synths.py") and blocks[1][1].startswith("# sine.yaml")


@pytest.mark.slow
def test_own_synthesizer_example_runs_as_written(repo, workdir):
    blocks = readme_section(repo, "### Your own synthesizer")
    for lang, code in blocks:
        if lang in ("python", "yaml"):  # first line "# <path>…": the file to write
            path = workdir / code.splitlines()[0].lstrip("# ").split()[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)  # the jobs must find mylab/ on their own
    commands = [c for lang, code in blocks if lang == "bash" for c in code.splitlines() if c]
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    merged = pd.read_parquet(workdir / "results/jacobian/sine/test.parquet")
    assert len(merged) == 2
