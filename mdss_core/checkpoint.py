"""Training checkpoints: a cancelled or interrupted training continues where it stopped.

A checkpoint lives beside the model it will become (``MODEL.mdss`` → ``MODEL.mdss.ckpt``): one
safetensors file (tensors) whose JSON metadata says which stage and step it holds and for which
data and settings (a fingerprint). It is written atomically every ``every`` steps and when a
training is cancelled; never pickle. The branches' loops save and restore their own state
(:class:`StageState`): network, optimiser, random generators and step count. A stage that
finished keeps its network in the checkpoint (``done.<stage>.*``), so resuming in the 3D stage
does not train the RGB student again. Every detector checkpoints this way, each with its own
stages (MDSS: ``rgb``, ``geometry``; CRD: ``crd``; DM-GRD: ``dmgrd``, ``geometry``).

Reading what a checkpoint holds (:func:`read_info`) touches only the JSON header and never
imports torch, so a dialog may call it on the UI thread.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdss_core.atomic import write_bytes_atomic
from mdss_core.errors import FileProblem

if TYPE_CHECKING:
    import torch

    from mdss_core.io.sample import SampleRef

FORMAT = "mdss-checkpoint"
VERSION = 1
SUFFIX = ".ckpt"
DEFAULT_EVERY = 200  # steps between checkpoints of one stage (a few seconds of writing at most)
_MAX_HEADER = 1 << 26


class CheckpointError(FileProblem):
    """A checkpoint cannot be resumed (missing, damaged, other data or settings)."""


def checkpoint_path(model_path: str | Path) -> Path:
    """Where the checkpoint of a training that writes ``model_path`` lives."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + SUFFIX)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint holds, read from its header: ``done`` of ``total`` training steps."""

    path: Path
    stage: str
    step: int
    stage_total: int
    done: int
    total: int
    fingerprint: str
    method: str = "mdss"  # the detector whose training it is


@dataclass
class StageState:
    """One training loop's state after ``step`` completed steps: tensors plus plain JSON."""

    step: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def fingerprint(
    config: dict[str, Any],
    teacher: dict[str, Any],
    train: Sequence[SampleRef],
    validation: Sequence[SampleRef],
) -> str:
    """A hash of what decides a training: settings, teacher, and the samples (names, sizes)."""

    def files(refs: Sequence[SampleRef]) -> list[list[Any]]:
        return [[r.key, _size(r.rgb_path), _size(r.xyz_path)] for r in refs]

    record = {"config": config, "teacher": teacher, "train": files(train), "val": files(validation)}
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def training_set_fingerprint(train: Sequence[SampleRef], validation: Sequence[SampleRef]) -> str:
    """A short hash of the training and validation samples (names and file sizes), stored in
    the model's training record: two models trained on the same samples show the same one."""
    return fingerprint({}, {}, train, validation)[:12]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def read_info(path: str | Path) -> CheckpointInfo | None:
    """The header of a checkpoint file, or ``None`` when there is none or it is not one."""
    path = Path(path)
    try:
        meta = _read_metadata(path)
    except CheckpointError:
        return None
    if meta is None:
        return None
    return _info(path, meta)


def _info(path: Path, meta: dict[str, Any]) -> CheckpointInfo:
    return CheckpointInfo(
        path,
        str(meta["stage"]),
        int(meta["step"]),
        int(meta["stage_total"]),
        int(meta["done"]),
        int(meta["total"]),
        str(meta["fingerprint"]),
        str(meta.get("method", "mdss")),  # checkpoints before CRD / DM-GRD had them: MDSS
    )


def _read_metadata(path: Path) -> dict[str, Any] | None:
    """The checkpoint's JSON record; ``None`` when the file does not exist."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(8)
            (size,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
            if not 0 < size <= _MAX_HEADER:
                raise CheckpointError(path, "not an mdss training checkpoint")
            header = json.loads(handle.read(size))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read ({exc.strerror or exc})") from None
    except ValueError:
        raise CheckpointError(path, "damaged checkpoint (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(path, "not an mdss training checkpoint")
    if metadata.get("version") != str(VERSION):
        raise CheckpointError(
            path, f"checkpoint version {metadata.get('version')} (this mdss reads {VERSION})"
        )
    try:
        record = json.loads(metadata["record"])
        _info(path, record)
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(path, "damaged checkpoint (incomplete record)") from None
    return record


class Checkpointer:
    """Saves and restores one training's checkpoint; the training loops call it.

    ``resume=False`` starts over (an existing checkpoint is replaced at the first save);
    ``resume=True`` requires a checkpoint made for the same fingerprint (:meth:`begin`).
    """

    def __init__(self, path: str | Path, every: int = DEFAULT_EVERY, resume: bool = False):
        self.path = Path(path)
        self.every = max(0, int(every))
        self.resume = resume
        self.fingerprint = ""
        self.method = "mdss"
        self.totals: dict[str, int] = {}
        self.finished: dict[str, dict[str, torch.Tensor]] = {}
        self._state: tuple[str, StageState] | None = None
        self._unsaved = False  # a stage finished since the last save
        self.saves = 0

    # ----- starting --------------------------------------------------------------------------
    def begin(
        self, fingerprint: str, totals: dict[str, int], method: str = "mdss"
    ) -> CheckpointInfo | None:
        """Fix what this training is: its fingerprint, its stages' step counts in training
        order, its detector. When resuming, load the checkpoint and check it matches."""
        self.fingerprint, self.totals, self.method = fingerprint, dict(totals), method
        if not self.resume:
            return None
        record = _read_metadata(self.path)
        if record is None:
            raise CheckpointError(self.path, "no checkpoint to resume (train without resuming)")
        if record["fingerprint"] != fingerprint or record.get("totals") != self.totals:
            raise CheckpointError(
                self.path,
                "checkpoint was made for other data or settings (detector, preset, steps, "
                "seed, teacher); train again without resuming",
            )
        tensors = _load_tensors(self.path)
        for stage in record.get("finished", []):
            prefix = f"done.{stage}."
            self.finished[stage] = _strip(tensors, prefix)
        stage = record["stage"]
        if record["step"] > 0 and stage not in self.finished:
            state = StageState(int(record["step"]), _strip(tensors, "state."), record["state"])
            self._state = (stage, state)
        return _info(self.path, record)

    def resumed(self, stage: str) -> StageState | None:
        """The saved state of ``stage``'s loop when the checkpoint stopped inside it."""
        if self._state is not None and self._state[0] == stage:
            return self._state[1]
        return None

    # ----- during training ----------------------------------------------------------------------
    def due(self, steps_done: int, total: int) -> bool:
        """Whether to save after ``steps_done`` steps (not after the last: the stage ends)."""
        return self.every > 0 and steps_done < total and steps_done % self.every == 0

    def stage_done(self, stage: str, tensors: dict[str, torch.Tensor]) -> None:
        """Keep a finished stage's network; the next save carries it."""
        self.finished[stage] = {k: _cpu(v) for k, v in tensors.items()}
        self._unsaved = True

    def save(self, stage: str, state: StageState) -> Path:
        """Write the checkpoint: finished stages plus ``stage``'s loop state (atomically)."""
        from safetensors.torch import save

        tensors = {f"state.{k}": _cpu(v) for k, v in state.tensors.items()}
        for name, stage_tensors in self.finished.items():
            tensors.update({f"done.{name}.{k}": v for k, v in stage_tensors.items()})
        done = sum(self.totals.get(s, 0) for s in self.finished) + state.step
        record = {
            "stage": stage,
            "step": state.step,
            "stage_total": self.totals.get(stage, 0),
            "done": done,
            "total": sum(self.totals.values()),
            "totals": self.totals,
            "finished": sorted(self.finished),
            "fingerprint": self.fingerprint,
            "method": self.method,
            "state": state.meta,
        }
        metadata = {"format": FORMAT, "version": str(VERSION), "record": json.dumps(record)}
        write_bytes_atomic(self.path, save(tensors, metadata=metadata))
        self._unsaved = False
        self.saves += 1
        return self.path

    def save_boundary(self) -> None:
        """On cancel outside a training loop: keep the stages finished so far, if unsaved."""
        if not self._unsaved:
            return
        pending = [s for s in self.totals if s not in self.finished]
        self.save(pending[0] if pending else "calibrate", StageState(0))

    def remove(self) -> None:
        """A finished training needs its checkpoint no more."""
        self.path.unlink(missing_ok=True)


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    # A copy: the checkpoint must not alias tensors the training goes on changing.
    return tensor.detach().to("cpu").contiguous().clone()


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(path, f"damaged checkpoint ({exc})") from None


# ----- optimiser and scheduler state as tensors + JSON (no pickle) ------------------------------
def optimizer_state(
    optimizer: torch.optim.Optimizer, prefix: str = "optim"
) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state dict split into tensors (``<prefix>.<param>.<name>``) and JSON;
    a loop with several optimisers gives each its own prefix."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if hasattr(value, "detach"):
                tensors[f"{prefix}.{index}.{name}"] = value
            else:
                plain.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict,
    prefix: str = "optim",
) -> None:
    """Inverse of :func:`optimizer_state` (tensors land on the parameters' device)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(f"{prefix}."):
            index, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("plain", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict under ``<prefix>.``, for a :class:`StageState`."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`module_tensors`."""
    module.load_state_dict(_strip(tensors, f"{prefix}."))
