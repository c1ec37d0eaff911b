"""Write synthetic categories in the MVTec 3D-AD layout.

Each category is built in a hidden sibling folder and moved into place only when complete, with
``synth.json`` written last: an interrupted run never looks like a finished category (the data
layer skips hidden folders).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mdss_core.errors import DataError
from mdss_core.io.writers import write_png, write_tiff
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.synth.categories import CATEGORIES
from mdss_core.synth.defects import DEFECT_KINDS
from mdss_core.synth.sample import GOOD, SynthSample, render_sample
from mdss_core.synth.scene import FRAME_WIDTH_M, WORKING_DISTANCE_M

GENERATOR_VERSION = "1"
MIN_SIZE, MAX_SIZE = 32, 2048


def category_defects(category: str) -> tuple[str, ...]:
    """Defect types planted in ``category`` (currently every kind, for every category)."""
    del category  # one list for all; kept per category so the layout can diverge later
    return tuple(DEFECT_KINDS)


def split_test_counts(n_test: int, defects: Sequence[str]) -> dict[str, int]:
    """Spread ``n_test`` over ``good`` and each defect, equal shares, remainder to the first."""
    folders = [GOOD, *defects]
    share, extra = divmod(n_test, len(folders))
    return {f: share + (1 if i < extra else 0) for i, f in enumerate(folders)}


def generate_dataset(
    out_dir: Path,
    categories: Sequence[str] | None = None,
    n_train: int = 60,
    n_val: int = 10,
    n_test: int = 40,
    size: int = 256,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write one MVTec 3D-AD-style folder per category under ``out_dir``; return their paths.

    Refuses (``DataError``) to replace a non-empty category folder unless ``overwrite``.
    Deterministic: the same arguments give byte-identical files.
    """
    out_dir = Path(out_dir).expanduser()
    names = list(CATEGORIES if categories is None else categories)
    _validate(out_dir, names, n_train, n_val, n_test, size, seed)
    targets = [out_dir / name for name in names]
    for target in targets:
        if target.exists() and not target.is_dir():
            raise DataError(target, "exists and is not a folder")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise DataError(target, "already exists and is not empty (use overwrite / --overwrite)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(out_dir, f"cannot create folder ({exc.strerror})") from None

    plans = {name: _plan(name, n_train, n_val, n_test) for name in names}
    total = sum(len(p) for p in plans.values())
    done = 0
    for name, target in zip(names, targets, strict=True):
        staging = out_dir / f".{name}.synth-partial"
        _remove_tree(staging)  # left over from an interrupted run: ours, never user data
        try:
            for split, folder, index in plans[name]:
                check_cancel(cancel, "synthetic dataset generation")
                sample = render_sample(
                    name, folder, index, size=size, seed=seed, split=split, plant=True
                )
                _write_sample(staging / split / folder, index, sample, with_gt=split == "test")
                done += 1
                report(progress, "synth", done, total, f"{name} {split}/{folder}")
            counts = split_test_counts(n_test, category_defects(name))
            _write_json(staging / "synth.json", _metadata(name, n_train, n_val, counts, size, seed))
            _swap_in(staging, target)
        except BaseException:
            _remove_tree(staging)
            raise
    return targets


def _validate(
    out_dir: Path, names: list[str], n_train: int, n_val: int, n_test: int, size: int, seed: int
) -> None:
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise DataError(
            out_dir, f"unknown category {unknown[0]!r} (choose from {', '.join(CATEGORIES)})"
        )
    if not names:
        raise DataError(out_dir, "no category to generate")
    if len(set(names)) != len(names):
        raise DataError(out_dir, "a category is listed twice")
    if min(n_train, n_val, n_test) < 0 or n_train + n_val + n_test == 0:
        raise DataError(out_dir, "sample counts must be >= 0 and not all zero")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(out_dir, f"image size must be between {MIN_SIZE} and {MAX_SIZE} px")
    if seed < 0:
        raise DataError(out_dir, "seed must be >= 0")


def _plan(category: str, n_train: int, n_val: int, n_test: int) -> list[tuple[str, str, int]]:
    plan = [("train", GOOD, i) for i in range(n_train)]
    plan += [("validation", GOOD, i) for i in range(n_val)]
    for folder, count in split_test_counts(n_test, category_defects(category)).items():
        plan += [("test", folder, i) for i in range(count)]
    return plan


def _write_sample(folder: Path, index: int, sample: SynthSample, with_gt: bool) -> None:
    stem = f"{index:03d}"
    _write(folder / "rgb" / f"{stem}.png", write_png, sample.rgb)
    _write(folder / "xyz" / f"{stem}.tiff", write_tiff, sample.xyz)
    if with_gt:
        _write(
            folder / "gt" / f"{stem}.png", write_png, np.where(sample.gt, 255, 0).astype(np.uint8)
        )


def _write(path: Path, writer: Callable[[Path, np.ndarray], None], image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        writer(path, image)
    except OSError as exc:
        raise DataError(path, f"cannot write ({exc.strerror or exc})") from None


def _metadata(
    category: str, n_train: int, n_val: int, test: dict[str, int], size: int, seed: int
) -> dict:
    return {
        "generator": "mdss synth",
        "version": GENERATOR_VERSION,
        "category": category,
        "seed": seed,
        "image_size": [size, size],
        "frame_width_m": FRAME_WIDTH_M,
        "pixel_spacing_m": FRAME_WIDTH_M / size,
        "working_distance_m": WORKING_DISTANCE_M,
        "counts": {"train": n_train, "validation": n_val, "test": test},
        "defects": [{"name": d, "kind": DEFECT_KINDS[d]} for d in category_defects(category)],
    }


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by the finished ``staging`` folder with renames (no half state)."""
    old = target.with_name(f".{target.name}.synth-old")
    _remove_tree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    _remove_tree(old)


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
