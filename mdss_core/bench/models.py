"""`mdss bench --models A.mdss B.mdss --data DIR [--backends torch,onnxruntime,…]`: trained
models of any detector, on any backend, side by side.

Per model and backend: detector and preset, file size, parameters, median / min / max
milliseconds per sample and per stage (``Prediction.timings_ms``), the rate of one batched
pass over all the samples and the peak working memory of one prediction. Rounds alternate
the models' order so drift of the machine (other load, clocks) hits all alike. Only the
common model interface is used: any detector, on any backend, can be compared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdss_core.backends.load import load_on_backend
from mdss_core.bench.measure import PeakMemory, mb, tensor_bytes
from mdss_core.io import open_dataset
from mdss_core.preprocess.ready import make_ready
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report


def compare_models(
    paths: Sequence[Path],
    data: Path,
    samples: int = 8,
    rounds: int = 3,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    backends: Sequence[str] = ("torch",),
) -> dict[str, Any]:
    """JSON-ready timings of every model on every backend (``name`` or ``name:precision``,
    e.g. ``openvino:bf16``) on the same ``samples`` samples of ``data``."""
    models = {
        f"{p} [{b}]" if len(backends) > 1 else str(p): (p, b, _load(p, b, device))
        for p in paths
        for b in backends
    }
    every = list(open_dataset(data))
    refs = every[:: max(1, len(every) // samples)][:samples]  # spread over the defect types
    loaded = [ref.load() for ref in refs]
    rows: dict[str, dict[str, Any]] = {}
    for key, (path, backend, model) in models.items():
        model.predict(loaded[0])  # warm-up: first-call allocations and packing
        with PeakMemory(device) as peak:
            model.predict(loaded[0])
        rows[key] = {
            "method": model.config.method,
            "preset": model.config.preset,
            "backend": backend,
            "file_mb": mb(_size_on_disk(Path(path))),
            "params_mb": _weights_mb(model),
            "predict_peak_mb": mb(peak.bytes),
            "batch_per_s": _batched_rate(model, loaded),
            "ms": [],
            "stages": {},
        }
    order = list(models)
    for round_index in range(rounds):
        for path in order if round_index % 2 == 0 else order[::-1]:
            for sample in loaded:
                check_cancel(cancel, "benchmark")
                start = time.perf_counter()
                prediction = models[path][2].predict(sample)
                rows[path]["ms"].append(1e3 * (time.perf_counter() - start))
                for stage, ms in prediction.timings_ms.items():
                    rows[path]["stages"].setdefault(stage, []).append(ms)
        report(progress, "bench", round_index + 1, rounds, "models")
    for row in rows.values():
        values = row.pop("ms")
        row["ms_median"] = round(statistics.median(values), 1)
        row["ms_min"] = round(min(values), 1)
        row["ms_max"] = round(max(values), 1)
        row["stages"] = {k: round(statistics.median(v), 1) for k, v in row["stages"].items()}
    return {"device": device, "samples": len(loaded), "rounds": rounds, "models": rows}


def _load(path: Path, backend: str, device: str) -> Any:
    name, _, precision = backend.partition(":")
    return load_on_backend(path, name, device, precision or "fp32")


def _size_on_disk(path: Path) -> int:
    """A model file's size, or the sum of an export folder's files."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def _weights_mb(model: Any) -> float:
    """Parameters and buffers of a torch net; the graph files of an exported one."""
    sessions = getattr(model.net, "sessions", None)
    if sessions is None:
        return mb(tensor_bytes([*model.net.parameters(), *model.net.buffers()]))
    return mb(sum(s.file_bytes for s in sessions.values()))


def _batched_rate(model: Any, samples: Sequence[Any]) -> float:
    """Samples per second of one ``predict_ready`` pass over all ``samples`` (prepared first,
    so only the networks and the post-processing are timed)."""
    ready = [make_ready(s, model.preparation) for s in samples]
    start = time.perf_counter()
    model.predict_ready(ready)
    return round(len(ready) / (time.perf_counter() - start), 2)


def format_models(result: dict[str, Any]) -> str:
    lines = [
        f"{result['samples']} samples × {result['rounds']} rounds on {result['device']}, "
        "ms per sample (median / min / max), peak memory of one prediction",
        f"{'model':<32} {'method':<7} {'preset':<7} {'file MB':>8} {'median':>8} {'min':>7} "
        f"{'max':>7} {'peak MB':>8} {'batch/s':>8}  stages (median ms)",
    ]
    for key, row in result["models"].items():
        stages = " ".join(f"{k} {v:.0f}" for k, v in row["stages"].items() if k != "total")
        lines.append(
            f"{Path(key).name:<32} {row['method']:<7} {row['preset']:<7} {row['file_mb']:>8.1f} "
            f"{row['ms_median']:>8.0f} {row['ms_min']:>7.0f} {row['ms_max']:>7.0f} "
            f"{row['predict_peak_mb']:>8.0f} {row.get('batch_per_s', 0):>8.2f}  {stages}"
        )
    return "\n".join(lines)
