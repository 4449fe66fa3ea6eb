"""Progress of long loops: a tqdm bar for the log, one summary line now and then on screen.

Workflow rules send a job's stdout and stderr to ``logs/…``, so a tqdm bar alone
is invisible while the job runs. :class:`Progress` keeps the bar on stderr (the
full record, in the log) and, every ``PNP_PROGRESS_INTERVAL`` seconds (default
30), writes one self-contained line to the terminal, e.g.::

    [pnp] ftm/train shard 2 jacobian: 96/256 samples (38%), 1:02 elapsed, ETA 1:43

Each line names the job, so lines of several jobs running side by side read
well. The terminal is ``/dev/tty`` (Snakemake's local jobs keep the terminal
they were started from); where there is none (a cluster job, CI) nothing is
written there, and where stderr already is the terminal (``pnp`` run by hand)
the bar itself is on screen, so no extra line is written. ``PNP_PROGRESS=off``
turns the screen lines off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

#: environment variables read here
INTERVAL_ENV, SWITCH_ENV = "PNP_PROGRESS_INTERVAL", "PNP_PROGRESS"
DEFAULT_INTERVAL = 30.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def summary_line(desc: str, done: int, total: int, elapsed: float, unit: str = "sample") -> str:
    """``[pnp] desc: done/total units (pct%), elapsed, ETA`` (ETA from the mean rate so far)."""
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    if done >= total:
        eta = "done"
    elif done > 0:
        eta = f"ETA {_clock(elapsed / done * (total - done))}"
    else:
        eta = "ETA unknown (no item finished yet)"
    return f"[pnp] {desc}: {done}/{total} {unit}s{pct}, {_clock(elapsed)} elapsed, {eta}"


def _open_terminal() -> TextIO | None:
    if os.environ.get(SWITCH_ENV, "").lower() in ("0", "off", "no", "false"):
        return None
    try:
        if sys.stderr.isatty():
            return None  # the tqdm bar is on screen already
    except (AttributeError, ValueError):
        pass
    try:
        return open("/dev/tty", "w", buffering=1, encoding="utf-8", errors="replace")
    except OSError:  # no controlling terminal
        return None


class Progress:
    """A tqdm bar on stderr plus periodic summary lines on the terminal.

    Use as a context manager; call :meth:`update` with the items just finished.

    Parameters
    ----------
    total : number of items
    desc : what runs, naming the job (``"ftm/train shard 0 jacobian"``)
    unit : item name for the bar and the lines
    disable : no bar and no lines
    interval : seconds between screen lines (default: ``$PNP_PROGRESS_INTERVAL`` or 30)
    screen : stream for the lines (default: the terminal, see the module docstring);
        pass one to capture them
    """

    def __init__(self, total: int, desc: str = "", *, unit: str = "sample",
                 disable: bool = False, interval: float | None = None,
                 screen: TextIO | None = None) -> None:
        from tqdm.auto import tqdm

        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = 0
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=disable)
        if interval is None:
            interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
        self.interval = max(float(interval), 0.05)
        self._own_screen = screen is None
        self.screen = None if disable else (screen if screen is not None else _open_terminal())
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._lines = 0
        self._thread = None
        if self.screen is not None:
            self._thread = threading.Thread(target=self._loop, name="pnp-progress", daemon=True)
            self._thread.start()

    def _emit(self) -> None:
        line = summary_line(self.desc, self.done, self.total, time.monotonic() - self._t0,
                            self.unit)
        try:
            self.screen.write(line + "\n")
            self.screen.flush()
            self._lines += 1
        except (OSError, ValueError):  # the terminal went away: keep computing
            self.screen = None
            self._stop.set()

    def _loop(self) -> None:
        # a timer, not update(): a line comes every interval even while one batch runs long
        while not self._stop.wait(self.interval):
            self._emit()

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        self.bar.update(n)

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if self._lines and self.screen is not None:
                self._emit()  # the closing line ("done", or where it stopped)
        if self._own_screen and self.screen is not None:
            self.screen.close()
        self.screen = None
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Progress", "summary_line", "INTERVAL_ENV", "SWITCH_ENV"]
