"""A dependency-free text progress bar that is a valid engine progress callback."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from mdss_core.progress import Progress

# The bar last drawn on a terminal without its newline yet: an error printed now must start on
# a line of its own (see :func:`end_open_line`).
_open_bar: ProgressBar | None = None


class ProgressBar:
    """Draws ``stage [#####.....] step/total eta metrics`` on one terminal line per stage."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._stage: str | None = None
        self._started = 0.0
        self._interactive = self.stream.isatty()
        self._last_draw = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.stage != self._stage:
            self._finish_line()
            self._stage = p.stage
            self._started = now
        last = p.step >= p.total
        # Non-interactive streams (CI logs) get a line every ~5 s instead of a redraw storm.
        if not last and now - self._last_draw < (0.1 if self._interactive else 5.0):
            return
        self._last_draw = now
        filled = int(self.width * p.fraction)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self._started
        eta = elapsed / p.fraction - elapsed if 0 < p.fraction < 1 else 0.0
        extras = " ".join(f"{k}={v:.4g}" for k, v in p.metrics.items())
        line = f"{p.stage:<10} [{bar}] {p.step}/{p.total} eta {eta:5.0f}s {extras} {p.message}"
        global _open_bar
        if self._interactive:
            self.stream.write("\r" + line.rstrip()[:160])
            _open_bar = self
            if last:
                self.stream.write("\n")
                self._stage = None
                _open_bar = None
        else:
            self.stream.write(line.rstrip() + "\n")
        self.stream.flush()

    def _finish_line(self) -> None:
        global _open_bar
        if self._interactive and self._stage is not None:
            self.stream.write("\n")
            self._stage = None
        if _open_bar is self:
            _open_bar = None


def end_open_line() -> None:
    """End a bar's line left open on the terminal (before an error message is printed)."""
    bar = _open_bar
    if bar is not None:
        bar._finish_line()
        bar.stream.flush()
