"""Teacher download, tested only against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mdss_core.cli import teacher_cmd
from mdss_core.errors import Cancelled, MDSSError
from mdss_core.rgb.pdn import PDN, conv_indices, init_pdn_
from mdss_core.rgb.teacher import load_teacher_file
from mdss_core.rgb.teacher_download import CHUNK_BYTES, download_teacher


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _archive(net: PDN, padding_bytes: int = 0) -> bytes:
    """A zip laid out like the anomalib release, holding ``net`` under anomalib key names."""
    number = {index: n + 1 for n, index in enumerate(conv_indices("small"))}
    state = {}
    for key, value in net.state_dict().items():
        index, kind = key.split(".")
        state[f"conv{number[int(index)]}.{kind}"] = value
    teacher_bytes = io.BytesIO()
    torch.save(state, teacher_bytes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(
            "efficientad_pretrained_weights/pretrained_teacher_small.pth", teacher_bytes.getvalue()
        )
        if padding_bytes:  # makes the archive span several download chunks
            bundle.writestr("efficientad_pretrained_weights/readme.bin", bytes(padding_bytes))
    return buffer.getvalue()


def _leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.name.endswith((".part", ".tmp"))]


def test_download_verifies_extracts_and_caches(served, tmp_path: Path) -> None:
    base, root = served
    net = init_pdn_(PDN(), 11, "torch-default")
    data = _archive(net)
    (root / "weights.zip").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    cache = tmp_path / "cache"
    reports = []
    path = download_teacher("small", cache, f"{base}/weights.zip", digest, progress=reports.append)
    assert path.name == "pretrained_teacher_small.pth" and path.is_relative_to(cache)
    loaded, origin = load_teacher_file(path, "small")
    assert origin["format"] == "anomalib"
    assert torch.equal(loaded[0].weight, net[0].weight)
    assert reports[-1].step == len(data) and not _leftovers(cache)

    (root / "weights.zip").unlink()  # a second call must not touch the network
    assert download_teacher("small", cache, f"{base}/weights.zip", digest) == path


def test_wrong_checksum_is_an_error_and_leaves_nothing(served, tmp_path: Path) -> None:
    base, root = served
    (root / "weights.zip").write_bytes(_archive(init_pdn_(PDN(), 1)))
    cache = tmp_path / "cache"
    with pytest.raises(MDSSError, match="sha256"):
        download_teacher("small", cache, f"{base}/weights.zip", "0" * 64)
    assert list(cache.iterdir()) == []


def test_cancel_mid_download_leaves_no_partial_file(served, tmp_path: Path) -> None:
    base, root = served
    data = _archive(init_pdn_(PDN(), 2), padding_bytes=3 * CHUNK_BYTES)
    (root / "weights.zip").write_bytes(data)
    cache = tmp_path / "cache"
    cancel = threading.Event()

    def progress(report) -> None:
        if report.step >= CHUNK_BYTES:
            cancel.set()

    with pytest.raises(Cancelled):
        download_teacher(
            "small",
            cache,
            f"{base}/weights.zip",
            hashlib.sha256(data).hexdigest(),
            progress=progress,
            cancel=cancel,
        )
    assert list(cache.iterdir()) == []


def test_network_failure_points_to_offline_import(served, tmp_path: Path) -> None:
    base, _ = served
    with pytest.raises(MDSSError) as info:
        download_teacher("small", tmp_path / "cache", f"{base}/missing.zip", "0" * 64)
    message = str(info.value)
    assert "failed" in message and "mdss teacher import FILE" in message and "\n" not in message
    assert not _leftovers(tmp_path / "cache")


def test_cli_download_prints_the_teacher_path(served, tmp_path: Path, capsys) -> None:
    base, root = served
    data = _archive(init_pdn_(PDN(), 4))
    (root / "weights.zip").write_bytes(data)
    parser = argparse.ArgumentParser()
    teacher_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "teacher",
            "download",
            "--cache",
            str(tmp_path / "cache"),
            "--url",
            f"{base}/weights.zip",
            "--sha256",
            hashlib.sha256(data).hexdigest(),
        ]
    )
    assert args.func(args) == 0
    assert "pretrained_teacher_small.pth" in capsys.readouterr().out
