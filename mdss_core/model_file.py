"""The ``.mdss`` model file: safetensors tensors with the model's description as JSON metadata.

Tensors: ``rgb.*`` (teacher, student, teacher statistics) and ``sdf.*`` (the SDF network), the
keys of :class:`MDSSNet`'s state dict. Metadata: format and version, name, config, teacher
origin, calibration, training record and, when set, the region of interest (``roi``; a file
without one judges the whole image, so adding it needs no new format version). Written
atomically; reading never unpickles anything, and a newer format version is refused with a
message saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as serialize_safetensors

from mdss_core.atomic import sweep_stale_temps, write_bytes_atomic
from mdss_core.config import METHODS, MDSSConfig
from mdss_core.errors import ConfigError, ModelFileError
from mdss_core.failures import cause
from mdss_core.fusion import Calibration
from mdss_core.geometry.network import build_sdf_net
from mdss_core.net import MDSSNet
from mdss_core.rgb.branch import RGBBranch
from mdss_core.roi import Roi

FORMAT = "mdss-model"
# 2: fusion rule, normal-image map and their calibration (version-1 files still load).
# 3: the detector method (mdss / crd / dmgrd) and its settings.
FORMAT_VERSION = 3


@dataclass
class ModelRecord:
    """Everything a model file holds, the network rebuilt on the CPU."""

    net: MDSSNet
    calibration: Calibration
    teacher_origin: dict[str, Any]
    training: dict[str, Any]
    name: str
    roi: Roi | None = None  # None: the whole image


def write_model_file(path: str | Path, record: ModelRecord, half: bool = False) -> Path:
    """Write atomically (temp file in the same folder, synced, then renamed).

    ``half`` stores floating tensors as float16 (half the size; the shipped demo model);
    loading always restores float32 parameters. Temp files that killed saves left in the
    folder are removed first; a failed write raises ``WriteError`` and leaves the previous
    file and no temp file.
    """
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in record.net.state_dict().items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "name": record.name,
        "config": json.dumps(record.net.config.to_dict()),
        "teacher_origin": json.dumps(record.teacher_origin),
        "calibration": json.dumps(record.calibration.to_dict()),
        "training": json.dumps(record.training),
    }
    if record.roi is not None:
        metadata["roi"] = json.dumps(record.roi.to_dict())
    # Serialised in memory and written by us: safetensors' save_file writes its own
    # ".tmpXXXXXX" beside the target, which a killed run leaves behind.
    data = serialize_safetensors(tensors, metadata=metadata)
    sweep_stale_temps(path.parent)
    return write_bytes_atomic(path, data, sync=True)


def read_model_file(path: str | Path) -> ModelRecord:
    """The model in ``path`` on the CPU; every problem is a one-line ``ModelFileError``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "model file not found")
    metadata = _read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise ModelFileError(path, "not an mdss model file (no mdss metadata)")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError:
        raise ModelFileError(path, "damaged model file (bad format version)") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            path,
            f"written by a newer mdss (model format {version}); this version reads up to "
            f"{FORMAT_VERSION} — update mdss",
        )
    _check_method(path, metadata.get("config", "{}"))
    try:
        config = MDSSConfig.from_dict(json.loads(metadata["config"]))
        calibration = Calibration.from_dict(json.loads(metadata["calibration"]))
        origin = json.loads(metadata.get("teacher_origin", "{}"))
        training = json.loads(metadata.get("training", "{}"))
        roi = Roi.from_dict(json.loads(metadata["roi"])) if "roi" in metadata else None
    except (KeyError, ValueError, ConfigError) as exc:
        raise ModelFileError(path, f"damaged model metadata ({exc})") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:  # header fine, tensor data damaged/unreadable
        raise ModelFileError(path, f"damaged model file ({cause(exc)})") from None
    name = metadata.get("name", path.stem)
    if config.method in ("crd", "dmgrd"):
        net = _image_detector_net(path, config, tensors)
        return ModelRecord(net, calibration, origin, training, name, roi)
    rgb = RGBBranch.from_state_dict(_strip(tensors, "rgb."), config.rgb, source=str(path))
    sdf = build_sdf_net(config.sdf)
    try:
        sdf.load_state_dict(_strip(tensors, "sdf."))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        problem = f"3D network tensors do not match its config: {first}"
        raise ModelFileError(path, problem) from None
    net = MDSSNet(rgb, sdf, config).eval()
    return ModelRecord(net, calibration, origin, training, name, roi)


def _check_method(path: Path, config_json: str) -> None:
    """A model of a detector this version does not have is refused with one line."""
    try:
        method = json.loads(config_json).get("method", "mdss")
    except (ValueError, AttributeError):
        return  # the config's own check reports damage
    if method not in METHODS:
        raise ModelFileError(
            path,
            f"model of unknown method '{method}' (this mdss runs {', '.join(METHODS)}) "
            "— update mdss",
        )


def _image_detector_net(path: Path, config: MDSSConfig, tensors: dict[str, torch.Tensor]) -> Any:
    """CRD's or DM-GRD's network: built empty from the config, then filled from the file."""
    from mdss_core.crd.net import CRDNet
    from mdss_core.dmgrd.net import DMGRDNet

    net = (CRDNet if config.method == "crd" else DMGRDNet).empty(config)
    try:
        net.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        )
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        problem = f"{config.method} tensors do not match its config: {first}"
        raise ModelFileError(path, problem) from None
    return net.eval()


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(path, f"not an mdss model file ({exc})") from None
