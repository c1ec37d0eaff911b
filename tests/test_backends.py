"""Exported graphs (ONNX / OpenVINO IR) against the torch backend, per detector (tiny models).

Parity tolerance: maps on the fused scale within ``ATOL`` (float32 graphs differ from torch
only by summation order; measured ≤ 4e-5 on these models) and identical decisions. OpenVINO
tests skip when the package is absent; onnxruntime is in the ``dev`` extra, so CI runs them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mdss_core.config import get_preset
from mdss_core.errors import MDSSError, ModelFileError, WriteError
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ATOL = 2e-4  # float32: maps of the fused scale (their maxima are ~2–5 on these models)
MAPS = ("rgb_map", "rgb_map_aligned", "map_3d", "point_map", "fused_map")
METHODS = ("mdss", "crd", "dmgrd")


def _config(method: str):
    config = get_preset("tiny", method)
    if method == "mdss":  # the shipped CPU preset's student also sees the normal image
        rgb = replace(config.rgb, normals=True, normals_memory=32, normals_memory_draws=2)
        config = replace(config, rgb=rgb)
    return config


@pytest.fixture(scope="module")
def models(tiny_dataset: Path) -> dict[str, MDSSModel]:
    data = open_dataset(tiny_dataset)
    return {m: MDSSModel.fit(data, _config(m), device="cpu") for m in METHODS}


@pytest.fixture(scope="module")
def test_samples(tiny_dataset: Path) -> list:
    refs = [r for r in open_dataset(tiny_dataset) if r.split == "test"]
    return [r.load() for r in refs[:4]]


@pytest.fixture(scope="module")
def exports(models, tmp_path_factory) -> dict[str, Path]:
    from mdss_core.backends.export import export_model

    root = tmp_path_factory.mktemp("exports")
    return {m: export_model(model, root / m, "onnx") for m, model in models.items()}


def _max_diff(a, b) -> float:
    return max(float(np.abs(getattr(a, k) - getattr(b, k)).max()) for k in MAPS)


def _assert_parity(torch_model, other, samples, atol: float) -> None:
    for sample in samples:
        a, b = torch_model.predict(sample), other.predict(sample)
        diff = _max_diff(a, b)
        assert diff <= atol, f"{sample.key}: max abs map difference {diff:.3g} > {atol}"
        assert a.is_anomalous == b.is_anomalous, f"{sample.key}: decision differs"
        assert abs(a.score_fused - b.score_fused) <= atol, (a.score_fused, b.score_fused)
        assert len(a.regions.regions) == len(b.regions.regions), sample.key


@pytest.mark.parametrize("method", METHODS)
def test_onnxruntime_maps_and_decisions_equal_torch(method, models, exports, test_samples):
    from mdss_core.backends.load import load_on_backend

    exported = load_on_backend(exports[method], "onnxruntime")
    assert exported.net.backend == "onnxruntime"
    _assert_parity(models[method], exported, test_samples, ATOL)


@pytest.mark.parametrize("method", METHODS)
def test_openvino_maps_and_decisions_equal_torch(method, models, exports, test_samples, tmp_path):
    pytest.importorskip("openvino")
    from mdss_core.backends.export import export_model
    from mdss_core.backends.load import load_on_backend

    ir = export_model(models[method], tmp_path / "ir", "openvino")
    graphs = json.loads((ir / "model.json").read_text())["graphs"]
    assert all(g["file"].endswith(".xml") for g in graphs.values())
    assert not list(ir.glob("*.onnx")), "IR export keeps only .xml/.bin graphs"
    _assert_parity(models[method], load_on_backend(ir), test_samples, ATOL)
    # An ONNX export runs on OpenVINO too (it reads ONNX directly).
    _assert_parity(models[method], load_on_backend(exports[method], "openvino"), test_samples, ATOL)


def test_a_batch_of_samples_gives_each_sample_its_own_maps(models, exports, test_samples):
    """Dynamic batch axis: three samples in one call equal three single calls."""
    from mdss_core.backends.load import load_on_backend
    from mdss_core.preprocess.ready import make_ready

    exported = load_on_backend(exports["mdss"], "onnxruntime")
    ready = [make_ready(s, exported.preparation) for s in test_samples[:3]]
    batched = exported.predict_ready(ready)
    for r, together in zip(ready, batched, strict=True):
        alone = exported.predict_ready([r])[0]
        assert _max_diff(alone, together) <= 1e-6


def test_openvino_low_precision_is_measured_against_fp32(models, exports, test_samples):
    """bf16 / fp16 where the CPU has it: what it costs in map accuracy (printed; loosely bounded).

    The RGB map is a difference of two similar feature stacks, so 8-bit mantissas move it
    visibly; the bound only catches a broken graph (maps of another scale)."""
    pytest.importorskip("openvino")
    from mdss_core.backends.load import load_on_backend

    fp32 = models["mdss"]
    for precision in ("bf16", "fp16"):
        low = load_on_backend(exports["mdss"], "openvino", precision=precision)
        used = {s.effective_precision for s in low.net.sessions.values()}
        diffs = [_max_diff(fp32.predict(s), low.predict(s)) for s in test_samples]
        peak = max(float(fp32.predict(s).fused_map.max()) for s in test_samples)
        print(f"openvino {precision} (runs {used}): max abs map diff {max(diffs):.3g}, peak {peak}")
        assert max(diffs) <= 0.25 * peak, f"{precision}: map diff {max(diffs):.3g}"


def test_int8_export_quantizes_the_image_graph_only(models, tiny_dataset, test_samples, tmp_path):
    """NNCF post-training int8 on normal scans: the RGB graph is replaced, SDF stays float32;
    the maps stay on the same scale (loose bound: int8 accuracy is measured, not promised)."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from mdss_core.backends.export import export_model
    from mdss_core.backends.load import load_on_backend

    normal = [r.load() for r in open_dataset(tiny_dataset) if r.label == 0][:3]
    out = export_model(models["mdss"], tmp_path / "q", "openvino", int8_samples=normal)
    graphs = json.loads((out / "model.json").read_text())["graphs"]
    assert graphs["rgb"]["file"] == "rgb_int8.xml" and graphs["rgb"]["int8"]["normal_scans"] == 3
    assert "int8" not in graphs["sdf"] and not (out / "rgb.xml").exists()
    model = load_on_backend(out)
    assert model.info()["training"]["int8_graphs"] == ["rgb"]
    for sample in test_samples:
        a, b = models["mdss"].predict(sample), model.predict(sample)
        assert np.isfinite(b.fused_map).all()
        assert np.abs(a.point_map - b.point_map).max() <= ATOL, "the SDF graph is float32"
        assert _max_diff(a, b) <= 0.5 * float(a.fused_map.max()), _max_diff(a, b)


def test_export_can_recalibrate_on_its_own_graphs(models, tiny_dataset, tmp_path):
    """Thresholds from the exported graphs' maps equal torch's recalibration on the same scans
    (fp32), and the model they were exported from is not changed."""
    import copy

    from mdss_core.backends.export import export_model

    model = models["crd"]
    before = model.image_threshold
    refs = [r for r in open_dataset(tiny_dataset) if r.label == 0 and r.split == "validation"]
    out = export_model(model, tmp_path / "c", calibrate_refs=refs)
    record = json.loads((out / "model.json").read_text())
    twin = copy.copy(model)
    twin.recalibrate(refs)
    assert model.image_threshold == before
    assert record["training"]["calibrated_with"] == "onnxruntime"
    assert record["image_threshold"] == pytest.approx(twin.image_threshold, abs=ATOL)
    assert record["pixel_threshold"] == pytest.approx(twin.pixel_threshold, abs=ATOL)


def test_int8_needs_openvino_format(models, tmp_path):
    from mdss_core.backends.export import export_model

    with pytest.raises(MDSSError, match="--format openvino"):
        export_model(models["crd"], tmp_path / "q", "onnx", int8_samples=[])
    assert not (tmp_path / "q").exists()


def test_export_folder_lists_every_file_with_its_sha256(exports):
    from mdss_core.backends.export import sha256

    folder = exports["mdss"]
    record = json.loads((folder / "model.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())["sha256"]
    assert record["method"] == "mdss" and record["format"] == "mdss-export"
    assert {"calibration", "config", "roi", "teacher_origin", "image_threshold"} <= set(record)
    assert set(manifest) == {"model.json", "rgb.onnx", "sdf.onnx"}
    assert all(sha256(folder / name) == digest for name, digest in manifest.items())
    assert not [p for p in folder.parent.iterdir() if "partial" in p.name], "temp folder left"


def test_changed_graph_is_refused_in_one_line(exports, tmp_path):
    import shutil

    from mdss_core.backends.load import load_on_backend

    copy = shutil.copytree(exports["crd"], tmp_path / "copy")
    with (copy / "crd.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFileError, match="sha256 mismatch") as caught:
        load_on_backend(copy)
    assert "\n" not in str(caught.value) and "crd.onnx" in str(caught.value)


def test_existing_folder_is_kept_unless_forced(models, tmp_path):
    from mdss_core.backends.export import export_model

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    with pytest.raises(WriteError, match="--force"):
        export_model(models["crd"], out)
    assert (out / "keep.txt").read_text() == "the user's"
    export_model(models["crd"], out, force=True)
    assert not (out / "keep.txt").exists() and (out / "crd.onnx").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temp or old folder left"


def test_missing_runtime_names_the_extra(monkeypatch, exports):
    from mdss_core.backends.load import load_on_backend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MDSSError, match=r"pip install 'mdss\[onnx\]'"):
        load_on_backend(exports["mdss"], "onnxruntime")


def test_export_folder_refuses_torch_and_a_plain_folder(exports, tmp_path):
    from mdss_core.backends.load import load_on_backend

    with pytest.raises(MDSSError, match="export it again"):
        load_on_backend(exports["mdss"]).save(tmp_path / "x.mdss")
    assert not (tmp_path / "x.mdss").exists()
    with pytest.raises(ModelFileError, match="onnxruntime or openvino"):
        load_on_backend(exports["mdss"], "torch")
    with pytest.raises(ModelFileError, match="not an mdss export folder"):
        load_on_backend(tmp_path)


def test_api_and_cli_run_an_export_folder(exports, tiny_dataset, tmp_path, capsys):
    from mdss_core import api
    from mdss_core.cli.main import main

    model = api.load_model(exports["dmgrd"] / "model.json")  # what a file dialog picks
    assert model.info()["method"] == "dmgrd"
    assert model.info()["training"]["backend"] == "onnxruntime"
    refs = [r for r in open_dataset(tiny_dataset) if r.split == "test"][:2]
    assert all(s.error is None for s in model.score_many(refs))
    out = tmp_path / "pred"
    args = ["predict", str(exports["dmgrd"]), str(tiny_dataset), "--split", "test"]
    assert main([*args, "--out", str(out), "--no-png"]) == 0
    assert "onnxruntime (cpu)" in capsys.readouterr().out
    assert (out / "scores.csv").is_file()


def test_cli_export_then_evaluate_on_both_backends(models, tiny_dataset, tmp_path, capsys):
    from mdss_core.cli.main import main

    path = models["mdss"].save(tmp_path / "m.mdss")
    assert main(["export", str(path), "--out", str(tmp_path / "exp")]) == 0
    tables = []
    for backend in ("torch", "onnxruntime"):
        capsys.readouterr()
        model_arg = str(path if backend == "torch" else tmp_path / "exp")
        assert main(["evaluate", model_arg, str(tiny_dataset), "--backend", backend]) == 0
        out = capsys.readouterr().out
        tables.append([line for line in out.splitlines() if line.startswith(("all", "at the"))])
    assert tables[0] == tables[1], tables


def test_bench_puts_backends_side_by_side(models, tiny_dataset, tmp_path):
    from mdss_core.bench.models import compare_models, format_models

    path = models["dmgrd"].save(tmp_path / "d.mdss")
    result = compare_models([path], tiny_dataset, samples=2, rounds=1, backends=BENCH_BACKENDS)
    rows = result["models"]
    assert [row["backend"] for row in rows.values()] == list(BENCH_BACKENDS)
    for row in rows.values():
        assert row["batch_per_s"] > 0 and row["params_mb"] > 0 and "branches" in row["stages"]
    table = format_models(result)
    assert all(f"d.mdss [{b}]" in table for b in BENCH_BACKENDS)


def test_bench_times_an_export_folder(exports, tiny_dataset):
    from mdss_core.bench.models import compare_models

    folder = exports["crd"]
    result = compare_models([folder], tiny_dataset, samples=1, rounds=1, backends=["onnxruntime"])
    row = result["models"][str(folder)]
    on_disk = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    assert row["backend"] == "onnxruntime" and abs(row["file_mb"] - on_disk) < 0.1


def test_bench_refuses_an_unknown_backend(capsys):
    from mdss_core.cli.main import main

    with pytest.raises(SystemExit):
        main(["bench", "--models", "m.mdss", "--data", ".", "--backends", "torch,tensorrt"])
    assert "unknown backend 'tensorrt'" in capsys.readouterr().err


try:
    import openvino  # noqa: F401

    BENCH_BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
except ImportError:
    BENCH_BACKENDS = ("torch", "onnxruntime")
