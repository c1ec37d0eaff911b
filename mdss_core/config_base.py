"""One way to turn any settings dataclass into JSON and back: :class:`ConfigBase`.

Model files keep their settings as JSON; reading them back must refuse what this version does
not know (a newer file, a typo) with one line naming the section, never guess. Every settings
dataclass (preprocessing, both branches, the whole model, the calibration) inherits this, so
they all read and fail the same way: :class:`mdss_core.errors.ConfigError`.
"""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from mdss_core.errors import ConfigError

T = TypeVar("T", bound="ConfigBase")


class ConfigBase:
    """``to_dict`` gives plain JSON values; ``from_dict`` is its checked inverse."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: Any, section: str = "") -> T:
        """Rebuild from :meth:`to_dict`'s output: nested settings and tuples are restored;
        missing keys take their defaults; unknown keys and invalid values raise ConfigError."""
        section = section or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls) if f.init}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{section}: unknown keys {unknown} (written by a newer mdss?)")
        hints = typing.get_type_hints(cls)
        values = {
            name: _typed(hints[name], value, f"{section}.{name}") for name, value in data.items()
        }
        try:
            return cls(**values)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{section}: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigBase):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _typed(hint: Any, value: Any, section: str) -> Any:
    if isinstance(hint, type) and issubclass(hint, ConfigBase) and is_dataclass(hint):
        return hint.from_dict(value, section)
    if value is not None and type(None) in typing.get_args(hint):  # Optional[settings]
        (inner,) = (a for a in typing.get_args(hint) if a is not type(None))
        return _typed(inner, value, section)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value
