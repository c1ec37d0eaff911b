"""`MDSSModel`: the engine's façade — fit, predict, evaluate, save, load.

One model file: safetensors tensors (``rgb.*`` teacher/student/statistics, ``sdf.*`` network)
with JSON metadata (format version, config, teacher origin, calibration, training record).
Written atomically; loading never unpickles anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as serialize_safetensors

from mdss_core import __version__
from mdss_core.atomic import sweep_stale_temps, write_bytes_atomic
from mdss_core.batched import predict_batched
from mdss_core.config import MDSSConfig, get_preset
from mdss_core.devices import resolve_device
from mdss_core.errors import DataError, ModelFileError
from mdss_core.failures import cause
from mdss_core.fusion import Calibration, calibrate, fuse_maps, image_score
from mdss_core.geometry.infer import blur_score_grid, point_scores, scores_to_map
from mdss_core.geometry.network import SDFNet, build_sdf_net
from mdss_core.geometry.train import train_sdf
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import Sample, SampleRef
from mdss_core.prediction import Prediction
from mdss_core.preprocess.pipeline import PreparedSample, prepare
from mdss_core.preprocess.ready import PatchSettings, ReadySample, make_ready
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.regions import find_regions
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.teacher_choice import resolve_teacher
from mdss_core.rgb.train import train_student

FORMAT = "mdss-model"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".mdss"


class MDSSModel:
    """A trained MDSS model for one product category."""

    def __init__(
        self,
        config: MDSSConfig,
        rgb: RGBBranch,
        sdf: SDFNet,
        calibration: Calibration,
        teacher_origin: dict[str, Any],
        training: dict[str, Any] | None = None,
        name: str = "model",
        device: str = "cpu",
    ) -> None:
        self.config = config
        self.rgb = rgb.to(device).eval()
        self.sdf = sdf.to(device).eval()
        self.calibration = calibration
        self.teacher_origin = teacher_origin
        self.training = training or {}
        self.name = name
        self.device = device

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        dataset: DatasetIndex | Sequence[SampleRef],
        config: MDSSConfig | str = "fast",
        *,
        teacher: str | Path | None = None,
        device: str = "auto",
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> MDSSModel:
        """Train on the ``train`` split; calibrate fusion and thresholds on ``validation``.

        Without a validation split, ``config.holdout_fraction`` of the training samples (at least
        one) is held out for calibration. Raises ``Cancelled`` when the token is set; nothing is
        written to disk here, so a cancelled run leaves the user's files untouched.
        """
        if isinstance(config, str):
            config = get_preset(config)
        device = resolve_device(device)
        started = time.perf_counter()
        train_refs, val_refs = _split_for_training(dataset, config)
        torch.manual_seed(config.seed)

        teacher_net, origin, rgb_config = resolve_teacher(teacher, config.rgb, config.seed)
        config = replace(config, rgb=rgb_config)
        train = _prepare_all(train_refs, config, "prepare", progress, cancel)
        val = _prepare_all(val_refs, config, "prepare-val", progress, cancel)

        images = np.stack([p.rgb for p in train])
        masks = np.stack([p.foreground_mask for p in train])
        t_rgb = time.perf_counter()
        rgb = train_student(teacher_net, images, masks, config.rgb, device, progress, cancel)
        t_sdf = time.perf_counter()
        sdf = train_sdf([p.points for p in train], config.sdf, device, progress, cancel)
        t_cal = time.perf_counter()

        model = cls(config, rgb, sdf, _PENDING, origin, name="model", device=device)
        report(progress, "calibrate", 0, len(val))
        rgb_maps, sdf_maps = [], []
        for i, prepared in enumerate(val):
            check_cancel(cancel, "calibration")
            rgb_map, sdf_map, _ = model._branch_maps(prepared)
            rgb_maps.append(rgb_map)
            sdf_maps.append(sdf_map)
            report(progress, "calibrate", i + 1, len(val))
        model.calibration = calibrate(rgb_maps, sdf_maps, [p.foreground_mask for p in val])
        model.training = {
            "seconds": round(time.perf_counter() - started, 1),
            "seconds_rgb": round(t_sdf - t_rgb, 1),
            "seconds_geometry": round(t_cal - t_sdf, 1),
            "device": device,
            "n_train": len(train),
            "n_validation": len(val),
            "dataset": str(getattr(dataset, "root", "")),
            "category": getattr(dataset, "category", ""),
            "mdss_version": __version__,
        }
        model.name = getattr(dataset, "category", "") or "model"
        return model

    # ------------------------------------------------------------------ inference
    @property
    def image_threshold(self) -> float:
        return self.calibration.image_threshold

    @property
    def pixel_threshold(self) -> float:
        return self.calibration.pixel_threshold

    @property
    def patch_settings(self) -> PatchSettings:
        """How this model's geometry branch cuts a cloud into patches."""
        sdf = self.config.sdf
        return PatchSettings(sdf.points_per_patch, sdf.coverage, self.config.seed)

    def _branch_maps(self, prepared: PreparedSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB map, blurred 3D map and unblurred per-point grid, all at model size."""
        patches = self.patch_settings.cut(prepared.points)
        return self._batch_branch_maps([prepared], [patches])[0]

    def _batch_branch_maps(
        self, prepared: Sequence[PreparedSample], patches: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`_branch_maps` of several samples, each network run once over the batch."""
        cfg = self.config
        # A GPU takes the whole batch in one pass; on CPU one image per pass is faster (a pass of
        # 8 images cost ~6 % more per image in `mdss bench`: activations outgrow the cache).
        rgb_batch = len(prepared) if self.device.startswith("cuda") else 1
        images = np.stack([p.rgb for p in prepared])
        rgb_maps = self.rgb.anomaly_maps(images, batch_size=rgb_batch, amp=cfg.rgb.amp)
        maps = []
        for p, rgb_map, scores in zip(
            prepared, rgb_maps, self._batch_point_scores(prepared, patches), strict=True
        ):
            # Background pixels are outside what the student was taught (masked loss): zero them.
            rgb_map = np.where(p.foreground_mask, rgb_map, 0.0).astype(np.float32)
            point_grid = scores_to_map(scores, p.pixel_index, p.size, sigma=0)
            sdf_map = blur_score_grid(point_grid, cfg.sdf_blur_sigma)
            maps.append((rgb_map, sdf_map, point_grid))
        return maps

    def _batch_point_scores(
        self, prepared: Sequence[PreparedSample], patches: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Per-point scores of each sample, from one pass over all the samples' patches.

        The clouds are stacked and each patch table shifted by its cloud's offset; a patch never
        spans two clouds, so every point keeps the minimum over its own sample's patches.
        """
        counts = [len(p.points) for p in prepared]
        offsets = np.cumsum([0, *counts[:-1]])
        points = np.concatenate([p.points for p in prepared])
        index = np.concatenate(
            [table + offset for table, offset in zip(patches, offsets, strict=True)]
        )
        scores = point_scores(self.sdf, points, index, self.device)
        return np.split(scores, np.cumsum(counts)[:-1])

    def predict(self, sample: Sample) -> Prediction:
        """Maps, per-point scores, image scores and regions at the sample's own resolution."""
        ready = make_ready(sample, self.config.preprocess, self.patch_settings)
        return self.predict_ready([ready])[0]

    def predict_ready(self, batch: Sequence[ReadySample]) -> list[Prediction]:
        """:meth:`predict` of samples already made ready (``preprocess.ready``), as one batch.

        ``timings_ms["branches"]`` is the batch's network time shared equally by its samples.
        """
        if not batch:
            return []
        start = time.perf_counter()
        maps = self._batch_branch_maps([r.prepared for r in batch], [r.patches for r in batch])
        branches_ms = 1e3 * (time.perf_counter() - start) / len(batch)
        return [self._assemble(r, m, branches_ms) for r, m in zip(batch, maps, strict=True)]

    def _assemble(
        self,
        ready: ReadySample,
        maps: tuple[np.ndarray, np.ndarray, np.ndarray],
        branches_ms: float,
    ) -> Prediction:
        """Full-resolution maps, fusion, regions and scores of one sample."""
        start = time.perf_counter()
        sample, prepared = ready.sample, ready.prepared
        rgb_small, sdf_small, point_small = maps
        h, w = sample.shape
        rgb_map = _resize(rgb_small, h, w)
        sdf_map = _resize(sdf_small, h, w)
        aligned = self.calibration.align_rgb(rgb_map)
        fused = fuse_maps(aligned, sdf_map)
        object_mask = prepared.object_mask_full
        point_map = cv2.resize(point_small, (w, h), interpolation=cv2.INTER_NEAREST)
        point_map = np.where(object_mask, point_map, 0.0).astype(np.float32)
        object_xyz = np.where(object_mask[..., None], sample.xyz, 0.0)
        labels, regions = find_regions(fused, aligned, sdf_map, self.pixel_threshold, object_xyz)
        fusion_ms = 1e3 * (time.perf_counter() - start)
        return Prediction(
            sample_key=sample.ref.key,
            rgb_map=rgb_map,
            rgb_map_aligned=aligned,
            sdf_map=sdf_map,
            point_scores=point_map,
            object_mask=object_mask,
            fused_map=fused,
            score_rgb=float(rgb_small.max()),
            score_3d=float(sdf_small.max()),
            score_fused=image_score(rgb_small, sdf_small),
            image_threshold=self.image_threshold,
            pixel_threshold=self.pixel_threshold,
            region_labels=labels,
            regions=regions,
            timings_ms={
                "preprocess": ready.preprocess_ms,
                "branches": branches_ms,
                "fusion": fusion_ms,
                "total": ready.preprocess_ms + branches_ms + fusion_ms,
            },
        )

    def predict_many(
        self,
        refs: Iterable[SampleRef],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        batch_size: int = 1,
        workers: int = 0,
    ) -> Iterator[tuple[SampleRef, Prediction]]:
        """Predict samples in order, yielding as they finish (the GUI shows them as they come).

        ``batch_size`` samples go through the networks at once and ``workers`` processes read
        and preprocess ahead (see :mod:`mdss_core.batched`); the defaults score one sample at a
        time in this thread.
        """
        return predict_batched(self, refs, batch_size, workers, progress, cancel)

    def evaluate(
        self,
        dataset: DatasetIndex | Sequence[SampleRef],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ):
        """Paper-style I-AUROC / AUPRO table on the test split (see ``mdss_core.evaluation``)."""
        from mdss_core.evaluation import evaluate_model

        return evaluate_model(self, dataset, progress, cancel)

    # ------------------------------------------------------------------ files
    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format_version": FORMAT_VERSION,
            "preset": self.config.preset,
            "device": self.device,
            "teacher": self.teacher_origin,
            "image_threshold": self.image_threshold,
            "pixel_threshold": self.pixel_threshold,
            "training": self.training,
        }

    def save(self, path: str | Path, half: bool = False) -> Path:
        """Write the model atomically (temp file in the same folder, synced, then renamed).

        ``half`` stores floating tensors as float16 (half the size; used for the shipped demo
        model); loading always restores float32 parameters. Temp files that killed saves left
        in the folder are removed first (:func:`mdss_core.atomic.sweep_stale_temps`); a failed
        write raises ``WriteError`` and leaves the previous file and no temp file.
        """
        path = Path(path)
        tensors = {f"rgb.{k}": v for k, v in self.rgb.state_dict().items()}
        tensors.update({f"sdf.{k}": v for k, v in self.sdf.state_dict().items()})
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        if half:
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        metadata = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "name": self.name,
            "config": json.dumps(self.config.to_dict()),
            "teacher_origin": json.dumps(self.teacher_origin),
            "calibration": json.dumps(self.calibration.to_dict()),
            "training": json.dumps(self.training),
        }
        # Serialised in memory and written by us: safetensors' save_file writes its own
        # ".tmpXXXXXX" beside the target, which a killed run leaves behind.
        data = serialize_safetensors(tensors, metadata=metadata)
        sweep_stale_temps(path.parent)
        return write_bytes_atomic(path, data, sync=True)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> MDSSModel:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(path, "model file not found")
        metadata = _read_metadata(path)
        if metadata.get("format") != FORMAT:
            raise ModelFileError(path, "not an mdss model file (no mdss metadata)")
        try:
            version = int(metadata.get("format_version", "0"))
        except ValueError:
            raise ModelFileError(path, "damaged model file (bad format version)") from None
        if version > FORMAT_VERSION:
            raise ModelFileError(
                path,
                f"written by a newer mdss (model format {version}); this version reads up to "
                f"{FORMAT_VERSION} — update mdss",
            )
        try:
            config = MDSSConfig.from_dict(json.loads(metadata["config"]))
            calibration = Calibration.from_dict(json.loads(metadata["calibration"]))
            origin = json.loads(metadata.get("teacher_origin", "{}"))
            training = json.loads(metadata.get("training", "{}"))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(path, f"damaged model metadata ({exc})") from None
        device = resolve_device(device)
        try:
            tensors = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:  # header fine, tensor data damaged/unreadable
            raise ModelFileError(path, f"damaged model file ({cause(exc)})") from None
        rgb = RGBBranch.from_state_dict(_strip(tensors, "rgb."), config.rgb, source=str(path))
        sdf = build_sdf_net(config.sdf)
        sdf_state = _strip(tensors, "sdf.")
        try:
            sdf.load_state_dict(sdf_state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            problem = f"3D network tensors do not match its config: {first}"
            raise ModelFileError(path, problem) from None
        name = metadata.get("name", path.stem)
        return cls(config, rgb, sdf, calibration, origin, training, name, device)


# Placeholder calibration while a model is being fitted (replaced before fit returns).
_PENDING = Calibration.from_dict(
    {
        "rgb": {"mean": 0.0, "std": 1.0},
        "sdf": {"mean": 0.0, "std": 1.0},
        "image_threshold": 0.0,
        "pixel_threshold": 0.0,
        "n_samples": 0,
    }
)


def _split_for_training(
    dataset: DatasetIndex | Sequence[SampleRef], config: MDSSConfig
) -> tuple[list[SampleRef], list[SampleRef]]:
    refs = list(dataset)
    train = [r for r in refs if r.split == "train"] or [r for r in refs if r.split == ""]
    val = [r for r in refs if r.split == "validation"]
    root = getattr(dataset, "root", "dataset")
    if not train:
        raise DataError(root, "no training samples (expected a train/good folder)")
    if any(r.label == 1 for r in train):
        raise DataError(root, "training samples must be defect-free (train holds anomalies)")
    if not val:
        if len(train) < 2:
            raise DataError(root, "need at least 2 normal samples (1 to train, 1 to calibrate)")
        count = max(1, round(len(train) * config.holdout_fraction))
        rng = np.random.default_rng(config.seed)
        held = set(rng.choice(len(train), count, replace=False).tolist())
        val = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
    return train, val


def _prepare_all(
    refs: Sequence[SampleRef],
    config: MDSSConfig,
    stage: str,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> list[PreparedSample]:
    prepared = []
    for i, ref in enumerate(refs):
        check_cancel(cancel, "data preparation")
        prepared.append(prepare(ref.load(), config.preprocess))
        report(progress, stage, i + 1, len(refs), ref.key)
    return prepared


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if image.shape == (h, w):
        return image.astype(np.float32, copy=False)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(path, f"not an mdss model file ({exc})") from None
