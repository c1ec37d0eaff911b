"""The trained RGB branch as a plain torch module: frozen teacher, student, teacher statistics.

Inference only; the student is trained by :mod:`mdss_core.rgb.train`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from mdss_core import fast_paths
from mdss_core.errors import ModelFileError
from mdss_core.rgb.config import RGBConfig
from mdss_core.rgb.maps import squared_difference_map, upsample_map
from mdss_core.rgb.memory import nearest_memory_map
from mdss_core.rgb.pdn import PDN, normalize_images


def image_batches(images: np.ndarray | torch.Tensor, batch_size: int) -> Iterator[slice]:
    for start in range(0, len(images), batch_size):
        yield slice(start, min(start + batch_size, len(images)))


class RGBBranch(nn.Module):
    """Trained RGB branch: frozen teacher, student, and the teacher's channel mean/std.

    The teacher is a PDN (distilled, imported or random) or the pretrained backbone itself
    (:class:`~mdss_core.rgb.backbone_teacher.BackboneTeacher`); both map a model-size image to
    the unpadded student's grid. ``state_dict()`` holds only tensors (``teacher.*``,
    ``student.*``, ``mean``, ``std``, ``memory``) and can go straight into safetensors; which
    teacher it is travels in the JSON config beside it.

    ``memory`` (M×C, M ≥ 0): normal cells of the training scans' normal images
    (:mod:`mdss_core.rgb.memory`). When it has rows, the normal image's map is each cell's
    distance to its nearest row instead of the student's error (averaged over ``memory_draws``
    equal row blocks, each one coreset draw); the colour map is unchanged.
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: PDN,
        mean: torch.Tensor,
        std: torch.Tensor,
        memory: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.student = student
        channels = int(student.out_channels)
        self.register_buffer("mean", mean.detach().reshape(1, channels, 1, 1).float().clone())
        self.register_buffer("std", std.detach().reshape(1, channels, 1, 1).float().clone())
        per_image = channels // (int(student.in_channels) // 3)
        rows = torch.zeros(0, per_image) if memory is None else memory.detach().float().clone()
        self.register_buffer("memory", rows)
        self.memory_draws = 1  # coreset draws stacked in ``memory`` (RGBConfig)
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> RGBBranch:
        super().train(mode)
        self.teacher.eval()  # frozen: a backbone's BatchNorm keeps its ImageNet statistics
        return self

    @classmethod
    def empty(cls, config: RGBConfig) -> RGBBranch:
        """An untrained branch of the shapes ``config`` describes, to load a state dict into
        (its memory is empty: :meth:`from_state_dict` takes the file's)."""
        groups = 2 if config.normals else 1
        channels = config.teacher_channels * groups
        return cls(
            build_teacher_module(config),
            PDN(config.pdn_size, channels, in_channels=3 * groups),
            torch.zeros(channels),
            torch.ones(channels),
        )

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], config: RGBConfig, source: str = "model file"
    ) -> RGBBranch:
        """Rebuild a branch from its tensors; missing or mis-shaped tensors → ``ModelFileError``."""
        branch = cls.empty(config)
        expected = branch.state_dict()
        memory = state.get("memory", expected["memory"])  # files before the memory have none
        if memory.ndim != 2 or memory.shape[1] != expected["memory"].shape[1]:
            raise ModelFileError(
                source, f"RGB tensor memory has shape {tuple(memory.shape)}, expected (M, "
                f"{expected['memory'].shape[1]})",
            )  # fmt: skip
        if (memory.shape[0] > 0) != (config.normals_memory > 0):
            raise ModelFileError(source, "RGB memory does not match its config (normals_memory)")
        if memory.shape[0] % config.normals_memory_draws:
            raise ModelFileError(
                source, f"RGB memory of {memory.shape[0]} rows is not "
                f"{config.normals_memory_draws} equal draws (normals_memory_draws)",
            )  # fmt: skip
        branch.memory_draws = config.normals_memory_draws
        branch.memory = torch.zeros(memory.shape)
        expected = branch.state_dict()
        state = {**state, "memory": memory}
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ModelFileError(source, f"RGB branch tensors missing: {missing[:3]}")
        for key, tensor in expected.items():
            if tuple(state[key].shape) != tuple(tensor.shape):
                raise ModelFileError(
                    source,
                    f"RGB tensor {key} has shape {tuple(state[key].shape)}, "
                    f"expected {tuple(tensor.shape)} for a {config.teacher} teacher and "
                    f"PDN-{config.pdn_size} student",
                )
        branch.load_state_dict(
            {key: state[key].to(tensor.dtype) for key, tensor in expected.items()}
        )
        return branch.eval()

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def groups(self) -> int:
        """Images the student sees: 1 (colour) or 2 (colour + surface normals)."""
        return int(self.student.in_channels) // 3

    def normalized_teacher(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize_teacher_output(teacher_features(self.teacher, x))

    def _normalize_teacher_output(self, out: torch.Tensor) -> torch.Tensor:
        return (out.float() - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised N×3G×S×S → cell anomaly maps N×G×h×w (one per image kind)."""
        return self._cell_maps(self.normalized_teacher(x), self.student(x))

    def _cell_maps(self, target: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """Student error per image kind; the normal image's map from the memory when it has one."""
        maps = squared_difference_map(target, student, self.groups)
        if self.groups < 2 or self.memory.shape[0] == 0:
            return maps
        per_image = target.shape[1] // self.groups
        from_memory = nearest_memory_map(target[:, per_image:], self.memory, self.memory_draws)
        return torch.cat([maps[:, :1], from_memory.to(maps.dtype)], dim=1)

    def normal_image_targets(self, normals: torch.Tensor) -> torch.Tensor:
        """The normalised teacher features of ImageNet-normalised normal images N×3×S×S: the
        student's second half of targets, and what the memory keeps (``rgb.memory``)."""
        if self.groups < 2:
            raise ValueError("this RGB branch does not see the normal image")
        per_image = self.mean.shape[1] // self.groups
        features = self.teacher(normals).float()
        return (features - self.mean[:, per_image:]) / self.std[:, per_image:]

    def _inference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` for inference: the CPU float32 fast path when it has one
        (:mod:`mdss_core.fast_paths`), else the modules themselves."""
        if self.device.type != "cpu" or x.dtype != torch.float32:
            return self(x)
        student = fast_paths.pdn_forward(self.student)
        # Only PDNs have a packed form; a backbone teacher runs as it is.
        teacher = (
            fast_paths.pdn_forward(self.teacher) if isinstance(self.teacher, PDN) else self.teacher
        )
        if student is None or teacher is None:
            return self(x)
        target = self._normalize_teacher_output(teacher_features(teacher, x))
        return self._cell_maps(target, student(x))

    def anomaly_maps(
        self, images: np.ndarray | torch.Tensor, batch_size: int = 8, amp: bool = False
    ) -> np.ndarray:
        """uint8 N×H×W×3 images (or a float tensor, see ``normalize_images``) → N×H×W float32.

        The colour map only; :meth:`map_groups` gives every map of a branch that also sees the
        surface-normal image.
        """
        return self.map_groups(images, None, batch_size, amp)[:, 0]

    def map_groups(
        self,
        images: np.ndarray | torch.Tensor,
        normals: np.ndarray | None = None,
        batch_size: int = 8,
        amp: bool = False,
    ) -> np.ndarray:
        """Colour images (+ their normal images when the student sees both) → N×G×H×W float32.

        Channel mean of the squared normalised difference at h×w, padded by 4 cells and
        bilinearly resized to the input size. ``amp`` runs the networks in float16 on CUDA
        (see :func:`inference_amp_dtype`); a batch whose float16 map is not finite is run again
        in float32, so an overflow costs time, never a wrong map.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
            normals = None if normals is None else normals[None]
        if self.groups == 2 and normals is None:
            raise ValueError("this RGB branch also needs the surface-normal images")
        self.eval()
        maps: list[np.ndarray] = []
        dtype = inference_amp_dtype(self.device, amp)
        with torch.inference_mode():
            for part in image_batches(images, batch_size):
                x = student_input(images[part], None if normals is None else normals[part])
                x = x.contiguous(memory_format=torch.channels_last).to(self.device)
                pixel = self._pixel_maps(x, dtype)
                if dtype is not None and not bool(torch.isfinite(pixel).all()):
                    # An activation beyond float16's range: this batch again in float32.
                    pixel = self._pixel_maps(x, None)
                maps.append(pixel.cpu().numpy())
        if not maps:
            return np.zeros((0, self.groups, 0, 0), dtype=np.float32)
        return np.concatenate(maps).astype(np.float32, copy=False)

    def _pixel_maps(self, x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        """Float32 N×G×S×S maps of a normalised batch, the networks autocast to ``dtype``."""
        autocast = (
            torch.autocast(x.device.type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            cell = self._inference_forward(x)
        return upsample_map(cell.float(), tuple(x.shape[-2:]))


def teacher_features(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher on each 3-channel image of the input, concatenated along channels."""
    if x.shape[1] == 3:
        return teacher(x)
    return torch.cat([teacher(part) for part in torch.split(x, 3, dim=1)], dim=1)


def student_input(images: np.ndarray | torch.Tensor, normals: np.ndarray | None) -> torch.Tensor:
    """ImageNet-normalised colour images, followed by the normal images when given."""
    x = normalize_images(images)
    return x if normals is None else torch.cat([x, normalize_images(normals)], dim=1)


def inference_amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """Autocast dtype of inference with ``amp``: float16 on CUDA, else None (float32).

    float16 rather than bfloat16, which training prefers for its range: inference needs
    precision, and the map is a difference of two similar feature stacks (measured in
    ``docs/experiments.md``, GPU). PDN activations stay far below float16's range, and should
    one overflow, :meth:`RGBBranch.anomaly_maps` falls back to float32.
    """
    if not amp or device.type != "cuda":
        return None
    return torch.float16


def build_teacher_module(config: RGBConfig) -> nn.Module:
    """An empty teacher of the kind and shape ``config`` names (weights are loaded after)."""
    if config.teacher == "mobilenet_v2":
        from mdss_core.backbones.mobilenet_v2 import MobileNetV2Features
        from mdss_core.rgb.backbone_teacher import BackboneTeacher

        return BackboneTeacher(MobileNetV2Features(config.teacher_blocks), config.teacher_scale)
    return PDN(config.pdn_size, config.teacher_channels)
