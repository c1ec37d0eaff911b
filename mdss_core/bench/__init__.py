"""`mdss bench`: latency, memory and scaling of MDSS beside a memory-bank peer."""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mdss_core.bench.floor import compute_floor
from mdss_core.bench.measure import map_large_allocations, max_rss_bytes, mb
from mdss_core.bench.scaling import growth, memory_of_methods, model_bytes, run_scaling
from mdss_core.bench.stages import (
    batched_throughput,
    end_to_end_call,
    model_file_size,
    pipelined_throughput,
    stage_latencies,
    training_step_ms,
)
from mdss_core.bench.workload import BenchSettings, build_workload
from mdss_core.devices import preparing_workers, resolve_device
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

# Above this load per core the machine is busy with other work and timings are inflated.
BUSY_LOAD_PER_CORE = 0.75


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # not available on every platform
        return (0.0, 0.0, 0.0)


def run_bench(
    settings: BenchSettings | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run every measurement; returns a JSON-ready dictionary (see ``table.format_table``).

    ``workers``: preparing processes of the pipelined throughput (default: ``preparing_workers``).
    """
    settings = settings or BenchSettings()
    device = resolve_device(device)
    workers = preparing_workers(device) if workers is None else workers
    if device.startswith("cuda"):
        # A GPU scores a batch in milliseconds: time the pipeline over enough batches to matter.
        samples = max(settings.pipeline_samples, 25 * settings.batch)
        settings = replace(settings, pipeline_samples=samples)
    if threads:
        torch.set_num_threads(threads)
    load_before = load_average()
    steps = ["data", "scaling", "stages", "training", "floor", "memory"]
    with tempfile.TemporaryDirectory(prefix="mdss-bench-") as folder:
        report(progress, "bench", 0, len(steps), "synthetic data")
        work = build_workload(settings, Path(folder), cancel)
        report(progress, "bench", 1, len(steps), "scaling")
        rows, built = run_scaling(work, device, progress, cancel)
        model = built[0].model
        check_cancel(cancel, "benchmark")
        report(progress, "bench", 2, len(steps), "stages")
        single = stage_latencies(model, work)
        throughput = batched_throughput(model, work, single)
        throughput.update(pipelined_throughput(model, work, workers))
        files = model_file_size(model)
        check_cancel(cancel, "benchmark")
        report(progress, "bench", 3, len(steps), "training steps")
        training = training_step_ms(work, device)
        report(progress, "bench", 4, len(steps), "compute floor")
        floor = compute_floor(
            model,
            settings.size,
            tuple(single["patches"]),
            end_to_end_call(model, work),
            2 * settings.repeats + 1,
        )
        # Memory last: the allocator setting it needs slows allocation down (see measure.py).
        report(progress, "bench", 5, len(steps), "memory")
        exact = map_large_allocations()
        for row, methods in zip(rows, built, strict=True):
            check_cancel(cancel, "benchmark")
            row.update(memory_of_methods(work, methods, device))
        report(progress, "bench", len(steps), len(steps), "done")
    load_after = load_average()
    cores = os.cpu_count() or 1
    # Only the load before the run counts: afterwards it includes the benchmark's own threads.
    busy = load_before[0] > BUSY_LOAD_PER_CORE * cores
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": cores,
        "load_average": {
            "before": [round(v, 2) for v in load_before],
            "after": [round(v, 2) for v in load_after],
        },
        "noisy_machine": busy,
        "settings": {
            "size": settings.size,
            "n_train": list(settings.n_train),
            "repeats": settings.repeats,
            "warmup": settings.warmup,
            "batch": settings.batch,
            "preset": work.config.preset,
        },
        "memory_exact": exact,
        "predict_peak_mb": rows[0]["mdss_peak_mb"],
        "process_max_rss_mb": mb(max_rss_bytes()),
        # From the floor measurement: timed in alternation with the reference convolution.
        "end_to_end_ms": floor["end_to_end_ms"],
        "floor_ms": floor["floor_ms"],
        "stages": single,
        "throughput": throughput,
        "model": {**files, "params_mb": round(model_bytes(model) / 2**20, 2)},
        "training": training,
        "floor": floor,
        "scaling": rows,
        "scaling_growth": growth(rows),
    }


__all__ = ["BenchSettings", "run_bench"]
