"""The CPU half of a prediction: a sample read, preprocessed and cut into patches. No torch.

Kept free of torch (and of modules that import it) so that the worker processes of
:mod:`mdss_core.batched` start in about a second and stay small.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mdss_core.io.sample import Sample, SampleRef
from mdss_core.preprocess.patches import make_patches
from mdss_core.preprocess.pipeline import PreparedSample, PreprocessConfig, prepare


@dataclass(frozen=True)
class PatchSettings:
    """How the geometry branch cuts a cloud: ``k`` points per patch, ``coverage``, ``seed``."""

    k: int
    coverage: float
    seed: int

    def cut(self, points: np.ndarray) -> np.ndarray:
        """Patch index table (P, k) of ``points`` (N, 3); see :func:`make_patches`."""
        return make_patches(points, self.k, self.coverage, seed=self.seed)


@dataclass(frozen=True)
class Preparation:
    """Everything that turns a loaded sample into network input for one model."""

    preprocess: PreprocessConfig
    patching: PatchSettings | None  # None: the detector reads no point patches (CRD)


@dataclass
class ReadySample:
    """Everything the networks need for one sample, plus the sample for the full-size maps."""

    sample: Sample
    prepared: PreparedSample
    patches: np.ndarray  # int64 (P, k) into prepared.points
    preprocess_ms: float  # plane removal, resize, masks and patching (file reading excluded)


def make_ready(sample: Sample, preparation: Preparation) -> ReadySample:
    """Preprocess a loaded sample and cut its patches; raises ``DataError`` for bad arrays."""
    start = time.perf_counter()
    prepared = prepare(sample, preparation.preprocess)
    patching = preparation.patching
    patches = patching.cut(prepared.points) if patching else np.empty((0, 0), np.int64)
    return ReadySample(sample, prepared, patches, 1e3 * (time.perf_counter() - start))


def load_ready(ref: SampleRef, preparation: Preparation) -> ReadySample:
    """:func:`make_ready` on the sample's files (the job a worker process runs)."""
    return make_ready(ref.load(), preparation)
