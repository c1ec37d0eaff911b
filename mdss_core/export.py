"""Writing results users keep: float32 TIFF maps, PNG overlays, a CSV of scores, JSON.

Output names keep the input's defect folder and sample id (``OUT/hole/003_fused.tiff``) so
downstream tools can match results to inputs; a second sample with the same folder and id
(e.g. from another split) goes under its split (``OUT/validation/good/000_fused.tiff``).
Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from mdss_core.io.readers import read_rgb
from mdss_core.io.sample import SampleRef
from mdss_core.prediction import Prediction

CSV_COLUMNS = (
    "key", "split", "defect", "sample_id", "label", "score_rgb", "score_3d", "score_fused",
    "image_threshold", "decision", "regions", "largest_region_px",
)  # fmt: skip


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)``, then rename ``tmp`` onto ``path`` (same folder: an atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; keep the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, default=_json_default)
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def heat_overlay(
    rgb: np.ndarray, score_map: np.ndarray, threshold: float, alpha: float = 0.5
) -> np.ndarray:
    """RGB image blended with a JET heat map in which ``threshold`` sits mid-scale, + contour."""
    scale = 2.0 * threshold if threshold > 0 else float(score_map.max() or 1.0)
    heat = np.clip(score_map / scale, 0, 1)
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    blended = (rgb * (1 - alpha) + colours * alpha).astype(np.uint8)
    contours, _ = cv2.findContours(
        (score_map >= threshold).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(blended, contours, -1, (255, 255, 255), 1)
    return blended


class ResultWriter:
    """Collects predictions into ``out_dir``; :meth:`close` writes ``scores.csv``."""

    def __init__(self, out_dir: str | Path, png: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.png = png
        self.rows: list[dict[str, Any]] = []
        self._used: set[Path] = set()

    def stem_for(self, ref: SampleRef) -> Path:
        folder = Path(ref.defect or "samples")
        stem = folder / ref.sample_id
        if stem in self._used:
            stem = Path(ref.split or "other") / stem
        self._used.add(stem)
        return stem

    def add(self, ref: SampleRef, prediction: Prediction, rgb: np.ndarray | None = None) -> Path:
        stem = self.out_dir / self.stem_for(ref)
        for name, image in (
            ("rgb", prediction.rgb_map),
            ("3d", prediction.sdf_map),
            ("fused", prediction.fused_map),
        ):
            target = stem.parent / f"{stem.name}_{name}.tiff"
            atomic_write(target, lambda tmp, im=image: tifffile.imwrite(tmp, im.astype(np.float32)))
        if self.png:
            rgb = read_rgb(ref.rgb_path) if rgb is None else rgb
            overlay = heat_overlay(rgb, prediction.fused_map, prediction.pixel_threshold)
            target = stem.parent / f"{stem.name}_fused_overlay.png"
            atomic_write(target, lambda tmp: _imwrite_png(tmp, overlay))
        largest = max((r.area_px for r in prediction.regions), default=0)
        self.rows.append(
            {
                "key": ref.key,
                "split": ref.split,
                "defect": ref.defect,
                "sample_id": ref.sample_id,
                "label": ref.label,
                "score_rgb": f"{prediction.score_rgb:.6g}",
                "score_3d": f"{prediction.score_3d:.6g}",
                "score_fused": f"{prediction.score_fused:.6g}",
                "image_threshold": f"{prediction.image_threshold:.6g}",
                "decision": "anomalous" if prediction.is_anomalous else "normal",
                "regions": len(prediction.regions),
                "largest_region_px": largest,
            }
        )
        return stem

    def close(self) -> Path:
        path = self.out_dir / "scores.csv"

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)

        return atomic_write(path, write)


def _imwrite_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
