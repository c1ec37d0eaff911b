"""The built-in demo: a synthetic category generated on first use and a shipped model for it.

The demo model is built by ``mdss demo build`` (trains the ``fast`` preset on the demo category
and stores it in ``resources/demo/``, tensors in float16 to keep the file small). Generating the
data is deterministic, so the shipped model always matches the dataset users get.
"""

from __future__ import annotations

import os
from pathlib import Path

from mdss_core.progress import CancelToken, ProgressCallback

DEMO_CATEGORY = "ring"
DEMO_SEED = 2024
DEMO_SIZE = 256
DEMO_COUNTS = {"n_train": 40, "n_val": 10, "n_test": 24}
DEMO_VERSION = "1"
DEMO_MODEL_NAME = "demo_ring.mdss"


def cache_dir() -> Path:
    """Per-user cache (``$MDSS_CACHE_DIR`` or ``~/.cache/mdss``)."""
    return Path(os.environ.get("MDSS_CACHE_DIR") or Path.home() / ".cache" / "mdss")


def ensure_demo_dataset(
    root: Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Path of the demo category, generating it once (a few seconds) when missing."""
    from mdss_core.synth import generate_dataset

    base = (root or cache_dir()) / f"demo-v{DEMO_VERSION}"
    category = base / DEMO_CATEGORY
    if (category / "synth.json").is_file():  # written last: its presence means complete
        return category
    (made,) = generate_dataset(
        base,
        [DEMO_CATEGORY],
        size=DEMO_SIZE,
        seed=DEMO_SEED,
        overwrite=True,
        progress=progress,
        cancel=cancel,
        **DEMO_COUNTS,
    )
    return made


def demo_model_path() -> Path | None:
    """The shipped demo model, else one trained into the cache earlier, else ``None``."""
    from mdss_resources import resource_path

    for candidate in (resource_path("demo", DEMO_MODEL_NAME), cache_dir() / DEMO_MODEL_NAME):
        if candidate.is_file():
            return candidate
    return None
