"""Error types whose message is one line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class MDSSError(Exception):
    """Base class: every error mdss raises on purpose is one of these."""


class DataError(MDSSError):
    """A sample file or folder is missing, unreadable or inconsistent."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ModelFileError(MDSSError):
    """A model or teacher file is not usable (wrong kind, newer format, shape mismatch)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class Cancelled(MDSSError):
    """Raised inside long work when the caller's cancel token is set."""

    def __init__(self, what: str = "operation") -> None:
        super().__init__(f"{what} cancelled")
