"""The CLI contract: user errors in one line (exit 2), bugs with a traceback, no silent skips."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pnp_core import cli


def test_user_error_is_one_line(tmp_path, capsys):
    assert cli.main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pnp check-config: error:") and "missing.yaml" in err
    assert len(err.splitlines()) == 1


def test_a_bug_keeps_its_traceback(monkeypatch):
    from pnp_core.commands import info

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info, "run", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["info"])


def test_a_broken_command_module_fails_loudly(tmp_path):
    # Make importing one command module fail; the CLI must not skip the command silently.
    code = (
        "import importlib.abc, sys\n"
        "class Broken(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'pnp_core.commands.info':\n"
        "            raise ImportError('broken module info')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "from pnp_core.cli import main\n"
        "main(['--help'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode != 0 and "broken module info" in proc.stderr
