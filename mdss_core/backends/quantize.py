"""int8 OpenVINO IR by NNCF post-training quantization on a few normal scans.

Only the image graphs are quantized (``rgb`` / ``crd``); the SDF graph stays float32 (its
|f| are small distances that reduced precision wrecks, ``docs/deployment.md``). The
calibration inputs come from the very code inference runs: a recording stand-in for the
graphs goes through the detectors' shared ``branch_maps``, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdss_core.backends.exported import ExportedNet
from mdss_core.backends.runtime import require
from mdss_core.io.sample import Sample
from mdss_core.preprocess.ready import make_ready

QUANTIZED_GRAPHS = ("rgb", "crd")


class _InputRecorder(ExportedNet):
    """An :class:`ExportedNet` whose runners keep their inputs and return zeros."""

    def __init__(self, config: Any) -> None:
        super().__init__(config, {})
        self.inputs: dict[str, list[list[np.ndarray]]] = {}

    def _keep(self, name: str, *arrays: np.ndarray) -> None:
        for i in range(len(arrays[0])):  # one item per image: the graphs' batch of one
            item = [np.ascontiguousarray(a[i : i + 1], dtype=np.float32) for a in arrays]
            self.inputs.setdefault(name, []).append(item)

    def run_rgb(self, images: np.ndarray, normals: np.ndarray | None) -> np.ndarray:
        stacked = images if normals is None else np.concatenate([images, normals], axis=-1)
        self._keep("rgb", stacked)
        groups = stacked.shape[-1] // 3
        return np.zeros((len(images), groups, *images.shape[1:3]), np.float32)

    def run_image(self, images: np.ndarray) -> np.ndarray:
        self._keep("rgb", images)
        return np.zeros(images.shape[:3], np.float32)

    def run_crd(self, rgb: np.ndarray, geo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._keep("crd", rgb, geo)
        return np.zeros(rgb.shape[:3], np.float32), np.zeros(rgb.shape[:3], np.float32)

    def run_sdf(self, points: np.ndarray, patches: np.ndarray) -> np.ndarray:
        return np.zeros(len(points), np.float32)


def calibration_inputs(model: Any, samples: Sequence[Sample]) -> dict[str, list]:
    """Graph name → the inputs inference would give it for each of ``samples``."""
    recorder = _InputRecorder(model.config)
    for sample in samples:
        ready = make_ready(sample, model.preparation)
        recorder.branch_maps([ready.prepared], [ready.patches])
    return recorder.inputs


def quantize_ir(folder: Path, graphs: dict[str, Any], inputs: dict[str, list]) -> None:
    """Replace each image graph's IR in ``folder`` by its int8 version (recorded in ``graphs``)."""
    nncf = require("nncf")
    ov = require("openvino")
    for name in QUANTIZED_GRAPHS:
        if name not in graphs or not inputs.get(name):
            continue
        xml = folder / graphs[name]["file"]
        items = inputs[name]
        quantized = nncf.quantize(
            ov.Core().read_model(str(xml)),
            nncf.Dataset(items),
            subset_size=len(items),
        )
        # A new file, never the old one rewritten: OpenVINO maps the float weights from disk,
        # and overwriting a mapped file ends the process (SIGBUS).
        int8_xml = xml.with_name(f"{name}_int8.xml")
        ov.save_model(quantized, str(int8_xml), compress_to_fp16=False)
        del quantized
        for old in (xml, xml.with_suffix(".bin")):
            old.unlink()
        graphs[name].update(
            file=int8_xml.name,
            files=[int8_xml.name, int8_xml.with_suffix(".bin").name],
            int8={"method": "NNCF post-training", "normal_scans": len(items)},
        )
