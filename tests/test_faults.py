"""Fault injection (issue #19): degenerate clouds, full disks, read-only targets, kills, Ctrl+C.

Every case asserts what a user relies on: the command returns in bounded time, with either a
valid result or one ``mdss: error:`` line naming the file and the cause (never a traceback);
the inputs are byte-identical afterwards; no temp file is left; an existing model still loads
and predicts. Subprocesses only where the fault needs one (a resource limit, a signal, a real
concurrent run); everything else calls the CLI in this process, under a watchdog thread.
"""

from __future__ import annotations

import copy
import csv
import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from mdss_core import atomic
from mdss_core.atomic import sweep_stale_temps
from mdss_core.cli.main import main as cli
from mdss_core.errors import DataError
from mdss_core.io import open_dataset, read_xyz
from mdss_core.model import MDSSModel
from mdss_core.preprocess.resize import resize_nearest

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("fault_child.py")
BOUND_S = 60  # generous: every case here takes a few seconds; a hang is what is caught
TEMP_NAME = re.compile(r"\.mdss-tmp-|^\.tmp[A-Za-z0-9]{6}$|^\.probe")


# ------------------------------------------------------------------------------- helpers
def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``: inputs must come out byte-identical."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def temp_files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if TEMP_NAME.search(p.name)]


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("mdss: error:")]


def within(seconds: float, fn: Callable[[], int]) -> int:
    """``fn()`` in a watchdog thread: a hang fails the test instead of stalling the suite."""
    result: list = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised below, in the test's thread
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s"
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def run_child(
    *mdss_args: str,
    fsize: int | None = None,
    fit_from: Path | None = None,
    timeout: float = BOUND_S,
) -> subprocess.CompletedProcess:
    """``mdss`` in a subprocess through ``fault_child.py`` (resource limit, fake fit)."""
    options = [] if fsize is None else ["--fsize", str(fsize)]
    options += [] if fit_from is None else ["--fit-from", str(fit_from)]
    command = [sys.executable, str(CHILD), *options, "--", *mdss_args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def start_paused_child(*mdss_args: str, pause: str, fit_from: Path | None = None):
    """A child stopped at a known point (it printed ``PAUSED``), ready for a signal."""
    options = ["--pause", pause] + ([] if fit_from is None else ["--fit-from", str(fit_from)])
    command = [sys.executable, str(CHILD), *options, "--", *mdss_args]
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = []
    watchdog = threading.Timer(BOUND_S, child.kill)
    watchdog.start()
    try:
        for line in child.stdout:
            lines.append(line)
            if line.strip() == "PAUSED":
                return child
    finally:
        watchdog.cancel()
    child.wait()
    raise AssertionError(f"child never paused: {''.join(lines)}{child.stderr.read()}")


def write_sample(folder: Path, rgb: np.ndarray, xyz: np.ndarray | None = None) -> Path:
    """A single-sample folder (``rgb/000.png`` + ``xyz/000.tiff``)."""
    (folder / "rgb").mkdir(parents=True)
    (folder / "xyz").mkdir()
    cv2.imwrite(str(folder / "rgb" / "000.png"), np.ascontiguousarray(rgb[..., ::-1]))
    if xyz is not None:
        tifffile.imwrite(folder / "xyz" / "000.tiff", xyz.astype(np.float32))
    return folder


def truncated_tiff_header(path: Path, height: int, width: int) -> None:
    """A baseline TIFF whose header describes height × width × 3 float32 and no data at all."""
    import struct

    nbytes = height * width * 3 * 4
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value or offset
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, 200), (259, 3, 1, 1),
        (262, 3, 1, 2), (273, 4, 1, 512), (277, 3, 1, 3), (278, 4, 1, height),
        (279, 4, 1, nbytes), (284, 3, 1, 1), (339, 3, 3, 208),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = (
            struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        )
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    data = bytearray(struct.pack("<2sHI", b"II", 42, 8) + ifd)
    data += bytes(200 - len(data)) + struct.pack("<3H", 32, 32, 32)  # BitsPerSample at 200
    data += bytes(208 - len(data)) + struct.pack("<3H", 3, 3, 3)  # SampleFormat float at 208
    data += bytes(512 - len(data)) + bytes(1024)  # 1 KB of the promised 1.2 GB
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def model_file(tiny_model, tmp_path_factory) -> Path:
    return tiny_model.save(tmp_path_factory.mktemp("model") / "tiny.mdss")


@pytest.fixture(scope="module")
def model_256_file(tiny_model, tmp_path_factory) -> Path:
    """The tiny networks run at 256² with the default patches (k = 500, coverage 10): the
    geometry of the ``fast`` and ``paper`` presets, under which the issue's 8×8 sample hung."""
    model = copy.deepcopy(tiny_model)
    config = model.config
    model.net.config = replace(
        config,
        preprocess=replace(config.preprocess, size=256),
        sdf=replace(config.sdf, points_per_patch=500, coverage=10.0),
    )
    return model.save(tmp_path_factory.mktemp("model256") / "k500.mdss")


@pytest.fixture(scope="module")
def base_sample(tiny_dataset: Path):
    """A normal synthetic sample (64², an object on a background plane)."""
    return open_dataset(tiny_dataset, split="test").select(defect="good")[0].load()


@pytest.fixture(scope="module")
def two_samples(tiny_dataset: Path, tmp_path_factory) -> Path:
    """A folder of two samples (flat NNN.png + NNN.tiff pairs)."""
    folder = tmp_path_factory.mktemp("two")
    for i, ref in enumerate(open_dataset(tiny_dataset, split="test").refs[:2]):
        (folder / f"{i:03d}.png").write_bytes(ref.rgb_path.read_bytes())
        (folder / f"{i:03d}.tiff").write_bytes(ref.xyz_path.read_bytes())
    return folder


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """Mount a small tmpfs on ``path`` (root with mount rights only; else the test skips)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ------------------------------------------------------------------- degenerate clouds
def _downsampled(sample, n: int):
    return resize_nearest(sample.rgb, n), resize_nearest(sample.xyz, n)


def _plane(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) * 0.002
    return np.dstack([x, y, np.full_like(x, 0.5)])


def _object_points_identical(sample):
    xyz = sample.xyz.copy()
    plane_z = np.median(xyz[:4, :, 2])
    on_object = np.abs(xyz[..., 2] - plane_z) > 0.01
    xyz[on_object] = xyz[on_object][0]  # one sensor position repeated for the whole object
    return sample.rgb, xyz


def _line(sample):
    xyz = np.zeros_like(sample.xyz)
    xyz[32, :, 0] = np.linspace(0, 0.1, xyz.shape[1])
    xyz[32, :, 2] = 0.5
    return sample.rgb, xyz


def _one_point(sample):
    xyz = np.zeros_like(sample.xyz)
    xyz[10, 10] = (0.01, 0.01, 0.5)
    return sample.rgb, xyz


def _inf_points(sample):
    xyz = sample.xyz.copy()
    xyz[::3, ::5] = np.inf
    return sample.rgb, xyz


# name -> (arrays from the base sample, model, expected: None = a valid score, else error text)
DEGENERATE = {
    "1x1": (lambda s: _downsampled(s, 1), "tiny", "valid point"),
    "8x8 enlarged to 256 (k=500)": (lambda s: _downsampled(s, 8), "256", None),
    "4x4 enlarged to 64 (k=64)": (lambda s: _downsampled(s, 4), "tiny", None),
    "object points all identical": (_object_points_identical, "tiny", None),
    "all points identical": (
        lambda s: (s.rgb, np.full_like(s.xyz, 0.25)),
        "tiny",
        "no points left after background plane removal",
    ),
    "NaN only": (
        lambda s: (s.rgb, np.full_like(s.xyz, np.nan)),
        "tiny",
        "point cloud is empty",
    ),
    "some points inf": (_inf_points, "tiny", None),
    "constant depth (plane, no object)": (
        lambda s: (s.rgb, _plane(64)),
        "tiny",
        "no points left after background plane removal",
    ),
    "a line": (_line, "tiny", "no points left after background plane removal"),
    "one point": (_one_point, "tiny", "only 1 valid point"),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_cloud_gives_a_score_or_one_line_error(
    case, base_sample, model_file, model_256_file, tmp_path, capsys
):
    make, which, expected = DEGENERATE[case]
    rgb, xyz = make(base_sample)
    sample = write_sample(tmp_path / "in", rgb, xyz)
    before = digest(sample)
    out = tmp_path / "out"
    model = model_256_file if which == "256" else model_file
    code = within(BOUND_S, lambda: cli(["predict", str(model), str(sample), "--out", str(out)]))
    err = capsys.readouterr().err
    lines = error_lines(err)
    if expected is None:
        assert code == 0 and not lines, err
        (row,) = list(csv.DictReader((out / "scores.csv").open()))
        scores = [float(row[k]) for k in ("score_rgb", "score_3d", "score_fused")]
        assert np.isfinite(scores).all()
        fused = tifffile.imread(out / "samples" / "000_fused.tiff")
        assert fused.shape == rgb.shape[:2] and np.isfinite(fused).all()
    else:
        assert code == 2 and len(lines) == 1, err
        assert expected in lines[0] and str(sample / "xyz" / "000.tiff") in lines[0]
        assert "0 of 1 samples written" in lines[0] and "scores.csv not written" in lines[0]
        assert not (out / "scores.csv").exists()
    assert digest(sample) == before
    assert temp_files(sample, out) == []


def test_huge_tiff_header_on_truncated_data_fails_before_allocating(tmp_path, model_file, capsys):
    sample = write_sample(tmp_path / "in", np.zeros((8, 8, 3), np.uint8))
    tiff = sample / "xyz" / "000.tiff"
    truncated_tiff_header(tiff, 10_000, 10_000)
    before = digest(sample)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        with pytest.raises(DataError, match="truncated TIFF") as info:
            read_xyz(tiff)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated before the error"
    assert "10000x10000x3 float32 data (1.2 GB)" in str(info.value)
    out = tmp_path / "out"
    code = within(
        BOUND_S, lambda: cli(["predict", str(model_file), str(sample), "--out", str(out)])
    )
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and f"{tiff}: truncated TIFF" in line
    assert digest(sample) == before and temp_files(out) == []


# ------------------------------------------------------------------------- disk full
def _assert_model_intact(path: Path, original: bytes, sample) -> None:
    """The previous model is unchanged, loads and predicts."""
    assert path.read_bytes() == original
    prediction = MDSSModel.load(path, device="cpu").predict(sample)
    assert np.isfinite(prediction.fused_map).all()


def test_disk_full_file_size_limit_during_predict(model_file, two_samples, tmp_path):
    before = digest(two_samples)
    out = tmp_path / "out"
    # RLIMIT_FSIZE below one 64² float32 map: the first map write fails with EFBIG.
    result = run_child("predict", str(model_file), str(two_samples), "--out", str(out), fsize=8000)
    (line,) = error_lines(result.stderr)
    assert result.returncode == 2
    assert re.search(r"cannot write .*000_rgb\.tiff: file too large", line), line
    assert "0 of 2 samples written" in line and "scores.csv not written" in line
    assert digest(two_samples) == before and temp_files(out) == []


def test_disk_full_file_size_limit_while_train_saves(
    model_file, tiny_dataset, base_sample, tmp_path
):
    target = tmp_path / "models" / "ring.mdss"
    target.parent.mkdir()
    target.write_bytes(model_file.read_bytes())
    original = target.read_bytes()
    before = digest(tiny_dataset)
    result = run_child(
        "train",
        str(tiny_dataset),
        "--out",
        str(target),
        "--force",
        "--preset",
        "tiny",
        fsize=1_000_000,
        fit_from=model_file,
    )
    (line,) = error_lines(result.stderr)
    assert result.returncode == 2
    assert line == f"mdss: error: cannot write {target}: file too large (file size limit reached)"
    assert temp_files(target.parent) == [] and sorted(target.parent.iterdir()) == [target]
    assert digest(tiny_dataset) == before
    _assert_model_intact(target, original, base_sample)


def test_disk_full_tmpfs_predict_and_train(
    model_file, tiny_model, tiny_dataset, two_samples, base_sample, tmp_path, monkeypatch, capsys
):
    """A real ENOSPC on a small tmpfs (root only): predict stops, then train cannot save."""
    with tmpfs(tmp_path / "disk", "100k") as disk:
        before = digest(two_samples)
        out = disk / "out"
        code = cli(["predict", str(model_file), str(two_samples), "--out", str(out)])
        (line,) = error_lines(capsys.readouterr().err)
        assert code == 2 and ": no space left on device (" in line
        written = int(re.search(r"\((\d) of 2 samples written", line).group(1))
        assert written < 2 and not (out / "scores.csv").exists()
        assert digest(two_samples) == before and temp_files(out) == []
    # Room for one model file and half of a second one: the save cannot complete.
    room_k = model_file.stat().st_size * 3 // 2 // 1024 + 64
    with tmpfs(tmp_path / "models", f"{room_k}k") as disk:
        target = disk / "ring.mdss"
        target.write_bytes(model_file.read_bytes())
        original = target.read_bytes()
        monkeypatch.setattr(MDSSModel, "fit", classmethod(lambda cls, *a, **k: tiny_model))
        code = cli(
            ["train", str(tiny_dataset), "--out", str(target), "--force", "--preset", "tiny"]
        )
        (line,) = error_lines(capsys.readouterr().err)
        assert code == 2 and line == f"mdss: error: cannot write {target}: no space left on device"
        assert sorted(disk.iterdir()) == [target]
        _assert_model_intact(target, original, base_sample)


# ---------------------------------------------------------------------- read-only output
def test_read_only_out_fails_before_scoring(model_file, two_samples, tmp_path, monkeypatch, capsys):
    """EROFS injected at the OS calls (works unprivileged); the real thing is the next test."""
    out = tmp_path / "ro"
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(real):
        def call(path, *args, **kwargs):
            if str(path).startswith(str(out)):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "open", refuse(real_open))
    monkeypatch.setattr(os, "mkdir", refuse(real_mkdir))
    scored = []
    monkeypatch.setattr(MDSSModel, "predict_ready", lambda self, batch: scored.append(batch))
    code = cli(["predict", str(model_file), str(two_samples), "--out", str(out)])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and line == f"mdss: error: cannot write {out}: read-only file system"
    assert scored == []  # refused before the first sample was scored


def test_read_only_out_real_file_system(model_file, two_samples, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        for out in (ro, ro / "new"):
            code = cli(["predict", str(model_file), str(two_samples), "--out", str(out)])
            (line,) = error_lines(capsys.readouterr().err)
            assert code == 2 and line == f"mdss: error: cannot write {out}: read-only file system"


# --------------------------------------------------------------------------- signals
def test_sigkill_during_save_leaves_the_old_model_and_the_next_save_sweeps(
    model_file, tiny_model, tiny_dataset, base_sample, tmp_path, monkeypatch
):
    folder = tmp_path / "models"
    folder.mkdir()
    target = folder / "ring.mdss"
    target.write_bytes(model_file.read_bytes())
    original = target.read_bytes()
    # Stopped after the new model's bytes are written and synced, before the rename.
    child = start_paused_child(
        "train",
        str(tiny_dataset),
        "--out",
        str(target),
        "--force",
        "--preset",
        "tiny",
        pause="save",
        fit_from=model_file,
    )
    child.send_signal(signal.SIGKILL)
    assert child.wait(BOUND_S) == -signal.SIGKILL
    child.stdout.close()
    child.stderr.close()
    (leftover,) = temp_files(folder)  # what the killed run left: the full temp file
    assert leftover.stat().st_size == len(original)
    _assert_model_intact(target, original, base_sample)
    # An unrelated .tmpXXXXXX file and a temp file of a live process must survive the sweep.
    foreign = folder / ".tmpAbC123"
    foreign.write_bytes(b"not ours")
    live = folder / f".other.mdss-tmp-{os.getppid()}-abcdefgh.mdss"
    live.write_bytes(b"being written")
    for path in (foreign, live):
        os.utime(path, (0, 0))
    # This process started before the kill: to it the leftover may still be in use. The next
    # run (started later) sweeps it.
    assert sweep_stale_temps(folder) == [] and leftover.exists()
    monkeypatch.setattr(atomic, "RUN_STARTED", time.time() + 1)
    tiny_model.save(folder / "next.mdss")
    assert not leftover.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [target.name, "next.mdss", foreign.name, live.name]
    )
    _assert_model_intact(target, original, base_sample)


def test_safetensors_temp_of_an_older_mdss_is_swept(model_file, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    stale = folder / ".tmpXy12Z9"  # what safetensors' save_file left when mdss used it
    stale.write_bytes(model_file.read_bytes())
    os.utime(stale, (0, 0))
    assert sweep_stale_temps(folder) == [stale] and not stale.exists()


def test_sigint_during_save_keeps_the_old_model(model_file, tiny_dataset, base_sample, tmp_path):
    target = tmp_path / "ring.mdss"
    target.write_bytes(model_file.read_bytes())
    original = target.read_bytes()
    child = start_paused_child(
        "train",
        str(tiny_dataset),
        "--out",
        str(target),
        "--force",
        "--preset",
        "tiny",
        pause="save",
        fit_from=model_file,
    )
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=BOUND_S)
    assert child.returncode == 130 and "mdss: interrupted" in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == [target]
    _assert_model_intact(target, original, base_sample)


def test_sigint_during_predict_says_what_was_written(model_file, two_samples, tmp_path):
    before = digest(two_samples)
    out = tmp_path / "out"
    child = start_paused_child(
        "predict", str(model_file), str(two_samples), "--out", str(out), pause="written"
    )
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=BOUND_S)
    assert child.returncode == 130 and "Traceback" not in err
    assert f"mdss: 1 of 2 samples written to {out}; scores.csv not written" in err
    assert "mdss: interrupted" in err
    assert len(list(out.rglob("*_fused.tiff"))) == 1 and not (out / "scores.csv").exists()
    assert digest(two_samples) == before and temp_files(out) == []


# ------------------------------------------------------------------------ concurrency
def test_three_concurrent_predicts_on_one_model_agree(model_file, two_samples, tmp_path):
    model_before = model_file.read_bytes()
    before = digest(two_samples)
    outs = [tmp_path / f"out{i}" for i in range(3)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mdss_core.cli.main",
                "predict",
                str(model_file),
                str(two_samples),
                "--out",
                str(out),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for child in children:
        _, err = child.communicate(timeout=BOUND_S * 2)
        assert child.returncode == 0, err
    results = [digest(out) for out in outs]
    # 3 TIFF maps + 1 PNG per sample, scores.csv, regions.csv, report.html, the run journal
    assert len(results[0]) == 2 * 4 + 3 + 1
    assert results[0] == results[1] == results[2]
    assert model_file.read_bytes() == model_before and digest(two_samples) == before
    assert temp_files(*outs) == []


# ------------------------------------------------------------------ the error boundary
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "/x/y"), "/x/y: permission denied"),
        (MemoryError("Unable to allocate 1.12 GiB"), "out of memory (Unable to allocate 1.12 GiB)"),
    ],
)
def test_cli_boundary_turns_failures_into_one_line(exc, expected, monkeypatch, capsys, tmp_path):
    def fail(*_a, **_k):
        raise exc

    monkeypatch.setattr(MDSSModel, "load", fail)
    assert cli(["predict", "m.mdss", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert error_lines(capsys.readouterr().err) == [f"mdss: error: {expected}"]


def test_a_bug_is_one_line_unless_debug(monkeypatch, capsys, tmp_path):
    def bug(*_a, **_k):
        raise KeyError("oops")

    monkeypatch.setattr(MDSSModel, "load", bug)
    args = ["predict", "m.mdss", str(tmp_path), "--out", str(tmp_path / "o")]
    assert cli(args) == 3
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "mdss: internal error: KeyError: 'oops' (a bug: rerun with --debug for the traceback)"
    )
    for debug in (["--debug", *args], [*args, "--debug"]):
        with pytest.raises(KeyError):
            cli(debug)
