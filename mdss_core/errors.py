"""Error types whose message is one line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class MDSSError(Exception):
    """Base class: every error mdss raises on purpose is one of these."""


class FileProblem(MDSSError):
    """A problem with one file or folder: ``path`` and ``problem``, shown as ``path: problem``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # rebuilt from (path, problem) after crossing to another process
        return type(self), (self.path, self.problem)


class DataError(FileProblem):
    """A sample file or folder is missing, unreadable or inconsistent."""


class ModelFileError(FileProblem):
    """A model or teacher file is not usable (wrong kind, newer format, shape mismatch)."""


class WriteError(FileProblem):
    """A file or folder mdss writes could not be written; whatever was there is unchanged.

    Shown as ``cannot write PATH: problem`` (e.g. ``no space left on device``).
    """

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.problem}"


class ConfigError(MDSSError, ValueError):
    """Settings that cannot work or cannot be read back (``section: problem``)."""


class Cancelled(MDSSError):
    """Raised inside long work when the caller's cancel token is set."""

    def __init__(self, what: str = "operation") -> None:
        super().__init__(f"{what} cancelled")
