"""One-line descriptions of the failures users meet: I/O errors, damaged files, memory.

The CLI and the GUI workers report through :func:`describe`, so a full disk or an undecodable
file reads the same everywhere. An exception it does not know is a bug: the caller shows its
traceback (``mdss --debug``, the GUI log) instead of guessing.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import zlib
from pathlib import Path

import cv2
import tifffile
from safetensors import SafetensorError

from mdss_core.errors import MDSSError

# Errors raised by the decoders of the files we read (model, TIFF, PNG): the file is damaged.
DECODER_ERRORS: tuple[type[BaseException], ...] = (
    SafetensorError,
    tifffile.TiffFileError,
    cv2.error,
    zlib.error,
)

# safetensors' Rust errors carry the OS error only in their text: "... (os error 28)".
_OS_ERROR_IN_TEXT = re.compile(r"os error (\d+)")


def cause(exc: BaseException) -> str:
    """Why an I/O call failed, in a few words: ``no space left on device``."""
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        found = _OS_ERROR_IN_TEXT.search(str(exc))
        code = int(found.group(1)) if found else None
    if code == errno.EFBIG:  # RLIMIT_FSIZE or a file system's own limit
        return "file too large (file size limit reached)"
    if code:
        return os.strerror(code).lower()
    return first_line(exc)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, else its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe(exc: BaseException) -> str | None:
    """One line for an expected failure, naming the file when the exception knows it.

    ``None`` for anything else (a bug), which the caller should show with its traceback.
    """
    if isinstance(exc, MDSSError):
        return str(exc)
    if isinstance(exc, MemoryError):
        detail = str(exc).strip()
        return f"out of memory ({detail})" if detail else "out of memory"
    if isinstance(exc, OSError):
        name = exc.filename
        return f"{name}: {cause(exc)}" if name else cause(exc)
    if isinstance(exc, DECODER_ERRORS):
        return f"damaged file ({type(exc).__name__}: {first_line(exc)})"
    return None


def stopped_early(exc: BaseException, written: int, total: int, out: str | Path) -> BaseException:
    """The error to report when ``mdss predict`` (plain, resumed or on Ray) stops early: what
    failed, plus what is on disk.

    ``scores.csv`` is written once, after the last sample, so it never lists a subset; the
    per-sample files written before the failure are complete (each written atomically).
    Interrupts and bugs are returned as they are, after a line saying what was written.
    """
    note = f"{written} of {total} samples written to {out}; scores.csv not written"
    if written:
        note += " (rerun with --resume to score only the rest)"
    message = describe(exc)
    if message is None:
        print(f"mdss: {note}", file=sys.stderr)
        return exc
    return MDSSError(f"{message} ({note})")
