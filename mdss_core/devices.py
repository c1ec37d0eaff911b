"""Which torch device to run on (``auto`` picks CUDA when present, else the CPU), and the two
checks the packed CPU inference paths share: oneDNN op availability and weight identity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mdss_core.errors import MDSSError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """Turn a user choice into a torch device string; asking for CUDA without one is an error."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MDSSError("device 'cuda' requested but no CUDA GPU is available (use cpu)")
        return device
    if device == "cpu":
        return "cpu"
    raise MDSSError(f"unknown device '{device}' (choose from {', '.join(DEVICE_CHOICES)})")


def device_label(device: str) -> str:
    """Name for the status bar, e.g. ``CUDA: NVIDIA H100 80GB HBM3`` or ``CPU (2 threads)``."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(torch.device(device))}"
    return f"CPU ({torch.get_num_threads()} threads)"


def available_devices() -> list[tuple[str, str]]:
    """Choices for a device menu: ``[(value, label), …]`` with the GPU's name when present."""
    import torch

    auto = resolve_device("auto")
    choices = [("auto", f"Auto ({device_label(auto)})"), ("cpu", device_label("cpu"))]
    if torch.cuda.is_available():
        choices.append(("cuda", device_label("cuda")))
    return choices


def onednn_ops_available(*names: str) -> bool:
    """Whether this torch build has oneDNN and every ``torch.ops.mkldnn`` op in ``names``.

    The packed CPU inference paths (``rgb.packed``, ``geometry.packed``) use such ops, the ones
    torch's own CPU compiler emits; builds without them run the plain modules.
    """
    import torch

    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(hasattr(mkldnn, n) for n in names)


def weights_key(module: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Identity of a module's current weights: storage address and in-place version counter.

    Any in-place change (optimizer step, ``load_state_dict``) bumps a tensor's version, and
    moving or replacing a tensor changes its address, so a packed copy built for one key is
    stale exactly when the key differs.
    """
    return tuple((p.data_ptr(), p._version) for p in module.parameters())
