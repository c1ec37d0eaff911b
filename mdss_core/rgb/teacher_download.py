"""Download the published EfficientAD teacher archive (anomalib release) into a local cache."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mdss_core.errors import Cancelled, MDSSError
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.pdn import PDN_SIZES
from mdss_core.rgb.teacher import file_sha256

PUBLISHED_URL = (
    "https://github.com/openvinotoolkit/anomalib/releases/download/"
    "efficientad_pretrained_weights/efficientad_pretrained_weights.zip"
)
PUBLISHED_SHA256 = "c09aeaa2b33f244b3261a5efdaeae8f8284a949470a4c5a526c61275fe62684a"
ARCHIVE_NAME = "efficientad_pretrained_weights.zip"
EXTRACT_DIR = "efficientad_pretrained_weights"
CHUNK_BYTES = 1 << 20
MAX_MEMBER_BYTES = 512 << 20  # a teacher is ≈ 10–35 MB; refuse anything absurd (zip bombs)
TIMEOUT_S = 30.0


def default_cache_dir() -> Path:
    """``$MDSS_CACHE_DIR`` when set, else ``~/.cache/mdss``."""
    env = os.environ.get("MDSS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mdss"


def download_teacher(
    size: str = "small",
    cache_dir: str | Path | None = None,
    url: str = PUBLISHED_URL,
    sha256: str = PUBLISHED_SHA256,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Fetch (once) and unpack the teacher archive; return ``…/pretrained_teacher_{size}.pth``.

    The archive is streamed into a temp file in the cache folder, its sha256 checked BEFORE it
    is renamed into place (a mismatch deletes it), then the one member is extracted to a path
    chosen here (member names never choose where files go). A cached, verified archive is not
    downloaded again. Progress: ``stage="download"`` in bytes. Cancelling or failing leaves no
    partial file behind.
    """
    if size not in PDN_SIZES:
        raise ValueError(f"teacher size must be one of {PDN_SIZES}, not {size!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / ARCHIVE_NAME
    target = cache / EXTRACT_DIR / f"pretrained_teacher_{size}.pth"

    if archive.is_file() and file_sha256(archive) == sha256.lower():
        if target.is_file():
            report(progress, "download", 1, 1, "cached")
            return target
    else:
        _download_verified(url, sha256.lower(), archive, progress, cancel)
    _extract_member(archive, f"pretrained_teacher_{size}.pth", target)
    return target


def _download_verified(
    url: str,
    sha256: str,
    archive: Path,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> None:
    handle, temp_name = tempfile.mkstemp(dir=archive.parent, prefix=".download-", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            digest = _stream(url, out, progress, cancel)
        if digest != sha256:
            raise MDSSError(
                f"{url}: downloaded archive has sha256 {digest}, expected {sha256}; "
                "it was deleted (a changed or corrupted file)"
            )
        os.replace(temp, archive)
    finally:
        temp.unlink(missing_ok=True)


def _stream(
    url: str, out: BinaryIO, progress: ProgressCallback | None, cancel: CancelToken | None
) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            report(progress, "download", 0, total, "downloading teacher archive")
            while True:
                check_cancel(cancel, "teacher download")
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                report(progress, "download", done, max(total, done), "downloading teacher archive")
    except Cancelled:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise MDSSError(
            f"teacher download from {url} failed ({str(reason).splitlines()[0][:160]}); "
            "`mdss teacher import FILE` works offline with a teacher file you already have"
        ) from exc
    return digest.hexdigest()


def _extract_member(archive: Path, member_name: str, target: Path) -> None:
    """Copy the member whose file name is ``member_name`` to ``target`` (atomically)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            matches = [
                info
                for info in bundle.infolist()
                if not info.is_dir() and PurePosixPath(info.filename).name == member_name
            ]
            if len(matches) != 1:
                raise MDSSError(
                    f"{archive}: expected one {member_name} in the archive, found {len(matches)}"
                )
            info = matches[0]
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in info.filename:
                raise MDSSError(f"{archive}: unsafe member path {info.filename!r}")
            if info.file_size > MAX_MEMBER_BYTES:
                raise MDSSError(f"{archive}: member {member_name} is implausibly large")
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
            try:
                with os.fdopen(handle, "wb") as out, bundle.open(info) as source:
                    while chunk := source.read(CHUNK_BYTES):
                        out.write(chunk)
                os.replace(temp_name, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp_name)
    except zipfile.BadZipFile as exc:
        raise MDSSError(f"{archive}: not a valid zip archive ({exc})") from exc
