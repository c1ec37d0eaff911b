"""Inference sessions of exported graphs: onnxruntime or OpenVINO, one ``run`` interface.

Neither runtime is a base dependency: a missing one is a one-line error naming the extra that
installs it. Thread count follows ``OMP_NUM_THREADS`` when set (torch honours it too), so a
side-by-side timing gives every backend the same cores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mdss_core.errors import MDSSError

BACKENDS = ("torch", "onnxruntime", "openvino")
EXPORTED_BACKENDS = ("onnxruntime", "openvino")
# OpenVINO inference precisions (a hint: a CPU without native bf16/f16 keeps f32, see
# ``GraphSession.precision``).
PRECISIONS = ("fp32", "fp16", "bf16")
_OV_PRECISION = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}


def require(package: str) -> object:
    """Import ``package`` or raise one line saying which extra installs it."""
    extra = {"onnx": "onnx", "onnxruntime": "onnx", "openvino": "openvino", "nncf": "int8"}[package]
    try:
        return __import__(package)
    except ImportError:
        raise MDSSError(
            f"the {package} package is not installed: pip install 'mdss[{extra}]'"
        ) from None


def _threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


class GraphSession:
    """One loaded graph; ``run(*arrays)`` returns its outputs as float32 numpy arrays.

    ``effective_precision``: what the runtime computes in (OpenVINO may differ from the hint:
    a CPU with bf16 but no f16 instructions runs an "fp16" request in bf16).
    """

    effective_precision = "f32"

    def __init__(self, backend: str, path: Path, precision: str = "fp32") -> None:
        if backend not in EXPORTED_BACKENDS:
            raise MDSSError(f"backend '{backend}' does not run exported graphs")
        if precision != "fp32" and backend != "openvino":
            raise MDSSError(f"precision {precision} needs the openvino backend")
        self.backend = backend
        self.path = path
        self.precision = precision
        # Measured now: a graph exported on the fly lives in a folder removed after loading.
        weights = path.with_suffix(".bin") if path.suffix == ".xml" else path
        self.file_bytes = weights.stat().st_size
        if backend == "onnxruntime":
            self._open_onnxruntime(path)
        else:
            self._open_openvino(path, precision)

    def _open_onnxruntime(self, path: Path) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        threads = _threads()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._names = [i.name for i in self._session.get_inputs()]

    def _open_openvino(self, path: Path, precision: str) -> None:
        ov = require("openvino")
        config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision]}
        threads = _threads()
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        used = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type
        self.effective_precision = (
            used.get_type_name() if hasattr(used, "get_type_name") else str(used)
        )

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        arrays = tuple(np.ascontiguousarray(a, dtype=np.float32) for a in arrays)
        if self.backend == "onnxruntime":
            outputs = self._session.run(None, dict(zip(self._names, arrays, strict=True)))
        else:
            result = self._request.infer(list(arrays))
            outputs = [result[o] for o in self._compiled.outputs]
        return [np.asarray(o, dtype=np.float32) for o in outputs]


def run_batched(session: GraphSession, arrays: Sequence[np.ndarray], per_pass: int) -> list:
    """``session.run`` over ``per_pass`` rows at a time, outputs concatenated."""
    parts = [
        session.run(*(a[i : i + per_pass] for a in arrays))
        for i in range(0, len(arrays[0]), per_pass)
    ]
    return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]
