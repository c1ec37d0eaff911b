"""Find samples on disk: an MVTec 3D-AD dataset/category/split, or a plain sample folder.

Accepted shapes of ``path`` (checked in this order):
1. a dataset root holding category folders (``<root>/<category>/train|validation|test``);
2. a category folder holding ``train``/``validation``/``test`` splits;
3. a split folder holding defect folders (``good``, ``hole`` …) each with ``rgb/`` + ``xyz/``;
4. a sample folder with ``rgb/`` + ``xyz/`` (+ optional ``gt/``);
5. a flat folder of ``NNN.png`` + ``NNN.tiff`` pairs (optional ``NNN_gt.png`` masks).
Nothing is loaded here: the index lists :class:`SampleRef` objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mdss_core.errors import DataError
from mdss_core.io.sample import GOOD, SampleRef

SPLITS = ("train", "validation", "test")
RGB_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
XYZ_SUFFIXES = (".tiff", ".tif")


@dataclass
class DatasetIndex:
    """Samples found under ``root``; ``problems`` lists skipped files (non-strict mode)."""

    root: Path
    refs: list[SampleRef]
    category: str = ""
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self) -> Iterator[SampleRef]:
        return iter(self.refs)

    def __getitem__(self, i: int) -> SampleRef:
        return self.refs[i]

    def select(self, split: str | None = None, defect: str | None = None) -> DatasetIndex:
        refs = [
            r
            for r in self.refs
            if (split is None or r.split == split) and (defect is None or r.defect == defect)
        ]
        return DatasetIndex(self.root, refs, self.category, list(self.problems))

    @property
    def splits(self) -> list[str]:
        return sorted({r.split for r in self.refs})

    @property
    def defects(self) -> list[str]:
        return sorted({r.defect for r in self.refs})


def open_dataset(
    path: str | Path, category: str | None = None, split: str | None = None, strict: bool = True
) -> DatasetIndex:
    """Index the samples under ``path``; with ``strict`` a missing partner file is an error.

    In non-strict mode (the GUI) incomplete pairs are skipped and described in ``problems``.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(root, "folder not found")
    if not root.is_dir():
        raise DataError(root, "not a folder (open the folder that holds the samples)")
    problems: list[str] = []
    cat_name = ""
    categories = _category_folders(root)
    if categories:
        if category is None:
            if len(categories) > 1:
                names = ", ".join(sorted(c.name for c in categories))
                raise DataError(root, f"holds several categories ({names}); choose one")
            category = categories[0].name
        cat_dir = root / category
        if cat_dir not in categories:
            raise DataError(root, f"no category '{category}' here")
        refs = _index_category(cat_dir, problems, strict)
        cat_name = category
    elif _is_category(root):
        refs = _index_category(root, problems, strict)
        cat_name = root.name
    elif _defect_folders(root):
        refs = _index_split(root, root.name if root.name in SPLITS else "", "", problems, strict)
        cat_name = root.parent.name if root.name in SPLITS else ""
    elif (root / "rgb").is_dir() or (root / "xyz").is_dir():
        defect = root.name if root.parent.name in SPLITS else ""
        split = root.parent.name if defect else ""
        refs = _index_sample_folder(root, split, defect, "", problems, strict)
    else:
        refs = _index_flat_folder(root, problems, strict)
    if split is not None:
        refs = [r for r in refs if r.split == split]
    if not refs:
        detail = f" ({problems[0]})" if problems else ""
        raise DataError(
            root,
            "no samples found: expected an MVTec 3D-AD category, a folder with rgb/ and xyz/, "
            f"or NNN.png + NNN.tiff pairs{detail}",
        )
    refs = [
        SampleRef(r.sample_id, r.rgb_path, r.xyz_path, r.gt_path, r.split, r.defect, cat_name)
        for r in refs
    ]
    return DatasetIndex(root, refs, cat_name, problems)


def with_extra_good(dataset: DatasetIndex, folders: Sequence[str | Path]) -> DatasetIndex:
    """``dataset`` with the normal samples under each of ``folders`` added to its ``train``
    split (``train/good``), e.g. parts an inspector marked as good after a false alarm.

    A folder may have any shape :func:`open_dataset` reads; only its good samples (or, in a
    plain folder without labels, all of them) are taken. Their ids get an ``extraN-`` prefix
    so they never collide with the dataset's own ``train/good`` ids.
    """
    refs = list(dataset.refs)
    for n, folder in enumerate(folders, start=1):
        extra = open_dataset(folder, strict=False)
        good = [r for r in extra.refs if r.label == 0 or (r.label < 0 and r.gt_path is None)]
        if not good:
            raise DataError(folder, "no good samples to add to the training set")
        prefix = "extra" if len(folders) == 1 else f"extra{n}"
        refs += [
            SampleRef(
                f"{prefix}-{r.sample_id}",
                r.rgb_path,
                r.xyz_path,
                None,
                "train",
                GOOD,
                dataset.category,
            )  # fmt: skip
            for r in good
        ]
    return DatasetIndex(dataset.root, refs, dataset.category, list(dataset.problems))


def category_names(root: str | Path) -> list[str]:
    """Names of the category folders under a dataset root (none when ``root`` is not one)."""
    root = Path(root).expanduser()
    return [p.name for p in _category_folders(root)] if root.is_dir() else []


def _is_category(path: Path) -> bool:
    return any((path / s).is_dir() and _defect_folders(path / s) for s in SPLITS)


def _category_folders(root: Path) -> list[Path]:
    return sorted(p for p in _subdirs(root) if _is_category(p))


def _defect_folders(path: Path) -> list[Path]:
    return [p for p in _subdirs(path) if (p / "rgb").is_dir() and (p / "xyz").is_dir()]


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(path, f"cannot list folder ({exc.strerror})") from None


def _index_category(cat_dir: Path, problems: list[str], strict: bool) -> list[SampleRef]:
    refs: list[SampleRef] = []
    for split in SPLITS:
        if (cat_dir / split).is_dir():
            refs += _index_split(cat_dir / split, split, cat_dir.name, problems, strict)
    return refs


def _index_split(
    split_dir: Path, split: str, category: str, problems: list[str], strict: bool
) -> list[SampleRef]:
    refs: list[SampleRef] = []
    # good first, then defects alphabetically: a stable, readable order everywhere.
    folders = sorted(_defect_folders(split_dir), key=lambda p: (p.name != GOOD, p.name))
    for defect_dir in folders:
        refs += _index_sample_folder(defect_dir, split, defect_dir.name, category, problems, strict)
    return refs


def _index_sample_folder(
    folder: Path, split: str, defect: str, category: str, problems: list[str], strict: bool
) -> list[SampleRef]:
    rgb = _files_by_stem(folder / "rgb", RGB_SUFFIXES)
    xyz = _files_by_stem(folder / "xyz", XYZ_SUFFIXES)
    gt = _files_by_stem(folder / "gt", RGB_SUFFIXES)
    return _pair(rgb, xyz, gt, split, defect, category, problems, strict)


def _index_flat_folder(folder: Path, problems: list[str], strict: bool) -> list[SampleRef]:
    images = _files_by_stem(folder, RGB_SUFFIXES)
    gt = {stem[: -len("_gt")]: p for stem, p in images.items() if stem.endswith("_gt")}
    rgb = {stem: p for stem, p in images.items() if not stem.endswith("_gt")}
    xyz = _files_by_stem(folder, XYZ_SUFFIXES)
    return _pair(rgb, xyz, gt, "", "", "", problems, strict)


def _pair(
    rgb: dict[str, Path],
    xyz: dict[str, Path],
    gt: dict[str, Path],
    split: str,
    defect: str,
    category: str,
    problems: list[str],
    strict: bool,
) -> list[SampleRef]:
    refs = []
    for stem in sorted(set(rgb) | set(xyz)):
        if stem not in xyz or stem not in rgb:
            have = rgb.get(stem) or xyz[stem]
            missing = "point cloud (.tiff)" if stem not in xyz else "RGB image (.png)"
            message = f"{have}: no partner {missing} for sample {stem}"
            if strict:
                raise DataError(have, f"no partner {missing} for sample {stem}")
            problems.append(message)
            continue
        refs.append(SampleRef(stem, rgb[stem], xyz[stem], gt.get(stem), split, defect, category))
    return refs


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    }
