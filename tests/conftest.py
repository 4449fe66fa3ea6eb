"""Shared fixtures: devices to run on, the repo root, a scratch copy of the workflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow (Snakefile, workflow/, config) in tmp_path, without outputs."""
    dst = tmp_path / "wf"
    dst.mkdir()
    shutil.copy(REPO / "Snakefile", dst)
    shutil.copy(REPO / "config.yaml", dst)
    shutil.copy(REPO / "environment.yml", dst)
    shutil.copytree(REPO / "workflow", dst / "workflow")
    return dst
