"""`MDSSModel`: the engine's façade — fit, predict, evaluate, save, load.

It holds the networks (:class:`MDSSNet`), the calibration and where the model came from, and
hands each job to its module: training to :mod:`mdss_core.fit`, scoring many samples to
:mod:`mdss_core.batched`, full-size maps to :mod:`mdss_core.assemble`, metrics to
:mod:`mdss_core.evaluation`, the file to :mod:`mdss_core.model_file`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mdss_core import fit as fitting
from mdss_core.assemble import assemble
from mdss_core.batched import predict_batched, score_batched
from mdss_core.checkpoint import Checkpointer
from mdss_core.config import DEFAULT_PRESET, MDSSConfig, get_preset
from mdss_core.devices import resolve_device
from mdss_core.errors import DataError
from mdss_core.evaluation import EvaluationReport, evaluate_predictions
from mdss_core.fusion import Calibration
from mdss_core.geometry.network import SDFNet
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import Sample, SampleRef
from mdss_core.model_file import FORMAT_VERSION, ModelRecord, read_model_file, write_model_file
from mdss_core.net import MDSSNet
from mdss_core.prediction import Prediction, Scored
from mdss_core.preprocess.ready import PatchSettings, Preparation, ReadySample, make_ready
from mdss_core.progress import CancelToken, ProgressCallback
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.teacher_choice import describe_teacher
from mdss_core.roi import Roi, mask_branch_maps


class MDSSModel:
    """A trained MDSS model for one product category."""

    def __init__(
        self,
        net: MDSSNet,
        calibration: Calibration,
        teacher_origin: dict[str, Any],
        training: dict[str, Any] | None = None,
        name: str = "model",
        device: str = "cpu",
        roi: Roi | None = None,
    ) -> None:
        self.net = net.to(device).eval()
        self.roi = roi  # the part of the image judged; None: all of it
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
        config: MDSSConfig | str = DEFAULT_PRESET,
        *,
        teacher: str | Path | None = None,
        device: str = "auto",
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        checkpoint: Checkpointer | None = None,
    ) -> MDSSModel:
        """Train and calibrate a model (see :func:`mdss_core.fit.fit`; CRD and DM-GRD:
        :mod:`mdss_core.crd.fit`, :mod:`mdss_core.dmgrd.fit`), keeping a ``checkpoint`` of
        the training when given one; the model itself is not written."""
        if isinstance(config, str):
            config = get_preset(config)
        if config.method == "crd":
            from mdss_core.crd.fit import fit_crd

            fitted = fit_crd(
                dataset, config, device=device, progress=progress, cancel=cancel,
                checkpoint=checkpoint,
            )  # fmt: skip
        elif config.method == "dmgrd":
            from mdss_core.dmgrd.fit import fit_dmgrd

            fitted = fit_dmgrd(
                dataset, config, device=device, progress=progress, cancel=cancel,
                checkpoint=checkpoint,
            )  # fmt: skip
        else:
            fitted = fitting.fit(
                dataset,
                config,
                teacher=teacher,
                device=device,
                progress=progress,
                cancel=cancel,
                checkpoint=checkpoint,
            )
        return cls(
            fitted.net,
            fitted.calibration,
            fitted.teacher_origin,
            fitted.training,
            fitted.name,
            fitted.device,
        )

    def recalibrate(
        self,
        dataset: DatasetIndex | Sequence[SampleRef],
        quantile: float | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        """Fusion statistics and default thresholds again, from the normal samples of
        ``dataset`` (all of them: pass a validation split or a folder of good parts), at
        ``quantile`` (default: the model's). The networks are not touched."""
        refs = [r for r in dataset if r.label == 0 or (r.label < 0 and r.gt_path is None)]
        if not refs:
            raise DataError(
                getattr(dataset, "root", "dataset"), "no normal samples to calibrate on"
            )
        if quantile is not None:
            self.net.config = replace(self.config, threshold_quantile=quantile)
        prepared = fitting.prepare_all(refs, self.config, "prepare-val", progress, cancel)
        net: Any = self.net
        if self.roi is not None:  # thresholds from the maps the model will judge
            inside = self.roi.mask(self.config.preprocess.size, self.config.preprocess.size)
            prepared = [replace(p, foreground_mask=p.foreground_mask & inside) for p in prepared]
            if not any(p.foreground_mask.any() for p in prepared):
                raise DataError(
                    getattr(dataset, "root", "dataset"),
                    "the region of interest holds none of the parts: nothing to calibrate on",
                )
            net = _RoiNet(self.net, inside)
        self.calibration = fitting.calibrate_net(net, prepared, progress, cancel)
        self.training = {**self.training, "calibrated_on": len(refs)}

    # ------------------------------------------------------------------ parts
    @property
    def config(self) -> MDSSConfig:
        return self.net.config

    @property
    def rgb(self) -> RGBBranch:
        return self.net.rgb

    @property
    def sdf(self) -> SDFNet:
        return self.net.sdf

    @property
    def image_threshold(self) -> float:
        return self.calibration.image_threshold

    @property
    def pixel_threshold(self) -> float:
        return self.calibration.pixel_threshold

    @property
    def patch_settings(self) -> PatchSettings:
        return self.net.patch_settings

    @property
    def preparation(self) -> Preparation:
        """How a sample is made ready for this model (what worker processes run)."""
        return Preparation(self.config.preprocess, self.patch_settings)

    # ------------------------------------------------------------------ inference
    def predict(self, sample: Sample) -> Prediction:
        """Maps, per-point scores, image scores and regions at the sample's own resolution."""
        return self.predict_ready([make_ready(sample, self.preparation)])[0]

    def predict_ready(self, batch: Sequence[ReadySample]) -> list[Prediction]:
        """:meth:`predict` of samples already made ready (``preprocess.ready``), as one batch.

        ``timings_ms["branches"]`` is the batch's network time shared equally by its samples.
        """
        if not batch:
            return []
        start = time.perf_counter()
        maps = self.net.branch_maps([r.prepared for r in batch], [r.patches for r in batch])
        branches_ms = 1e3 * (time.perf_counter() - start) / len(batch)
        return [
            assemble(r, m, self.calibration, branches_ms, self.roi)
            for r, m in zip(batch, maps, strict=True)
        ]

    def score_many(
        self,
        refs: Iterable[SampleRef],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        batch_size: int = 1,
        workers: int = 0,
    ) -> Iterator[Scored]:
        """One :class:`Scored` per ref, in order: a sample that cannot be read or prepared
        carries its one-line error and the run goes on (see :mod:`mdss_core.batched`)."""
        return score_batched(self, refs, batch_size, workers, progress, cancel)

    def predict_many(
        self,
        refs: Iterable[SampleRef],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        batch_size: int = 1,
        workers: int = 0,
    ) -> Iterator[tuple[SampleRef, Prediction]]:
        """``(ref, prediction)`` in order; the first sample that cannot be read raises its
        ``DataError`` after the samples before it were yielded."""
        return predict_batched(self, refs, batch_size, workers, progress, cancel)

    def evaluate(
        self,
        dataset: DatasetIndex | Sequence[SampleRef],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> EvaluationReport:
        """Paper-style I-AUROC / AUPRO table on the test split (see ``mdss_core.evaluation``)."""
        refs = [r for r in dataset if r.split == "test"] or [r for r in dataset if r.label >= 0]
        pairs = self.predict_many(refs, cancel=cancel)
        report = evaluate_predictions(pairs, len(refs), progress, cancel, stage="evaluate")
        if report is None:
            raise DataError(getattr(dataset, "root", "dataset"), "no labelled test samples")
        return report

    # ------------------------------------------------------------------ files
    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format_version": FORMAT_VERSION,
            "preset": self.config.preset,
            "method": self.config.method,
            "device": self.device,
            "teacher": self.teacher_origin,
            "teacher_text": describe_teacher(self.teacher_origin),
            "fusion": self.config.fusion,
            "geometry_maps": self.calibration.geometry_maps(),
            "image_threshold": self.image_threshold,
            "pixel_threshold": self.pixel_threshold,
            "training": self.training,
            "roi": None if self.roi is None else self.roi.to_dict(),
            "roi_text": "whole image" if self.roi is None else self.roi.describe(),
        }

    def save(self, path: str | Path, half: bool = False) -> Path:
        """Write the model atomically (see :func:`mdss_core.model_file.write_model_file`)."""
        record = ModelRecord(
            self.net, self.calibration, self.teacher_origin, self.training, self.name, self.roi
        )
        return write_model_file(path, record, half)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> MDSSModel:
        record = read_model_file(path)
        device = resolve_device(device)
        return cls(
            record.net,
            record.calibration,
            record.teacher_origin,
            record.training,
            record.name,
            device,
            record.roi,
        )

    def with_roi(self, roi: Roi | None) -> MDSSModel:
        """The same networks and calibration judging only ``roi`` (``None``: the whole image);
        this model is unchanged, so a scoring run that uses it is not disturbed."""
        twin = copy.copy(self)
        twin.roi = roi
        return twin


class _RoiNet:
    """:class:`MDSSNet` as calibration sees it, its maps zero outside the region of interest."""

    def __init__(self, net: MDSSNet, inside: Any) -> None:
        self.net, self.inside = net, inside
        self.config = net.config

    def branch_maps(self, prepared: Sequence[Any], patches: Any = None) -> list[Any]:
        maps = self.net.branch_maps(prepared, patches)
        return [mask_branch_maps(m, self.inside) for m in maps]
