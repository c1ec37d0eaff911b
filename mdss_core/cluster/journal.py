"""The journal of a scoring run: one JSON line per finished sample in the output folder.

Why: an archive run takes hours; when it stops (Ctrl+C, a lost node, a reboot) the next run
with ``--resume`` reads the journal and scores only what is missing. A line is appended after
the sample's files are all written (each atomically), with one ``write`` on a file opened for
appending, so a line is either whole or, after a crash mid-write, an unfinished last line that
:func:`read_journal` ignores (that sample is scored again). The first line says which model and
settings wrote the run, so that a resume never mixes two models' results in one folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdss_core.atomic import write_bytes_atomic
from mdss_core.errors import MDSSError, WriteError
from mdss_core.export import sample_identity
from mdss_core.failures import cause
from mdss_core.hashing import file_sha256

JOURNAL_NAME = ".mdss-journal.jsonl"
FORMAT = "mdss-predict-journal"
VERSION = 1


class RunJournal:
    """Appends one line per finished sample to ``OUT/.mdss-journal.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def start(cls, out_dir: str | Path, header: dict[str, Any]) -> RunJournal:
        """A fresh journal (an old one in the folder is replaced): a run that starts over."""
        path = Path(out_dir) / JOURNAL_NAME
        line = json.dumps({"format": FORMAT, "version": VERSION, **header}) + "\n"
        write_bytes_atomic(path, line.encode())
        return cls(path)

    @classmethod
    def at(cls, out_dir: str | Path) -> RunJournal:
        """The journal already in ``out_dir``, to append to (a resumed run)."""
        return cls(Path(out_dir) / JOURNAL_NAME)

    def append(self, entry: dict[str, Any]) -> None:
        text = json.dumps(entry, separators=(",", ":"), default=_plain)
        data = (text + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                if os.write(fd, data) != len(data):  # a short write: the disk is full
                    raise OSError(28, "No space left on device")
            finally:
                os.close(fd)
        except OSError as exc:
            raise WriteError(self.path, cause(exc)) from None


def journal_header(model_path: str | Path, overlays: Sequence[str]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues."""
    return {"model_sha256": model_sha256(model_path), "overlays": list(overlays)}


def model_sha256(model_path: str | Path) -> str:
    """The model's identity: the file's sha256, or for an export folder (or its
    ``model.json``) its manifest's, which holds the sha256 of every file in it."""
    path = Path(model_path)
    folder = path if path.is_dir() else path.parent if path.name == "model.json" else None
    if folder is not None and (folder / "manifest.json").is_file():
        return file_sha256(folder / "manifest.json")
    return file_sha256(path)


def start_journal(
    out_dir: str | Path, model_path: str | Path, overlays: Sequence[str]
) -> RunJournal:
    return RunJournal.start(out_dir, journal_header(model_path, overlays))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars: their exact Python value
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_journal(out_dir: str | Path, header: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The finished samples' entries of the run journalled in ``out_dir`` (``None``: there is
    no journal). A journal written by another model or with other settings is refused: mixing
    two runs' results in one folder would be silently wrong."""
    path = Path(out_dir) / JOURNAL_NAME
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MDSSError(f"{path}: cannot read the run journal ({cause(exc)})") from None
    try:
        first = json.loads(lines[0])
    except ValueError:
        first = None
    if not isinstance(first, dict) or first.get("format") != FORMAT:
        raise MDSSError(f"{path}: not an mdss run journal (delete it, or drop --resume)")
    if first.get("version") != VERSION:
        raise MDSSError(f"{path}: journal version {first.get('version')} is not supported")
    for name, value in header.items():
        if first.get(name) != value:
            raise MDSSError(
                f"{path}: the interrupted run used another {name.replace('_', ' ')}; "
                "resume with the same model and options, or drop --resume to start over"
            )
    entries = []
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the unfinished last line of a killed run: that sample is scored again
        if isinstance(entry, dict) and "id" in entry:
            entries.append(entry)
    return entries


__all__ = [
    "JOURNAL_NAME",
    "RunJournal",
    "file_sha256",
    "journal_header",
    "read_journal",
    "sample_identity",
    "start_journal",
]
