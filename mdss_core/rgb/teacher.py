"""Teacher PDNs: read a published / converted teacher file, write mdss teacher files, defaults.

Accepted files (all read without unpickling arbitrary objects):
- torch state dicts (``.pth``/``.pt``) in the "nelson" layout (``0.weight``, ``3.*``, ``6.*``,
  ``8.*``, + ``10.*``, ``12.*`` for medium) or the anomalib layout (``conv1.*`` … ``conv4.*`` /
  ``conv6.*``), optionally under a prefix such as ``teacher.`` or ``pdn.``;
- safetensors files with the same keys, including mdss teacher files written by
  :func:`save_teacher_file` (nelson keys plus ``origin`` JSON metadata).
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from mdss_core.atomic import sweep_stale_temps, write_bytes_atomic
from mdss_core.errors import ModelFileError
from mdss_core.hashing import file_sha256
from mdss_core.rgb.pdn import PDN, PDN_OUT_CHANNELS, PDN_SIZES, conv_indices, init_pdn_

MDSS_TEACHER_FORMAT = "mdss-teacher"
MDSS_TEACHER_VERSION = 1

# "<prefix>conv3.weight" (anomalib) and "<prefix>6.weight" (nelson); the prefix is empty or
# ends with a dot, so "ae.encoder.enconv1.weight" and "conv1.weight" are not misread.
_ANOMALIB_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)conv(?P<layer>\d+)\.(?P<kind>weight|bias)$")
_NELSON_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<layer>\d+)\.(?P<kind>weight|bias)$")
# Sequential state dicts wrapped by training scripts.
_WRAPPER_KEYS = ("state_dict", "model", "teacher")


def default_teacher(size: str = "small", seed: int = 0) -> tuple[PDN, dict[str, Any]]:
    """Offline default: a fixed-seed, randomly initialised PDN (He-normal weights, zero biases).

    Why a random teacher: the student-teacher mechanism needs a teacher that is a fixed,
    deterministic and informative function of each 33-px patch; the student learns to regress
    it on normal images only and fails on patterns it never saw. A random conv net already
    is such a function (random-feature targets are the basis of random network distillation
    and of random-feature baselines in anomaly detection): it keeps colour and local texture,
    which is what MDSS's RGB branch is for. Pretrained ImageNet features are expected to be
    better (more semantic, more robust to nuisance variation), so users should import or
    distill a teacher when they can — but this default needs no file and no network, and the
    same seed gives the same teacher on every machine (private generator, CPU draws).
    He-normal initialisation keeps the activation scale roughly constant through the ReLUs, so
    no output channel is dead or dominated by biases; the per-channel normalisation before
    the loss removes the remaining scale differences.
    """
    if size not in PDN_SIZES:
        raise ValueError(f"PDN size must be one of {PDN_SIZES}, not {size!r}")
    teacher = init_pdn_(PDN(size), seed, "he-normal").eval()
    return teacher, {"kind": "default", "init": "he-normal", "seed": int(seed), "size": size}


def teacher_or_default(
    path: str | Path | None, size: str = "small", seed: int = 0
) -> tuple[PDN, dict[str, Any]]:
    """The teacher in ``path`` when given, else :func:`default_teacher`."""
    if path is None or str(path) == "":
        return default_teacher(size, seed)
    return load_teacher_file(path, size)


def load_teacher_file(path: str | Path, size: str | None = None) -> tuple[PDN, dict[str, Any]]:
    """Read a teacher file (see the module docstring) into an unpadded PDN in eval mode.

    ``size`` (``"small"``/``"medium"``) is detected from the file; when given, it must match.
    Returns ``(teacher, origin)`` with a JSON-serialisable origin: ``kind="file"``, file
    ``name``, ``sha256``, ``format`` (``nelson``/``anomalib``/``mdss``) and ``size`` (and the
    stored ``source`` origin for mdss files). Every problem is a one-line ``ModelFileError``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "teacher file not found")
    stored_origin: dict[str, Any] | None = None
    if path.suffix.lower() == ".safetensors":
        state, metadata = _read_safetensors(path)
        if metadata.get("format") == MDSS_TEACHER_FORMAT:
            stored_origin = _check_mdss_metadata(path, metadata)
    else:
        state = _read_torch_state(path)
    layout, detected, weights = _normalise_keys(path, state)
    if stored_origin is not None:
        layout = "mdss"
    if size is not None and size != detected:
        raise ModelFileError(path, f"file holds a PDN-{detected} teacher, not PDN-{size}")
    # Published teachers have 384 outputs; distilled ones have their target's channel count.
    last = f"{conv_indices(detected)[-1]}.weight"
    channels = int(weights[last].shape[0]) if last in weights else PDN_OUT_CHANNELS
    teacher = PDN(detected, channels)
    expected = teacher.state_dict()
    for key, tensor in expected.items():
        if key not in weights:
            raise ModelFileError(path, f"teacher tensor {key} is missing")
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise ModelFileError(
                path,
                f"teacher tensor {key} has shape {tuple(weights[key].shape)}, "
                f"expected {tuple(tensor.shape)}",
            )
    teacher.load_state_dict({key: weights[key].float() for key in expected})
    origin: dict[str, Any] = {
        "kind": "file",
        "name": path.name,
        "sha256": file_sha256(path),
        "format": layout,
        "size": detected,
        "out_channels": channels,
    }
    if stored_origin is not None:
        origin["source"] = stored_origin
    return teacher.eval(), origin


def save_teacher_file(
    teacher: PDN,
    origin: dict[str, Any],
    path: str | Path,
    extra: dict[str, torch.Tensor] | None = None,
    half: bool = False,
) -> Path:
    """Write an mdss teacher file (safetensors, nelson keys, origin JSON), atomically.

    ``half`` stores the weights as float16 (the shipped teacher); loading restores float32.
    ``extra`` tensors (e.g. a distillation target's ``distill.mean``/``distill.std``) are stored
    under their own names, which the PDN loader ignores.
    """
    from safetensors.torch import save as serialize_safetensors

    path = Path(path)
    tensors = {
        key: value.detach().float().cpu().contiguous()
        for key, value in teacher.state_dict().items()
    }
    if half:
        tensors = {key: value.half() for key, value in tensors.items()}
    for key, value in (extra or {}).items():
        tensors[key] = value.detach().float().cpu().contiguous()
    metadata = {
        "format": MDSS_TEACHER_FORMAT,
        "format_version": str(MDSS_TEACHER_VERSION),
        "size": teacher.size,
        "origin": json.dumps(origin, sort_keys=True),
    }
    # Serialised in memory: safetensors' save_file leaves its own temp file when killed.
    data = serialize_safetensors(tensors, metadata=metadata)
    sweep_stale_temps(path.parent)
    return write_bytes_atomic(path, data, sync=True)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(path, f"not a readable safetensors file ({_first_line(exc)})") from exc
    return state, metadata


def _check_mdss_metadata(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError:
        version = -1
    if version < 1 or version > MDSS_TEACHER_VERSION:
        raise ModelFileError(
            path,
            f"mdss teacher format version {metadata.get('format_version')!r} is not supported "
            f"(this mdss reads version {MDSS_TEACHER_VERSION})",
        )
    try:
        origin = json.loads(metadata.get("origin", "{}"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, "mdss teacher file has unreadable origin metadata") from exc
    return origin if isinstance(origin, dict) else {}


def _read_torch_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            path, "not a plain state dict; refusing to unpickle (save model.state_dict() instead)"
        ) from exc
    except Exception as exc:  # damaged files raise struct/zip/runtime errors of many kinds
        raise ModelFileError(path, f"not a readable torch file ({_first_line(exc)})") from exc
    state = _find_state_dict(loaded)
    if state is None:
        raise ModelFileError(
            path, f"holds a {type(loaded).__name__}, not a state dict of teacher tensors"
        )
    return state


def _find_state_dict(loaded: object) -> dict[str, torch.Tensor] | None:
    if not isinstance(loaded, dict):
        return None
    if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return dict(loaded)
    for key in _WRAPPER_KEYS:
        inner = _find_state_dict(loaded.get(key))
        if inner is not None:
            return inner
    return None


def _normalise_keys(
    path: Path, state: dict[str, torch.Tensor]
) -> tuple[str, str, dict[str, torch.Tensor]]:
    """Find the PDN in a state dict: (layout, size, tensors renamed to nelson keys)."""
    groups: dict[tuple[str, str], dict[tuple[int, str], torch.Tensor]] = {}
    for key, tensor in state.items():
        for layout, pattern in (("anomalib", _ANOMALIB_KEY), ("nelson", _NELSON_KEY)):
            match = pattern.match(key)
            if match:
                layer = (int(match["layer"]), match["kind"])
                groups.setdefault((layout, match["prefix"]), {})[layer] = tensor
                break
    # A PDN needs its first conv: conv1 (anomalib) or 0 (nelson).
    candidates = {
        name: layers
        for name, layers in groups.items()
        if (1 if name[0] == "anomalib" else 0, "weight") in layers
    }
    if len(candidates) > 1:
        teacher_only = {name: v for name, v in candidates.items() if "teacher" in name[1]}
        candidates = teacher_only if len(teacher_only) == 1 else candidates
    if not candidates:
        raise ModelFileError(
            path, "no PDN teacher weights found (expected keys like 0.weight or conv1.weight)"
        )
    if len(candidates) > 1:
        prefixes = sorted(repr(name[1]) for name in candidates)
        raise ModelFileError(path, f"several PDNs found under prefixes {', '.join(prefixes)}")
    (layout, _prefix), layers = next(iter(candidates.items()))
    layer_ids = sorted({layer for layer, _ in layers})
    size = _detect_size(path, layout, layer_ids)
    indices = conv_indices(size)
    renamed: dict[str, torch.Tensor] = {}
    for (layer, kind), tensor in layers.items():
        index = indices[layer - 1] if layout == "anomalib" else layer
        renamed[f"{index}.{kind}"] = tensor
    return layout, size, renamed


def _detect_size(path: Path, layout: str, layer_ids: list[int]) -> str:
    for size in PDN_SIZES:
        indices = list(conv_indices(size))
        expected = list(range(1, len(indices) + 1)) if layout == "anomalib" else indices
        if layer_ids == expected:
            return size
    raise ModelFileError(
        path, f"{layout} layer numbers {layer_ids} match neither PDN-small nor PDN-medium"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
