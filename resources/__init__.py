"""Icons, style sheet and demo assets, found through :func:`resource_path` after any install."""

from pathlib import Path

RESOURCE_DIR = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """Absolute path of a bundled resource (works for editable and wheel installs)."""
    return RESOURCE_DIR.joinpath(*parts)
