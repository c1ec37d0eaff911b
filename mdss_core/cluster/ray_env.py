"""Ray, imported only when a command asks for it, and the cluster a command runs on."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from mdss_core.errors import MDSSError

INSTALL_HINT = "Ray is not installed: pip install 'mdss[cluster]' (or pip install ray)"


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise MDSSError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_cluster(address: str | None) -> Iterator[ModuleType]:
    """Ray, connected: to ``address`` ("auto": the cluster this machine belongs to), or to a
    local instance started here for the command when ``address`` is empty. A Ray already
    initialised by the caller (a script, the tests) is used as it is and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    # Quiet: Ray's own log lines would break the progress bar; actors' output stays in Ray's logs.
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise MDSSError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A ``host:port`` that accepts no connection fails in seconds, not after Ray's own
    retries (minutes). "auto" and ``ray://`` addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MDSSError(f"cannot reach the Ray cluster at {address} ({reason})") from None


def gpu_count(ray: ModuleType) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def cpu_count(ray: ModuleType) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


__all__ = ["INSTALL_HINT", "cpu_count", "gpu_count", "import_ray", "ray_cluster"]
