"""Loading a model on a backend: a ``.mdss`` file on torch or on an exported graph runtime,
or an export folder (``mdss export``) on onnxruntime or OpenVINO.

The result is an ``MDSSModel`` either way (the ``Model`` protocol of ``mdss_core.api``):
predict, evaluate, bench and the GUI use it without asking which backend runs it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mdss_core.backends.runtime import BACKENDS, EXPORTED_BACKENDS, GraphSession
from mdss_core.errors import ConfigError, MDSSError, ModelFileError
from mdss_core.failures import first_line


def is_export_dir(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "model.json").is_file()


def export_folder_of(path: str | Path) -> Path:
    """An export folder's ``model.json`` stands for its folder (what a file dialog can pick)."""
    path = Path(path)
    if path.name == "model.json" and path.is_file():
        return path.parent
    return path


def load_on_backend(
    path: str | Path,
    backend: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> Any:
    """The model at ``path`` (file or export folder) running on ``backend``.

    ``backend`` None: torch for a model file, the folder's own runtime for an export (OpenVINO
    for IR, else onnxruntime). A ``.mdss`` file on an exported backend is exported to ONNX in
    a temporary folder first (seconds; the graphs stay in the runtime's memory).
    """
    from mdss_core.model import MDSSModel

    path = export_folder_of(path)
    if backend is None:
        backend = default_backend(path)
    if backend not in BACKENDS:
        raise MDSSError(f"unknown backend '{backend}' (choose {', '.join(BACKENDS)})")
    if is_export_dir(path):
        if backend == "torch":
            raise ModelFileError(path, "an export folder runs on onnxruntime or openvino")
        return load_export(path, backend, precision)
    if Path(path).is_dir():
        raise ModelFileError(path, "folder has no model.json: not an mdss export folder")
    model = MDSSModel.load(path, device=device)
    if backend == "torch":
        if precision != "fp32":
            raise MDSSError(f"precision {precision} needs the openvino backend")
        return model
    from mdss_core.backends.export import write_export

    with tempfile.TemporaryDirectory(prefix="mdss-export-") as folder:
        write_export(model, Path(folder), "onnx")
        return load_export(folder, backend, precision)


def default_backend(path: str | Path) -> str:
    """torch for a model file; for an export folder, the runtime its graphs were written for."""
    if not is_export_dir(path):
        return "torch"
    try:
        record = json.loads((Path(path) / "model.json").read_text())
    except (OSError, ValueError):
        return "onnxruntime"  # load_export names the problem
    graph_format = record.get("graph_format") if isinstance(record, dict) else None
    return "openvino" if graph_format == "openvino" else "onnxruntime"


def load_export(
    folder: str | Path,
    backend: str = "onnxruntime",
    precision: str = "fp32",
) -> Any:
    """An ``MDSSModel`` whose net is an :class:`ExportedNet` over ``folder``'s graphs."""
    from mdss_core.backends.export import EXPORT_FORMAT, EXPORT_VERSION, sha256
    from mdss_core.backends.exported import ExportedNet
    from mdss_core.config import MDSSConfig
    from mdss_core.fusion import Calibration
    from mdss_core.model import MDSSModel
    from mdss_core.roi import Roi

    folder = Path(folder)
    if backend not in EXPORTED_BACKENDS:
        raise MDSSError(f"backend '{backend}' does not run export folders")
    record = _read_json(folder / "model.json")
    if record.get("format") != EXPORT_FORMAT:
        raise ModelFileError(folder / "model.json", "not an mdss export (no mdss-export format)")
    if int(record.get("format_version", 0)) > EXPORT_VERSION:
        raise ModelFileError(folder, "exported by a newer mdss — update mdss")
    if record.get("graph_format") == "openvino" and backend != "openvino":
        raise ModelFileError(folder, "holds OpenVINO IR: load it with --backend openvino")
    manifest = _read_json(folder / "manifest.json").get("sha256", {})
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file() or sha256(path) != digest:
            raise ModelFileError(path, "missing or changed since export (sha256 mismatch)")
    try:
        config = MDSSConfig.from_dict(record["config"])
        calibration = Calibration.from_dict(record["calibration"])
        roi = Roi.from_dict(record["roi"]) if record.get("roi") else None
        graphs = record["graphs"]
        unlisted = [g["file"] for g in graphs.values() if g["file"] not in manifest]
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ModelFileError(folder / "model.json", f"damaged export record ({exc})") from None
    if unlisted:
        raise ModelFileError(folder / unlisted[0], "graph not listed in manifest.json")
    # The SDF graph stays float32 whatever is asked: its |f| are small distances that bf16 wrecks
    # (real cable glands: 3D map off by up to 12 z-units, docs/deployment.md).
    sessions = {
        name: _open(backend, folder / g["file"], "fp32" if name == "sdf" else precision)
        for name, g in graphs.items()
    }
    net = ExportedNet(config, sessions)
    training = {**record.get("training", {}), "backend": backend, "precision": precision}
    training["int8_graphs"] = [n for n, g in graphs.items() if "int8" in g]
    name = record.get("name", folder.name)
    origin = record.get("teacher_origin", {})
    return MDSSModel(net, calibration, origin, training, name, "cpu", roi)


def _open(backend: str, path: Path, precision: str) -> GraphSession:
    try:
        return GraphSession(backend, path, precision)
    except MDSSError:
        raise
    except Exception as exc:  # the runtime's own errors name no file and run over many lines
        raise ModelFileError(
            path, f"{backend} cannot load this graph ({first_line(exc)})"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(path, "missing from the export folder") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(path, f"unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(path, "not a JSON object")
    return data
