"""The one seam between the inspector and the trainable engine (model, presets, devices, demo).

Everything here imports lazily: the model pulls in torch, which must only be loaded and run by
background tasks, never while the UI thread builds the window. Tests replace these functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mdss_core.errors import MDSSError, ModelFileError
from mdss_core.io import DatasetIndex, SampleRef
from mdss_core.prediction import Prediction
from mdss_core.progress import CancelToken, ProgressCallback

# Shown before the device list has been probed (probing imports torch, so it runs in a task).
FALLBACK_DEVICES: list[tuple[str, str]] = [("auto", "Auto"), ("cpu", "CPU")]
FALLBACK_PRESETS: list[str] = ["fast", "paper", "tiny"]
MODEL_SUFFIX = ".mdss"
MODEL_FILTER = "MDSS model (*.mdss *.safetensors);;All files (*)"


class EngineMissing(MDSSError):
    """An engine component is not installed/built (keeps the message one line)."""


@contextmanager
def file_errors(path: str | Path, what: str) -> Iterator[None]:
    """Turn a reader's unexpected exception into a one-line ModelFileError naming the file.

    Deliberate engine errors pass through; anything else (a parser tripping over a damaged
    file) would otherwise reach the user as a bare, file-less message.
    """
    try:
        yield
    except MDSSError:
        raise
    except (Exception, MemoryError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(path, f"{what} ({detail})") from None


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineMissing(f"engine component {module} is unavailable ({exc})") from None


def load_model(path: str | Path, device: str = "auto") -> Any:
    return _import("mdss_core.model").MDSSModel.load(path, device=device)


def fit_model(
    dataset: DatasetIndex,
    preset: str,
    *,
    teacher: str | Path | None,
    device: str,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    model_cls = _import("mdss_core.model").MDSSModel
    return model_cls.fit(
        dataset, preset, teacher=teacher, device=device, progress=progress, cancel=cancel
    )


def predict_many(
    model: Any,
    refs: Sequence[SampleRef],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[SampleRef, Prediction]]:
    return model.predict_many(list(refs), progress=progress, cancel=cancel)


def preset_names() -> list[str]:
    try:
        return list(_import("mdss_core.config").PRESETS)
    except (EngineMissing, AttributeError):
        return list(FALLBACK_PRESETS)


def available_devices() -> list[tuple[str, str]]:
    return list(_import("mdss_core.devices").available_devices())


def load_teacher_file(path: str | Path) -> Any:
    """Validate a teacher weight file (raises ModelFileError with a one-line message)."""
    return _import("mdss_core.rgb.teacher").load_teacher_file(path)


def demo_dataset() -> Path:
    return Path(_import("mdss_core.demo").ensure_demo_dataset())


def demo_model_path() -> Path | None:
    try:
        path = _import("mdss_core.demo").demo_model_path()
    except EngineMissing:
        return None
    return None if path is None else Path(path)


def metrics_module() -> Any:
    return _import("mdss_core.metrics")


def device_label(device: str) -> str:
    """Status-bar name of a device (imports torch: call from background tasks)."""
    try:
        return str(_import("mdss_core.devices").device_label(device))
    except EngineMissing:
        return device.upper()


def demo_model_target() -> Path:
    """Where a demo model trained on this machine is cached (found by demo_model_path)."""
    demo = _import("mdss_core.demo")
    return Path(demo.cache_dir()) / demo.DEMO_MODEL_NAME
