"""Timing and peak-memory helpers shared by every benchmark stage."""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_POLL_SECONDS = 0.002  # RSS poll period: short enough to catch a 10 ms allocation burst


def synchronize(device: str) -> None:
    """Wait for queued CUDA work so wall-clock times cover it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(
    fn: Callable[[], Any], repeats: int = 3, warmup: int = 1, device: str = "cpu"
) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(1e3 * (time.perf_counter() - start))
    return float(statistics.median(times))


def interleaved_ms(
    first: Callable[[], Any], second: Callable[[], Any], pairs: int, device: str
) -> tuple[float, float]:
    """Median wall ms of ``first()`` and of ``second()``, timed in alternation (after a warm-up).

    Alternating puts both under the same machine state: on a shared VM the speed drifts by
    10-20 % over seconds, which would otherwise land on one side of a ratio only.
    """
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, pairs)):
        for fn, series in ((first, times[0]), (second, times[1])):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            series.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times[0]), statistics.median(times[1])


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def max_rss_bytes() -> int:
    """Highest resident set size this process has reached (getrusage; Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number
_MMAP_THRESHOLD_BYTES = 64 * 1024


def map_large_allocations() -> bool:
    """Make glibc serve every allocation ≥ 64 KiB with its own mmap, from now on.

    Why: by default glibc raises its mmap threshold as large blocks are freed and then serves
    later tensors from memory already resident, so RSS stops showing working memory. With a fixed
    threshold each large numpy/torch buffer is mapped on allocation and unmapped on free, and the
    RSS poll sees it. It slows allocation down, so call it only after every timing is done.
    Returns False where this is not glibc (the RSS numbers are then lower bounds).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


class PeakMemory:
    """Peak EXTRA memory while the ``with`` block runs, measured three ways.

    ``rss_bytes``: highest RSS above the level at entry (a polling thread; catches torch CPU
    tensors, which tracemalloc cannot see). ``traced_bytes``: tracemalloc peak (numpy and Python
    objects). ``cuda_bytes``: torch.cuda.max_memory_allocated above the entry level.
    ``bytes`` is the largest of the three: the working memory the block needed.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.rss_bytes = 0
        self.traced_bytes = 0
        self.cuda_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._peak = 0
        self._cuda_base = 0

    @property
    def bytes(self) -> int:
        return max(self.rss_bytes, self.traced_bytes, self.cuda_bytes)

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            self._peak = max(self._peak, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self._cuda_base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        self._base = self._peak = current_rss_bytes()
        tracemalloc.start()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self._peak = max(self._peak, current_rss_bytes())
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.traced_bytes = int(traced_peak)
        self.rss_bytes = max(0, self._peak - self._base)
        if self.device.startswith("cuda"):
            self.cuda_bytes = max(0, torch.cuda.max_memory_allocated() - self._cuda_base)


def tensor_bytes(tensors: Any) -> int:
    """Total bytes of an iterable of tensors / arrays (parameters, buffers, banks)."""
    return int(
        sum(t.numel() * t.element_size() if hasattr(t, "numel") else t.nbytes for t in tensors)
    )


def mb(value: float) -> float:
    return round(value / 2**20, 2)
