"""Progress reports and cancellation shared by every long-running engine function.

Engine functions take ``progress: ProgressCallback | None`` and ``cancel: CancelToken | None``.
A ``threading.Event`` is a valid cancel token; the GUI turns reports into Qt signals and the
CLI into a progress bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mdss_core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One report: ``step`` of ``total`` in ``stage``, with optional live metrics (e.g. loss)."""

    stage: str
    step: int
    total: int
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


ProgressCallback = Callable[[Progress], None]


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


def check_cancel(cancel: CancelToken | None, what: str = "operation") -> None:
    """Raise :class:`Cancelled` when the token is set; a ``None`` token never cancels."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(what)


def report(
    progress: ProgressCallback | None,
    stage: str,
    step: int,
    total: int,
    message: str = "",
    **metrics: float,
) -> None:
    """Send a report when a callback was given (keeps call sites one line)."""
    if progress is not None:
        progress(Progress(stage, step, total, message, dict(metrics)))
