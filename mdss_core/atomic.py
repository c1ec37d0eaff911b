"""Files users keep, written atomically, and the temp files that doing so may leave behind.

Every file is written to a temp file in the target's folder, then renamed onto the target: a
crash or a full disk never leaves half a file, and the file that was there stays until the new
one is complete. Temp names carry the writer's process id (``.NAME.mdss-tmp-PID-XXXXXXXX.EXT``)
so that a later run can tell the leftovers of a killed run (process gone, file older than this
run) from a temp file another running mdss is still writing, and sweep only the former.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from safetensors import SafetensorError

from mdss_core.errors import WriteError
from mdss_core.failures import cause

TEMP_TAG = ".mdss-tmp-"
_TEMP_NAME = re.compile(r"^\..*\.mdss-tmp-(\d+)-[a-z0-9_]{8}(\.\w+)?$")
# safetensors' save_file (0.8) writes its own ``.tmpXXXXXX`` (Rust tempfile) beside the target;
# earlier mdss versions saved through it, so a killed save could leave one of those.
_SAFETENSORS_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
RUN_STARTED = time.time()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which would race with other threads.
_UMASK = _read_umask()


def atomic_write(path: str | Path, write: Callable[[Path], None], sync: bool = False) -> Path:
    """Call ``write(tmp)``, then rename ``tmp`` onto ``path`` (same folder: an atomic rename).

    The temp file is removed on every failure. An ``OSError`` or safetensors error (disk full,
    read-only, permission) becomes a :class:`WriteError` naming ``path``. ``sync`` flushes the
    data to the disk before the rename, so a power cut cannot leave an empty file either.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.stem}{TEMP_TAG}{os.getpid()}-"
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise WriteError(path, cause(exc)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if sync:
            fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; keep the user's usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, SafetensorError)):
            raise WriteError(path, cause(exc)) from exc
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes, sync: bool = False) -> Path:
    """:func:`atomic_write` of bytes already in memory."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), sync=sync)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be made in it, before any work.

    Raises :class:`WriteError` (read-only file system, permission denied, not a folder…).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(folder, "exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".probe{TEMP_TAG}{os.getpid()}-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise WriteError(folder, cause(exc)) from None
    return folder


def sweep_stale_temps(folder: str | Path) -> list[Path]:
    """Remove what killed mdss runs left in ``folder``; returns the files removed.

    Only our own temp names whose process is gone (and, for safetensors' own temp files, whose
    header says they hold an mdss file), and only files last modified before this run started:
    a temp file that another mdss process is writing right now is never touched.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        ours = _TEMP_NAME.match(entry.name)
        if ours:
            stale = not _process_alive(int(ours.group(1)))
        elif _SAFETENSORS_TEMP.match(entry.name):
            stale = _holds_mdss_file(entry.path)
        else:
            continue
        try:
            if not stale or not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime >= RUN_STARTED:
                continue
            os.unlink(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove: leave it
        removed.append(Path(entry.path))
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def _holds_mdss_file(path: str) -> bool:
    """Whether a safetensors file's header metadata names an mdss format (model, teacher)."""
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if not 0 < size <= 1 << 24:
                return False
            header = json.loads(handle.read(size))
    except (OSError, struct.error, ValueError):
        return False
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(metadata, dict) and str(metadata.get("format", "")).startswith("mdss")
