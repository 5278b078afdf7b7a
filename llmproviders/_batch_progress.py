"""Progress of a batch job: a tqdm bar when tqdm is installed, else one line on stderr.

``tqdm.auto`` gives notebooks a widget and terminals a text bar (``pip install
llmproviders[batch]``). Without tqdm, a compact line is redrawn in place on a terminal
(at most ten times a second) and printed every few seconds otherwise (a log file
gets a readable trail, not thousands of carriage returns). Both show how many items
are finished of how many, how many are done, failed and skipped, and the rate.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

__all__ = ["Progress", "make_progress"]

_TTY_EVERY = 0.1  # seconds between redraws on a terminal
_LOG_EVERY = 5.0  # seconds between lines elsewhere


class Progress:
    """Told about each finished item; shows nothing (the ``progress=False`` case)."""

    def start(self, total: int, skipped: int, failed: int = 0) -> None:
        """``total`` items, of which ``skipped`` came finished from the store (and
        ``failed`` came failed from it, not to be sent again)."""

    def update(self, done: int, failed: int) -> None:
        """One more item finished; ``done`` and ``failed`` are the run's counts so far."""

    def close(self) -> None:
        """The run is over (finished or not)."""


class LineProgress(Progress):
    """``batch: 40/100 items, 37 done, 1 failed, 2 skipped, 12.5/s, ~5s left`` on stderr."""

    def __init__(self, file: Optional[TextIO] = None) -> None:
        self.file = file if file is not None else sys.stderr
        isatty = getattr(self.file, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.total = self.skipped = self.done = self.failed = self.failed_before = 0
        self.started = time.monotonic()
        self.shown = -1.0
        self.width = 0
        self.closed = False

    def start(self, total: int, skipped: int, failed: int = 0) -> None:
        self.total, self.skipped, self.failed = total, skipped, failed
        self.failed_before = failed
        self.started = time.monotonic()
        self._show(force=True)

    def update(self, done: int, failed: int) -> None:
        self.done, self.failed = done, failed
        self._show(force=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._show(force=True, final=True)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        finished = self.done + self.failed
        rate = (finished - self.failed_before) / elapsed
        text = (
            f"batch: {finished + self.skipped}/{self.total} items, {self.done} done, {self.failed} failed, "
            f"{self.skipped} skipped, {rate:.1f}/s"
        )
        left = self.total - self.skipped - finished
        if left > 0 and rate > 0:
            text += f", ~{_duration(left / rate)} left"
        elif left <= 0:
            text += f", {_duration(elapsed)}"
        return text

    def _show(self, *, force: bool, final: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < (_TTY_EVERY if self.tty else _LOG_EVERY):
            return
        self.shown = now
        text = self.line()
        try:
            if self.tty:
                padding = " " * max(0, self.width - len(text))
                self.file.write("\r" + text + padding + ("\n" if final else ""))
                self.width = len(text)
            else:
                self.file.write(text + "\n")
            self.file.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not stop the batch


class TqdmProgress(Progress):
    """A ``tqdm.auto`` bar with the done, failed and skipped counts as its postfix."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None
        self._skipped = 0

    def start(self, total: int, skipped: int, failed: int = 0) -> None:
        self._skipped = skipped
        self._bar = self._tqdm(
            total=total, initial=skipped + failed, unit="item", desc="batch", file=sys.stderr, dynamic_ncols=True
        )
        self._bar.set_postfix(done=0, failed=failed, skipped=skipped, refresh=False)

    def update(self, done: int, failed: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix(done=done, failed=failed, skipped=self._skipped, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()


def make_progress(enabled: bool) -> Progress:
    """tqdm's bar if it is installed, else the stderr line; nothing when disabled."""
    if not enabled or sys.stderr is None:  # (pythonw has no stderr)
        return Progress()
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return LineProgress()
    return TqdmProgress(tqdm)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
