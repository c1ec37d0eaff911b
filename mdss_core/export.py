"""Writing results users keep: float32 TIFF maps, PNG overlays, a CSV of scores, JSON.

Output names keep the input's defect folder and sample id (``OUT/hole/003_fused.tiff``) so
downstream tools can match results to inputs; a second sample with the same folder and id
(e.g. from another split) goes under its split (``OUT/validation/good/000_fused.tiff``).
Files are written to a temporary name and renamed (:mod:`mdss_core.atomic`), so a crash never
leaves half a file; what killed runs left in a folder is swept the first time it is written to.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mdss_core.atomic import atomic_write, sweep_stale_temps
from mdss_core.io.readers import read_rgb
from mdss_core.io.sample import SampleRef
from mdss_core.io.writers import write_png, write_tiff
from mdss_core.prediction import Prediction

CSV_COLUMNS = (
    "key", "split", "defect", "sample_id", "label", "score_rgb", "score_3d", "score_fused",
    "score_relative", "image_threshold", "pixel_threshold", "decision", "regions",
    "largest_region_px",
)  # fmt: skip


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
    """Collects predictions into ``out_dir``; :meth:`close` writes ``scores.csv``.

    Per sample: each modality's map as float32 TIFF, and a PNG overlay for each modality named
    in ``overlays`` ("fused", "rgb", "3d"; the RGB overlay shows the map on the 3D scale).
    """

    def __init__(self, out_dir: str | Path, overlays: Sequence[str] = ("fused",)) -> None:
        self.out_dir = Path(out_dir)
        self.overlays = tuple(overlays)
        self.rows: list[dict[str, Any]] = []
        self._used: set[Path] = set()
        self._swept: set[Path] = set()

    @property
    def written(self) -> int:
        """Samples whose files are all written (``scores.csv`` is only written by close)."""
        return len(self.rows)

    def _folder(self, folder: Path) -> Path:
        if folder not in self._swept:
            self._swept.add(folder)
            sweep_stale_temps(folder)
        return folder

    def stem_for(self, ref: SampleRef) -> Path:
        folder = Path(ref.defect or "samples")
        stem = folder / ref.sample_id
        if stem in self._used:
            stem = Path(ref.split or "other") / stem
        self._used.add(stem)
        return stem

    def add(self, ref: SampleRef, prediction: Prediction, rgb: np.ndarray | None = None) -> Path:
        stem = self.out_dir / self.stem_for(ref)
        self._folder(stem.parent)
        for name, image in prediction.maps().items():
            target = stem.parent / f"{stem.name}_{name}.tiff"
            atomic_write(target, lambda tmp, im=image: write_tiff(tmp, im.astype(np.float32)))
        if self.overlays:
            rgb = read_rgb(ref.rgb_path) if rgb is None else rgb
        shown = {**prediction.maps(), "rgb": prediction.rgb_map_aligned}
        for name in self.overlays:
            overlay = heat_overlay(rgb, shown[name], prediction.pixel_threshold)
            target = stem.parent / f"{stem.name}_{name}_overlay.png"
            atomic_write(target, lambda tmp, im=overlay: write_png(tmp, im))
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
                "score_relative": f"{prediction.score_relative:.4g}",
                "image_threshold": f"{prediction.image_threshold:.6g}",
                "pixel_threshold": f"{prediction.pixel_threshold:.6g}",
                "decision": "anomalous" if prediction.is_anomalous else "normal",
                "regions": len(prediction.regions),
                "largest_region_px": largest,
            }
        )
        return stem

    def close(self) -> Path:
        path = self._folder(self.out_dir) / "scores.csv"

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)

        return atomic_write(path, write)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
