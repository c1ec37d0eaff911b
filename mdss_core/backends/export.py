"""`mdss export`: a trained model as ONNX graphs or OpenVINO IR plus ``model.json``.

Folder layout (``EXPORT_FORMAT`` version 1)::

    model.json      config, calibration, thresholds, ROI, teacher card, method, graphs' I/O
    manifest.json   sha256 of every other file (checked when the folder is loaded)
    rgb.onnx        mdss: images N×S×S×3G → maps N×G×S×S; dmgrd: images → map N×S×S
    sdf.onnx        mdss, dmgrd: patches B×k×3 → abs_sdf B×k
    crd.onnx        crd: rgb, geo N×S×S×3 → rgb_map, geo_map N×S×S
    (rgb.xml + rgb.bin … with ``--format openvino``)

Every graph has a dynamic batch axis; images are float32 0–255, channel-last, at model size.
The folder is built beside the target and renamed into place: a failed export leaves nothing,
and an existing non-empty folder is only replaced with ``force``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdss_core.atomic import fsync_path
from mdss_core.backends.runtime import require
from mdss_core.errors import MDSSError, WriteError
from mdss_core.failures import cause
from mdss_core.hashing import file_sha256 as sha256

EXPORT_FORMAT = "mdss-export"
EXPORT_VERSION = 1
FORMATS = ("onnx", "openvino")
OPSET = 17


def export_model(
    model: Any,
    out: str | Path,
    fmt: str = "onnx",
    force: bool = False,
    int8_samples: Sequence[Any] | None = None,
    calibrate_refs: Sequence[Any] | None = None,
) -> Path:
    """Write ``model`` (an ``MDSSModel`` with a torch net) as a deployment folder ``out``.

    ``int8_samples`` (loaded normal samples; OpenVINO only): quantize the image graphs to int8
    on them (:mod:`mdss_core.backends.quantize`). ``calibrate_refs`` (normal sample refs):
    fusion statistics and thresholds again, from the exported graphs' own maps."""
    if fmt not in FORMATS:
        raise MDSSError(f"unknown export format '{fmt}' (choose {', '.join(FORMATS)})")
    if int8_samples is not None and fmt != "openvino":
        raise MDSSError("int8 quantization writes OpenVINO IR: use --format openvino")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise WriteError(out, "exists and is not empty (use --force to replace it)")
    require("onnx")
    if fmt == "openvino":
        require("openvino")
    if int8_samples is not None:
        require("nncf")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise WriteError(out, cause(exc)) from None
    try:
        write_export(model, work, fmt, int8_samples, calibrate_refs)
        _swap_into_place(work, out)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError):
            raise WriteError(out, cause(exc)) from None
        raise
    return out


def write_export(
    model: Any,
    folder: Path,
    fmt: str = "onnx",
    int8_samples: Sequence[Any] | None = None,
    calibrate_refs: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The graphs, ``model.json`` and ``manifest.json`` into an existing empty ``folder``."""
    from mdss_core.backends.graphs import detector_graphs

    graphs = {}
    for name, (module, example) in detector_graphs(model.net).items():
        onnx_path = folder / f"{name}.onnx"
        export_graph(module, example, onnx_path)
        files = [onnx_path.name]
        if fmt == "openvino":
            files = _to_openvino(onnx_path)
            onnx_path.unlink()
        graphs[name] = {
            "file": files[0],
            "files": files,
            "inputs": list(module.inputs),
            "outputs": list(module.outputs),
        }
    if int8_samples is not None:
        from mdss_core.backends.quantize import calibration_inputs, quantize_ir

        quantize_ir(folder, graphs, calibration_inputs(model, int8_samples))
    if calibrate_refs is not None:
        model = calibrated_on_graphs(model, folder, fmt, graphs, calibrate_refs)
    record = model_record(model, fmt, graphs)
    (folder / "model.json").write_text(json.dumps(record, indent=2))
    manifest = {p.name: sha256(p) for p in sorted(folder.iterdir())}
    (folder / "manifest.json").write_text(json.dumps({"sha256": manifest}, indent=2))
    for path in folder.iterdir():
        fsync_path(path)
    return record


def export_graph(module: Any, example: tuple, path: Path) -> None:
    """``module`` traced on ``example`` into an ONNX file with every axis 0 dynamic."""
    import torch

    dynamic = {name: {0: "batch"} for name in (*module.inputs, *module.outputs)}
    module.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter: no onnxscript dependency, and it is deprecated only.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(module.inputs),
            output_names=list(module.outputs),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


def calibrated_on_graphs(
    model: Any, folder: Path, fmt: str, graphs: dict[str, Any], refs: Sequence[Any]
) -> Any:
    """A copy of ``model`` recalibrated with the graphs in ``folder`` running its networks
    (thresholds that fit int8 graphs, say); ``model`` itself is unchanged."""
    from mdss_core.backends.exported import ExportedNet
    from mdss_core.backends.runtime import GraphSession

    backend = "openvino" if fmt == "openvino" else "onnxruntime"
    sessions = {name: GraphSession(backend, folder / g["file"]) for name, g in graphs.items()}
    twin = copy.copy(model)
    twin.net = ExportedNet(model.config, sessions)
    twin.recalibrate(refs)
    twin.training = {**twin.training, "calibrated_with": backend}
    return twin


def _to_openvino(onnx_path: Path) -> list[str]:
    ov = require("openvino")
    xml = onnx_path.with_suffix(".xml")
    # compress_to_fp16=False: the weights stay float32; precision is chosen when loading.
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return [xml.name, xml.with_suffix(".bin").name]


def model_record(model: Any, fmt: str, graphs: dict[str, Any]) -> dict[str, Any]:
    """Everything but the graphs: what ``load_export`` needs to rebuild the model."""
    config = model.config
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "graph_format": fmt,
        "name": model.name,
        "method": config.method,
        "config": config.to_dict(),
        "calibration": model.calibration.to_dict(),
        "image_threshold": model.image_threshold,
        "pixel_threshold": model.pixel_threshold,
        "roi": None if model.roi is None else model.roi.to_dict(),
        "teacher_origin": model.teacher_origin,
        "training": model.training,
        "preprocessing": {
            "size": config.preprocess.size,
            "images": "float32 0-255, channel-last N×S×S×C, ImageNet normalisation in-graph",
            "patches": "raw plane-removed points B×k×3; patch frame in-graph",
        },
        "graphs": graphs,
    }


def _swap_into_place(work: Path, out: Path) -> None:
    """Rename the finished folder onto ``out``; a replaced one is removed only afterwards."""
    old = None
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
    os.replace(work, out)
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
