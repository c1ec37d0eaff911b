"""Per-stage latency of one prediction, batched throughput, model size and training step cost."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mdss_core.bench.measure import mb, median_ms, synchronize
from mdss_core.bench.workload import Workload
from mdss_core.geometry.train import train_sdf
from mdss_core.model import MDSSModel
from mdss_core.preprocess.pipeline import prepare
from mdss_core.rgb.teacher import default_teacher
from mdss_core.rgb.train import train_student


def stage_latencies(model: MDSSModel, work: Workload) -> dict[str, Any]:
    """Median ms of each stage for one sample, the engine's own split, and end to end."""
    s = work.settings
    ref = work.val_refs[0]
    cfg = model.config
    device = model.device

    def timed(fn):
        return round(median_ms(fn, s.repeats, s.warmup, device), 2)

    sample = ref.load()
    prepared = prepare(sample, cfg.preprocess)
    net = model.net
    patches = net.patch_settings.cut(prepared.points)
    stages = {
        "load": timed(ref.load),
        "plane_and_resize": timed(lambda: prepare(sample, cfg.preprocess)),
        "patching": timed(lambda: net.patch_settings.cut(prepared.points)),
        "rgb_branch": timed(lambda: net.rgb_maps([prepared])),
        "geometry_branch": timed(lambda: net.point_grids([prepared], [patches])),
    }
    stages["preprocess"] = round(stages["plane_and_resize"] + stages["patching"], 2)
    # The engine's own split (its "preprocess" includes patching); fusion = everything after.
    engine = [model.predict(sample).timings_ms for _ in range(max(1, s.repeats))]
    stages["fusion"] = round(float(np.median([t["fusion"] for t in engine])), 2)
    end_to_end = timed(end_to_end_call(model, work))
    return {
        "stages_ms": stages,
        "engine_timings_ms": {
            k: round(float(np.median([t[k] for t in engine])), 2) for k in engine[0]
        },
        "end_to_end_ms": end_to_end,
        "points": int(len(prepared.points)),
        "patches": [int(v) for v in patches.shape],
    }


def end_to_end_call(model: MDSSModel, work: Workload) -> Callable[[], Any]:
    """One whole prediction of the bench's sample: read its files, then ``predict``."""
    ref = work.val_refs[0]
    return lambda: model.predict(ref.load())


def batched_throughput(model: MDSSModel, work: Workload, single: dict[str, Any]) -> dict[str, Any]:
    """RGB branch over ``batch`` images at once; pipeline throughput with that batching."""
    s = work.settings
    images = np.stack([p.rgb for p in (work.train * s.batch)[: s.batch]])
    amp = model.config.rgb.amp
    batch_ms = median_ms(
        lambda: model.rgb.anomaly_maps(images, batch_size=s.batch, amp=amp),
        s.repeats,
        s.warmup,
        model.device,
    )
    per_image = batch_ms / len(images)
    stages = single["stages_ms"]
    # Everything but the RGB pass stays per sample; the RGB pass is shared by the batch.
    per_sample = single["end_to_end_ms"] - stages["rgb_branch"] + per_image
    return {
        "batch": len(images),
        "rgb_batch_ms": round(batch_ms, 2),
        "rgb_ms_per_image_batched": round(per_image, 2),
        "rgb_ms_per_image_single": stages["rgb_branch"],
        "samples_per_s_single": round(1e3 / single["end_to_end_ms"], 2),
        "samples_per_s_batched": round(1e3 / per_sample, 2),
    }


def pipelined_throughput(model: MDSSModel, work: Workload, workers: int) -> dict[str, Any]:
    """Samples/s of ``predict_many`` in batches of ``batch`` with ``workers`` preparing ahead.

    Steady state: the first batch (worker start-up, first-call set-up) is not counted; the rate
    is over the samples yielded after it. Each sample is read from its files, as in use.
    """
    s = work.settings
    refs = (work.train_refs * s.pipeline_samples)[: max(s.pipeline_samples, 2 * s.batch)]
    stamps = []
    for _ in model.predict_many(refs, batch_size=s.batch, workers=workers):
        stamps.append(time.perf_counter())
    counted = len(stamps) - s.batch
    seconds = stamps[-1] - stamps[s.batch - 1]
    return {
        "pipeline_batch": s.batch,
        "pipeline_workers": workers,
        "pipeline_samples": len(refs),
        "samples_per_s_pipelined": round(counted / max(seconds, 1e-9), 2),
    }


def model_file_size(model: MDSSModel) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = model.save(Path(folder) / "bench.mdss")
        half = model.save(Path(folder) / "bench-half.mdss", half=True)
        return {
            "model_file_mb": mb(path.stat().st_size),
            "model_file_half_mb": mb(half.stat().st_size),
        }


def training_step_ms(work: Workload, device: str) -> dict[str, float]:
    """Per-step training cost of each branch with the fast settings.

    Two runs per branch, 1 step and 1 + K steps: their difference over K excludes the set-up
    (teacher statistics pass, patch cutting) that a run does once.
    """
    s = work.settings
    cfg = work.config
    train = work.train[: max(cfg.rgb.batch_size, 4)]
    teacher, _ = default_teacher(cfg.rgb.pdn_size, seed=cfg.seed)
    images = np.stack([p.rgb for p in train])
    masks = np.stack([p.foreground_mask for p in train])
    clouds = [p.points for p in train]

    def rgb_run(steps: int) -> float:
        start = time.perf_counter()
        train_student(teacher, images, masks, replace(cfg.rgb, steps=steps), device)
        synchronize(device)
        return time.perf_counter() - start

    def sdf_run(steps: int) -> float:
        start = time.perf_counter()
        train_sdf(clouds, replace(cfg.sdf, steps=steps), device)
        synchronize(device)
        return time.perf_counter() - start

    rgb_run(1)  # warm-up: first-call allocations and kernel selection
    k_rgb, k_sdf = s.rgb_timed_steps, s.sdf_timed_steps
    rgb_ms = 1e3 * max(0.0, rgb_run(1 + k_rgb) - rgb_run(1)) / k_rgb
    sdf_run(1)
    sdf_ms = 1e3 * max(0.0, sdf_run(1 + k_sdf) - sdf_run(1)) / k_sdf
    return {
        "rgb_step_ms": round(rgb_ms, 1),
        "rgb_batch": cfg.rgb.batch_size,
        "rgb_crop": cfg.rgb.crop,
        "sdf_step_ms": round(sdf_ms, 1),
        "sdf_batch": cfg.sdf.batch_size,
    }
