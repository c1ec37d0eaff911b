"""Teacher files: nelson / anomalib / prefixed / safetensors / mdss formats, and refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mdss_core.cli import teacher_cmd
from mdss_core.errors import ModelFileError
from mdss_core.rgb.pdn import PDN, conv_indices, init_pdn_
from mdss_core.rgb.teacher import (
    default_teacher,
    load_teacher_file,
    save_teacher_file,
    teacher_or_default,
)


def _random_pdn(size: str = "small", seed: int = 5) -> PDN:
    return init_pdn_(PDN(size), seed, "torch-default")


def _anomalib_keys(state: dict[str, torch.Tensor], size: str) -> dict[str, torch.Tensor]:
    number = {index: n + 1 for n, index in enumerate(conv_indices(size))}
    renamed = {}
    for key, value in state.items():
        index, kind = key.split(".")
        renamed[f"conv{number[int(index)]}.{kind}"] = value
    return renamed


def _same_weights(a: PDN, b: PDN) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_nelson_state_dict_loads(tmp_path: Path) -> None:
    net = _random_pdn()
    path = tmp_path / "teacher_small.pth"
    torch.save(net.state_dict(), path)
    loaded, origin = load_teacher_file(path)
    assert _same_weights(loaded, net)
    assert origin["format"] == "nelson" and origin["size"] == "small"
    assert origin["kind"] == "file" and origin["name"] == "teacher_small.pth"
    assert len(origin["sha256"]) == 64
    json.dumps(origin)


@pytest.mark.parametrize("prefix", ["", "teacher.", "model.pdn."])
def test_anomalib_keys_with_prefix_load(tmp_path: Path, prefix: str) -> None:
    net = _random_pdn(seed=9)
    state = {prefix + k: v for k, v in _anomalib_keys(net.state_dict(), "small").items()}
    path = tmp_path / "pretrained_teacher_small.pth"
    torch.save(state, path)
    loaded, origin = load_teacher_file(path, "small")
    assert origin["format"] == "anomalib"
    assert _same_weights(loaded, net)


def test_medium_is_detected_and_size_request_checked(tmp_path: Path) -> None:
    net = _random_pdn("medium")
    path = tmp_path / "medium.pth"
    torch.save(_anomalib_keys(net.state_dict(), "medium"), path)
    loaded, origin = load_teacher_file(path)
    assert origin["size"] == "medium" and _same_weights(loaded, net)
    with pytest.raises(ModelFileError, match="PDN-medium teacher, not PDN-small"):
        load_teacher_file(path, "small")


def test_full_model_state_dict_picks_the_teacher(tmp_path: Path) -> None:
    teacher, student = _random_pdn(seed=1), _random_pdn(seed=2)
    state = {f"teacher.{k}": v for k, v in _anomalib_keys(teacher.state_dict(), "small").items()}
    state |= {f"student.{k}": v for k, v in _anomalib_keys(student.state_dict(), "small").items()}
    state["quantiles.qa_st"] = torch.tensor(0.5)
    path = tmp_path / "model.pth"
    torch.save({"state_dict": state}, path)
    loaded, _ = load_teacher_file(path)
    assert _same_weights(loaded, teacher)


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    state = _random_pdn().state_dict()
    state["6.weight"] = torch.zeros(256, 256, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ModelFileError) as info:
        load_teacher_file(path)
    message = str(info.value)
    assert "6.weight" in message and "(256, 256, 1, 1)" in message and "(256, 256, 3, 3)" in message
    assert "bad.pth" in message and "\n" not in message


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole_module.pth"
    torch.save(_random_pdn(), path)  # a whole nn.Module needs full unpickling
    with pytest.raises(ModelFileError, match="refusing to unpickle"):
        load_teacher_file(path)


def test_unrelated_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelFileError, match="no PDN teacher weights"):
        load_teacher_file(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_teacher_file(tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="garbage.pth"):
        load_teacher_file(garbage)


def test_plain_safetensors_and_mdss_roundtrip(tmp_path: Path) -> None:
    net = _random_pdn(seed=3)
    plain = tmp_path / "plain.safetensors"
    save_file(_anomalib_keys(net.state_dict(), "small"), str(plain))
    loaded, origin = load_teacher_file(plain)
    assert origin["format"] == "anomalib" and _same_weights(loaded, net)

    mdss_file = save_teacher_file(loaded, origin, tmp_path / "converted.safetensors")
    again, again_origin = load_teacher_file(mdss_file)
    assert again_origin["format"] == "mdss" and _same_weights(again, net)
    assert again_origin["source"]["sha256"] == origin["sha256"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_newer_mdss_teacher_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.safetensors"
    metadata = {"format": "mdss-teacher", "format_version": "99", "origin": "{}"}
    save_file(
        {k: v.contiguous() for k, v in _random_pdn().state_dict().items()},
        str(path),
        metadata=metadata,
    )
    with pytest.raises(ModelFileError, match="version"):
        load_teacher_file(path)


def test_default_teacher_is_deterministic_per_seed() -> None:
    a, origin = default_teacher("small", seed=0)
    b, _ = default_teacher("small", seed=0)
    c, _ = default_teacher("small", seed=1)
    assert origin["kind"] == "default" and json.loads(json.dumps(origin)) == origin
    assert _same_weights(a, b) and not _same_weights(a, c)
    # The random teacher is informative: different inputs give different descriptors.
    with torch.no_grad():
        out = a(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert out.std(dim=(0, 2, 3)).min() > 0
    fallback, fallback_origin = teacher_or_default(None)
    assert fallback_origin["kind"] == "default" and _same_weights(fallback, a)


def test_cli_import_converts_to_mdss(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net = _random_pdn(seed=4)
    source = tmp_path / "teacher_small.pth"
    torch.save(net.state_dict(), source)
    parser = argparse.ArgumentParser()
    teacher_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["teacher", "import", str(source)])
    assert args.func(args) == 0
    converted = tmp_path / "teacher_small.safetensors"
    loaded, origin = load_teacher_file(converted)
    assert origin["format"] == "mdss" and _same_weights(loaded, net)
    assert "PDN-small" in capsys.readouterr().out
