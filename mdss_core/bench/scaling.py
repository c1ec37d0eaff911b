"""Inference cost vs training-set size: MDSS (fixed-size networks) beside a memory-bank peer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mdss_core import fast_paths
from mdss_core.bench.measure import PeakMemory, interleaved_ms, mb, tensor_bytes
from mdss_core.bench.peer import MemoryBankPeer
from mdss_core.bench.stages import end_to_end_call
from mdss_core.bench.workload import Workload, train_model
from mdss_core.model import MDSSModel
from mdss_core.preprocess.pipeline import prepare
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report


def model_bytes(model: MDSSModel) -> int:
    """Parameters and buffers of both branches."""
    tensors = [
        *model.rgb.parameters(),
        *model.rgb.buffers(),
        *model.sdf.parameters(),
        *model.sdf.buffers(),
    ]
    return tensor_bytes(tensors)


@dataclass
class Methods:
    """Both methods trained on the same ``n_train`` samples."""

    n_train: int
    model: MDSSModel
    peer: MemoryBankPeer


def build_methods(work: Workload, n_train: int, device: str) -> Methods:
    model = train_model(work, n_train, device)
    peer = MemoryBankPeer(model.rgb, device).fit(work.train[:n_train])
    return Methods(n_train, model, peer)


def _predictors(work: Workload, methods: Methods) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """One full prediction each, from the files on disk: load → prepare → score."""
    ref = work.val_refs[0]
    cfg = work.config

    def peer_once() -> None:
        methods.peer.predict(prepare(ref.load(), cfg.preprocess))

    return end_to_end_call(methods.model, work), peer_once


def time_methods(work: Workload, methods: Methods, device: str) -> dict[str, Any]:
    """Per-sample time of both methods, timed in alternation (same machine state for both)."""
    mdss_once, peer_once = _predictors(work, methods)
    mdss_ms, peer_ms = interleaved_ms(mdss_once, peer_once, work.settings.repeats, device)
    return {"n_train": methods.n_train, "mdss_ms": round(mdss_ms, 2), "peer_ms": round(peer_ms, 2)}


def memory_of_methods(work: Workload, methods: Methods, device: str) -> dict[str, Any]:
    """Resident bytes (parameters / banks) plus the peak extra memory of one prediction."""
    mdss_once, peer_once = _predictors(work, methods)
    with PeakMemory(device) as mdss_peak:
        mdss_once()
    with PeakMemory(device) as peer_peak:
        peer_once()
    params, bank = model_bytes(methods.model), methods.peer.bank_bytes
    # The packed CPU copies of the weights (fast_paths) stay in memory between predictions.
    packed = fast_paths.packed_bytes(methods.model.net)
    # The peer runs the same teacher, so its weights count for the peer too.
    teacher = tensor_bytes(methods.peer.branch.teacher.parameters())
    return {
        "mdss_mem_mb": mb(params + packed + mdss_peak.bytes),
        "peer_mem_mb": mb(teacher + bank + peer_peak.bytes),
        "peer_teacher_mb": mb(teacher),
        "mdss_params_mb": mb(params),
        "mdss_packed_mb": mb(packed),
        "mdss_peak_mb": mb(mdss_peak.bytes),
        "peer_bank_mb": mb(bank),
        "peer_peak_mb": mb(peer_peak.bytes),
        "peer_rgb_bank_rows": int(len(methods.peer.rgb_bank)),
        "peer_point_bank_rows": int(len(methods.peer.point_bank)),
    }


def run_scaling(
    work: Workload,
    device: str,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[list[dict[str, Any]], list[Methods]]:
    """Train both methods at every size, then time them (memory comes later, see run_bench)."""
    sizes = sorted(work.settings.n_train)
    built = []
    for i, n in enumerate(sizes):
        check_cancel(cancel, "benchmark")
        report(progress, "bench-train", i, len(sizes), f"n_train={n}")
        built.append(build_methods(work, n, device))
    rows = []
    for i, methods in enumerate(built):
        check_cancel(cancel, "benchmark")
        report(progress, "bench-time", i, len(sizes), f"n_train={methods.n_train}")
        rows.append(time_methods(work, methods, device))
    return rows, built


def growth(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Largest / smallest training set ratios of each cost (1.0 = flat)."""
    lo, hi = rows[0], rows[-1]
    keys = ("mdss_ms", "peer_ms", "mdss_mem_mb", "peer_mem_mb")
    return {k: round(hi[k] / max(lo[k], 1e-9), 2) for k in keys}
