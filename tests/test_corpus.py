"""Generic image corpus: procedural images, extraction from .whl/.deb files, split, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mdss_core.cli.main import main
from mdss_core.errors import Cancelled, DataError
from mdss_core.rgb.corpus import build_corpus, is_heldout, prepare_image
from mdss_core.rgb.corpus_procedural import procedural_image
from mdss_core.rgb.corpus_sources import copyright_licences


def _photo_png(seed: int, size: tuple[int, int] = (160, 200)) -> bytes:
    """A textured 'photograph' (random smooth blobs + grain) encoded as PNG."""
    rng = np.random.default_rng(seed)
    height, width = size
    blobs = cv2.resize(rng.uniform(0, 255, (5, 5, 3)).astype(np.float32), (width, height))
    image = np.clip(blobs + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def _icon_png() -> bytes:
    return _photo_png(9, (32, 32))


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _corpus_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.glob("*/*.jpg"))


def test_procedural_images_are_deterministic_and_varied() -> None:
    first = procedural_image(0, 0, 128)
    assert first.shape == (128, 128, 3) and first.dtype == np.uint8
    assert np.array_equal(first, procedural_image(0, 0, 128))
    images = [procedural_image(0, i, 128) for i in range(8)] + [procedural_image(1, 0, 128)]
    assert not np.array_equal(images[-1], first)  # another seed, another image
    flat = np.stack([im.reshape(-1) for im in images]).astype(np.int16)
    differences = [np.abs(flat[i] - flat[j]).mean() for i in range(9) for j in range(i)]
    assert min(differences) > 5  # no two alike
    assert all(im.std() > 3 for im in images)  # none near-constant


def _write_wheel(folder: Path, nested: bool = False) -> Path:
    path = folder / "fakepics-2.0-py3-none-any.whl"
    good = _photo_png(1)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(
            "fakepics-2.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: fakepics\nVersion: 2.0\nLicense: MIT\n",
        )
        wheel.writestr("fakepics/data/good.png", good)
        wheel.writestr("fakepics/data/icon.png", _icon_png())
        wheel.writestr("fakepics/data/copy_of_good.png", good)
        if nested:
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w") as pk3:
                pk3.writestr("textures/stone.png", _photo_png(2))
            wheel.writestr("fakepics/data/textures.pk3", inner.getvalue())
            wheel.writestr("fakepics/data/mvtec_ad/cable_gland_000.png", _photo_png(3))
    return path


def _check_one_image(
    out: Path, package: str, version: str, licence: str, kind: str, skipped: dict[str, int]
) -> None:
    files = _corpus_files(out)
    assert len(files) == 1
    manifest = _manifest(out)
    (entry,) = manifest["images"]
    assert entry["file"] == files[0]
    assert (entry["source"], entry["package"], entry["version"]) == (kind, package, version)
    assert entry["licence"] == licence
    assert entry["path"].endswith("good.png") or entry["path"].endswith("copy_of_good.png")
    assert entry["sha256"] == hashlib.sha256((out / files[0]).read_bytes()).hexdigest()
    (package_entry,) = manifest["packages"]
    assert package_entry["skipped"] == skipped
    assert manifest["complete"] and manifest["totals"]["by_source"] == {kind: 1}


def test_wheel_keeps_one_good_image_and_records_its_origin(tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    _write_wheel(packages)
    summary = build_corpus(tmp_path / "corpus", packages, procedural=0, seed=0)
    assert summary.images == 1 and summary.by_source == {"wheel": 1}
    skipped = {"duplicate": 1, "too small": 1}
    _check_one_image(tmp_path / "corpus", "fakepics", "2.0", "MIT", "wheel", skipped)


def test_images_inside_a_nested_pk3_are_found_and_mvtec_names_excluded(tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    _write_wheel(packages, nested=True)
    build_corpus(tmp_path / "corpus", packages, procedural=0, seed=0)
    paths = sorted(e["path"] for e in _manifest(tmp_path / "corpus")["images"])
    assert paths[-1] == "fakepics/data/textures.pk3!/textures/stone.png" and len(paths) == 2
    (package,) = _manifest(tmp_path / "corpus")["packages"]
    assert package["skipped"]["excluded name (anomaly-detection data)"] == 1


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_deb_keeps_one_good_image_and_reads_the_copyright_licence(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fake-pics\nVersion: 1.0-1\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test images\n"
    )
    doc = root / "usr/share/doc/fake-pics"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2024 Test\nLicense: CC0-1.0\n\nLicense: CC0-1.0\n text\n"
    )
    (doc / "screenshot.png").write_bytes(_photo_png(4))  # a manual's screenshot: not a scene
    images = root / "usr/share/fake-pics"
    images.mkdir(parents=True)
    good = _photo_png(1)
    (images / "good.png").write_bytes(good)
    (images / "icon.png").write_bytes(_icon_png())
    (images / "copy_of_good.png").write_bytes(good)
    packages = tmp_path / "packages"
    packages.mkdir()
    deb = packages / "fake-pics_1.0-1_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    build_corpus(tmp_path / "corpus", packages, procedural=0, seed=0)
    skipped = {"duplicate": 1, "too small": 1, "documentation folder": 1}
    _check_one_image(tmp_path / "corpus", "fake-pics", "1.0-1", "CC0-1.0", "deb", skipped)


def test_a_broken_package_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / "broken_1_all.deb").write_bytes(b"not an archive")
    with pytest.raises(DataError, match="broken_1_all.deb: not a Debian package") as info:
        build_corpus(tmp_path / "corpus", packages, procedural=0, seed=0)
    assert "\n" not in str(info.value)


def test_copyright_licences_from_dep5_and_free_text() -> None:
    dep5 = "Files: *\nLicense: GPL-2+\n\nFiles: a/*\nLicense: CC-BY-SA-3.0\n\nLicense: GPL-2+\n"
    assert copyright_licences(dep5) == "GPL-2+; CC-BY-SA-3.0"
    free = "Licensed under Creative Commons Attribution-ShareAlike 3.0 License."
    assert copyright_licences(free) == "CC-BY-SA (free-text copyright file)"
    assert copyright_licences("All rights reserved.") == "unknown"


def test_prepare_image_flattens_alpha_and_rejects_cut_outs() -> None:
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 256, (200, 200, 3))
    rgba[:150, :, 3] = 255  # 75 % opaque: a picture with a transparent strip
    image, reason = prepare_image(cv2.imencode(".png", rgba)[1].tobytes(), 128, background=77)
    assert reason == "" and image.shape == (128, 128, 3)
    rgba[:, :, 3] = 0
    rgba[:40, :40, 3] = 255  # mostly transparent: an icon or sprite
    cut_out = cv2.imencode(".png", rgba)[1].tobytes()
    assert prepare_image(cut_out, 128) == (None, "mostly transparent")
    flat = cv2.imencode(".png", np.full((300, 300, 3), 90, np.uint8))[1].tobytes()
    assert prepare_image(flat, 128) == (None, "near-constant")


def test_heldout_split_is_deterministic(tmp_path: Path) -> None:
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    fraction = np.mean([is_heldout(k) for k in keys])
    assert 0.03 < fraction < 0.07
    first = build_corpus(tmp_path / "a", None, procedural=60, seed=3, max_side=128)
    build_corpus(tmp_path / "b", None, procedural=60, seed=3, max_side=128)
    assert first.heldout > 0 and first.train > first.heldout
    assert _corpus_files(tmp_path / "a") == _corpus_files(tmp_path / "b")
    rows_a = [(e["file"], e["sha256"]) for e in _manifest(tmp_path / "a")["images"]]
    assert rows_a == [(e["file"], e["sha256"]) for e in _manifest(tmp_path / "b")["images"]]


def test_refuses_a_non_empty_folder_that_is_not_a_corpus(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty") as info:
        build_corpus(out, None, procedural=2, seed=0, max_side=128)
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_rebuilding_a_previous_corpus_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_corpus(out, None, procedural=6, seed=0, max_side=128)
    build_corpus(out, None, procedural=3, seed=1, max_side=128)
    assert len(_corpus_files(out)) == 3
    assert all("-s1-" in name for name in _corpus_files(out))


def test_a_cancelled_build_can_be_rebuilt_in_place(tmp_path: Path) -> None:
    out, cancel = tmp_path / "out", threading.Event()

    def progress(p) -> None:
        if p.step >= 2:
            cancel.set()

    with pytest.raises(Cancelled):
        build_corpus(
            out, None, procedural=5, seed=0, progress=progress, cancel=cancel, max_side=128
        )
    assert not _manifest(out)["complete"]
    assert build_corpus(out, None, procedural=3, seed=0, max_side=128).images == 3
    assert _manifest(out)["complete"]


def test_cli_builds_a_procedural_corpus(tmp_path: Path, capsys) -> None:
    out = tmp_path / "corpus"
    assert main(["teacher", "corpus", "--out", str(out), "--procedural", "8"]) == 0
    assert len(_corpus_files(out)) == 8
    manifest = _manifest(out)
    assert manifest["complete"] and manifest["totals"]["by_source"] == {"procedural": 8}
    assert cv2.imread(str(out / manifest["images"][0]["file"])).shape == (384, 384, 3)
    assert "wrote 8 images" in capsys.readouterr().out
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    assert main(["teacher", "corpus", "--out", str(tmp_path / "junk"), "--procedural", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
