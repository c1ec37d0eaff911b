"""Training checkpoints: saved on cancel and every N steps, resumed at their step, refused for
other data or settings, and the resumed model loads and scores (tiny preset, 64² samples)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mdss_core.checkpoint import (
    Checkpointer,
    CheckpointError,
    _read_metadata,
    checkpoint_path,
    optimizer_state,
    read_info,
    restore_optimizer,
)
from mdss_core.config import MDSSConfig, get_preset
from mdss_core.errors import Cancelled
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel
from mdss_core.progress import Progress

RGB_STEPS, SDF_STEPS = 6, 8  # 8: not the 6 training clouds the patch cutting counts


def _config(**sdf_overrides) -> MDSSConfig:
    config = get_preset("tiny")
    config.rgb = replace(config.rgb, steps=RGB_STEPS)
    config.sdf = replace(config.sdf, steps=SDF_STEPS, **sdf_overrides)
    return config


class Recorder:
    """Progress callback: records (stage, step) and sets the cancel token at one of them."""

    def __init__(self, stop_at: tuple[str, int, int] | None = None) -> None:
        self.cancel = threading.Event()
        self.stop_at = stop_at
        self.steps: list[tuple[str, int]] = []

    def __call__(self, p: Progress) -> None:
        self.steps.append((p.stage, p.step))
        if (p.stage, p.step, p.total) == self.stop_at:
            self.cancel.set()

    def first(self, stage: str) -> int | None:
        return next((step for s, step in self.steps if s == stage), None)


def _fit(dataset, checkpoint: Checkpointer | None, recorder: Recorder, config=None) -> MDSSModel:
    return MDSSModel.fit(
        dataset,
        config or _config(),
        device="cpu",
        progress=recorder,
        cancel=recorder.cancel,
        checkpoint=checkpoint,
    )


def _cancelled_run(dataset, path: Path, stop_at: tuple[str, int, int], config=None) -> None:
    recorder = Recorder(stop_at)
    with pytest.raises(Cancelled):
        _fit(dataset, Checkpointer(path, every=0), recorder, config)


def test_cancel_in_rgb_stage_saves_and_resume_continues_there(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    path = checkpoint_path(tmp_path / "m.mdss")
    assert path.name == "m.mdss.ckpt"
    _cancelled_run(dataset, path, ("rgb", 2, RGB_STEPS))
    info = read_info(path)
    assert info is not None and (info.stage, info.step, info.stage_total) == ("rgb", 2, RGB_STEPS)
    assert (info.done, info.total) == (2, RGB_STEPS + SDF_STEPS)

    resuming = Checkpointer(path, every=0, resume=True)
    recorder = Recorder()
    model = _fit(dataset, resuming, recorder)
    rgb_steps = [step for stage, step in recorder.steps if stage == "rgb"]
    assert rgb_steps == list(range(3, RGB_STEPS + 1))  # continues at step k + 1, ends at n
    assert recorder.first("geometry") is not None
    assert model.training["resumed_at_step"] == 2

    # Same seed and data on CPU: the resumed run ends where an uninterrupted one does.
    straight = _fit(dataset, None, Recorder())
    for name, tensor in straight.rgb.student.state_dict().items():
        torch.testing.assert_close(model.rgb.student.state_dict()[name], tensor)


def test_resumed_optimizer_holds_the_saved_step_count(tiny_dataset, tmp_path):
    path = tmp_path / "m.mdss.ckpt"
    _cancelled_run(open_dataset(tiny_dataset), path, ("rgb", 4, RGB_STEPS))
    resuming = Checkpointer(path, resume=True)
    record = _read_metadata(path)
    assert record is not None
    resuming.begin(record["fingerprint"], record["totals"])
    state = resuming.resumed("rgb")
    assert state is not None and state.step == 4
    steps = {k: float(v) for k, v in state.tensors.items() if k.endswith(".step")}
    assert steps and set(steps.values()) == {4.0}  # Adam's own step count, per parameter
    assert len(state.tensors["order"]) < 6  # the rest of the epoch's sample order


def test_cancel_in_geometry_stage_keeps_the_trained_student(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    path = tmp_path / "m.mdss.ckpt"
    _cancelled_run(dataset, path, ("geometry", 3, SDF_STEPS))
    info = read_info(path)
    assert info is not None and (info.stage, info.step) == ("geometry", 3)
    assert info.done == RGB_STEPS + 3

    recorder = Recorder()
    model = _fit(dataset, Checkpointer(path, resume=True), recorder)
    assert recorder.first("rgb") is None  # the finished student is restored, not retrained
    assert [s for st, s in recorder.steps if st == "geometry"][-SDF_STEPS + 3 :] == [4, 5, 6, 7, 8]
    saved = model.save(tmp_path / "m.mdss")
    loaded = MDSSModel.load(saved, device="cpu")
    ref = dataset.select(split="test").refs[0]
    prediction = loaded.predict(ref.load())
    assert np.isfinite(prediction.score_fused) and np.isfinite(prediction.fused_map).all()


def test_cancel_while_cutting_patches_keeps_the_finished_student(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    path = tmp_path / "m.mdss.ckpt"
    clouds = len(dataset.select(split="train"))
    _cancelled_run(dataset, path, ("geometry", 2, clouds))  # inside build_patch_set
    info = read_info(path)
    assert info is not None and (info.stage, info.step, info.done) == ("geometry", 0, RGB_STEPS)
    recorder = Recorder()
    _fit(dataset, Checkpointer(path, resume=True), recorder)
    assert recorder.first("rgb") is None and ("geometry", SDF_STEPS) in recorder.steps


def test_periodic_checkpoints_and_a_completed_boundary(tiny_dataset, tmp_path):
    path = tmp_path / "m.mdss.ckpt"
    checkpoint = Checkpointer(path, every=2)
    model = _fit(open_dataset(tiny_dataset), checkpoint, Recorder())
    # rgb after 2 and 4 of 6 steps, geometry after 2, 4, 6 of 8 (not after the last step)
    assert checkpoint.saves == 5 and model is not None
    info = read_info(path)
    assert info is not None and (info.stage, info.step) == ("geometry", 6)
    checkpoint.remove()
    assert not path.exists() and read_info(path) is None


def test_other_data_or_settings_are_refused(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    path = tmp_path / "m.mdss.ckpt"
    _cancelled_run(dataset, path, ("rgb", 2, RGB_STEPS))
    other_steps = _config()
    other_steps.rgb = replace(other_steps.rgb, steps=RGB_STEPS + 1)
    with pytest.raises(CheckpointError, match="other data or settings") as refused:
        _fit(dataset, Checkpointer(path, resume=True), Recorder(), other_steps)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    fewer = [r for r in dataset if r.key != dataset.select(split="train").refs[0].key]
    with pytest.raises(CheckpointError, match="other data or settings"):
        _fit(fewer, Checkpointer(path, resume=True), Recorder())
    assert read_info(path) is not None  # a refusal leaves the checkpoint as it was


def test_missing_or_foreign_checkpoint_is_one_line(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        _fit(dataset, Checkpointer(tmp_path / "none.ckpt", resume=True), Recorder())
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    assert read_info(junk) is None
    with pytest.raises(CheckpointError, match="damaged"):
        _fit(dataset, Checkpointer(junk, resume=True), Recorder())


def test_optimizer_state_round_trip():
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.8, 0.9))
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.ones(4, 3)).pow(2).sum().backward()
        optimizer.step()
    tensors, meta = optimizer_state(optimizer)
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1.0)
    restore_optimizer(fresh, tensors, meta)
    assert fresh.param_groups[0]["betas"] == (0.8, 0.9) and fresh.param_groups[0]["lr"] == 1e-2
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            torch.testing.assert_close(fresh.state_dict()["state"][index][name], value)


def _cli(args: list[str]) -> int:
    from mdss_core.cli.main import main

    return main(args)


def test_cli_resume_refusal_and_cleanup(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "ring.mdss"
    ckpt = checkpoint_path(out)
    _cancelled_run(open_dataset(tiny_dataset), ckpt, ("geometry", 3, SDF_STEPS))
    base = [str(tiny_dataset), "--out", str(out), "--preset", "tiny", "--device", "cpu"]
    steps = ["--rgb-steps", str(RGB_STEPS), "--sdf-steps", str(SDF_STEPS)]

    assert _cli(["train", *base, *steps]) == 2  # a checkpoint is there: say how to go on
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(ckpt) in line and "--resume" in line and "--force" in line

    assert _cli(["train", *base, "--resume", "--rgb-steps", "7", "--sdf-steps", "8"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mdss: error: {ckpt}: checkpoint was made for other data")
    assert read_info(ckpt) is not None and not out.exists()

    assert _cli(["train", *base, *steps, "--resume"]) == 0
    assert f"resumed at step {RGB_STEPS + 3}" in capsys.readouterr().out
    assert out.is_file() and not ckpt.exists()  # a finished training removes its checkpoint
    MDSSModel.load(out, device="cpu")


def test_cancel_while_keeping_the_normal_cell_memory_resumes_and_keeps_it(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    config = _config()
    config.rgb = replace(config.rgb, normals=True, normals_memory=16)
    path = tmp_path / "m.mdss.ckpt"
    # Stopped once the student is trained, while its memory is built: the student is kept.
    cancel = threading.Event()
    stop = lambda p: p.stage == "rgb-memory" and cancel.set()  # noqa: E731
    with pytest.raises(Cancelled):
        MDSSModel.fit(
            dataset, config, device="cpu", progress=stop, cancel=cancel,
            checkpoint=Checkpointer(path, every=0),
        )  # fmt: skip
    assert read_info(path) is not None
    resumed = Recorder()
    model = _fit(dataset, Checkpointer(path, every=0, resume=True), resumed, config)
    assert resumed.first("rgb") is None  # not trained again, only the memory is built
    assert model.rgb.memory.shape[0] == 16 and resumed.first("rgb-memory") is not None
    # Stopped in the 3D stage, the restored student comes back with its memory.
    _cancelled_run(dataset, tmp_path / "g.mdss.ckpt", ("geometry", 3, SDF_STEPS), config)
    again = Recorder()
    restored = _fit(dataset, Checkpointer(tmp_path / "g.mdss.ckpt", resume=True), again, config)
    assert again.first("rgb") is None and again.first("rgb-memory") is None
    torch.testing.assert_close(restored.rgb.memory, model.rgb.memory)
