"""Training throughput of the GUI against the CLI: steps per second of each training stage.

    mdss synth --out /tmp/tt --categories ring --train 20 --val 4 --test 4 --size 256
    xvfb-run -a -s "-screen 0 1920x1080x24" python tests/bench/train_throughput.py /tmp/tt/ring \\
        --preset fast --rounds 3

Each round trains the same preset on the same data twice, each time in a fresh process, the
two paths alternated (CLI, GUI, CLI, GUI, …) so that a machine getting busier or cooler
affects both alike:

* ``cli``: ``mdss train`` as a user runs it (its text progress bar);
* ``gui``: the inspector's window with the folder open, Model → Train… with the dialog's live
  progress, ETA and loss plot, the status bar's progress, the training on the task thread.

The engine's progress callback is timed in both (on the thread that trains), and a stage's
rate is (last step − first step) / (time between them): preparation, the teacher pass and
saving are not counted. Prints steps/s per stage (RGB student, 3D network) with min / median
/ max over the rounds, the GUI/CLI ratio of the medians, and the torch thread count each path
trained with. ``--rgb-steps`` / ``--sdf-steps`` shorten a trial run. A benchmark, not a test:
it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

STAGES = {"rgb": "RGB student", "geometry": "3D network"}


# ----------------------------------------------------------------------------- children
class StepClock:
    """Times each training step report (on whatever thread calls it) and notes the thread's
    torch thread count at the first report."""

    def __init__(self, totals: dict[str, int]) -> None:
        self.totals = totals
        self.times: dict[str, list[tuple[int, float]]] = {stage: [] for stage in totals}
        self.torch_threads = 0
        self.thread_name = ""

    def note(self, p) -> None:
        if not self.torch_threads:
            import torch

            self.torch_threads = torch.get_num_threads()
            self.thread_name = threading.current_thread().name
        if p.stage in self.totals and p.total == self.totals[p.stage]:
            self.times[p.stage].append((p.step, time.perf_counter()))

    def result(self, path: str, seconds: float) -> dict:
        rates = {}
        for stage, marks in self.times.items():
            if len(marks) >= 2 and marks[-1][1] > marks[0][1]:
                (s0, t0), (s1, t1) = marks[0], marks[-1]
                rates[stage] = (s1 - s0) / (t1 - t0)
        return {
            "path": path,
            "rates": rates,
            "torch_threads": self.torch_threads,
            "thread": self.thread_name,
            "seconds": seconds,
        }


def _config(args: argparse.Namespace):
    from mdss_core.config import get_preset

    config = get_preset(args.preset).with_seed(0)
    if args.rgb_steps:
        config.rgb = replace(config.rgb, steps=args.rgb_steps)
    if args.sdf_steps:
        config.sdf = replace(config.sdf, steps=args.sdf_steps)
    return config


def child_cli(args: argparse.Namespace, out: Path) -> dict:
    from mdss_core.cli import train_cmd
    from mdss_core.cli.main import main

    config = _config(args)
    clock = StepClock({"rgb": config.rgb.steps, "geometry": config.sdf.steps})

    class TimedBar(train_cmd.ProgressBar):
        def __call__(self, p) -> None:
            clock.note(p)
            super().__call__(p)

    train_cmd.ProgressBar = TimedBar  # the CLI's own bar, timed
    argv = ["train", str(args.data), "--out", str(out), "--preset", args.preset, "--force"]
    argv += ["--device", args.device]
    if args.rgb_steps:
        argv += ["--rgb-steps", str(args.rgb_steps)]
    if args.sdf_steps:
        argv += ["--sdf-steps", str(args.sdf_steps)]
    start = time.perf_counter()
    code = main(argv)
    if code != 0:
        raise SystemExit(f"mdss train failed with exit code {code}")
    return clock.result("cli", time.perf_counter() - start)


def child_gui(args: argparse.Namespace, out: Path) -> dict:
    from PySide6.QtCore import QEventLoop, QSettings
    from ui_timing import TimedApplication  # this folder: scripts run as files

    from mdss_app import workers
    from mdss_app.main_window import MainWindow
    from mdss_app.settings import AppSettings
    from mdss_app.style import apply_style
    from mdss_core.config import PRESETS

    config = _config(args)
    PRESETS[args.preset] = lambda: config  # the dialog picks presets by name
    clock = StepClock({"rgb": config.rgb.steps, "geometry": config.sdf.steps})
    engine_callback = workers._Worker._progress

    def timed(self, p) -> None:  # the callback the engine calls on the task thread
        clock.note(p)
        engine_callback(self, p)

    workers._Worker._progress = timed
    app = TimedApplication([])
    apply_style(app)
    settings = AppSettings(QSettings(str(out.with_suffix(".ini")), QSettings.Format.IniFormat))
    window = MainWindow(settings=settings, enable_vtk=bool(os.environ.get("DISPLAY")))
    window.resize(1500, 950)
    window.show()
    loop = QEventLoop()
    window.commands.dataset_loaded.connect(loop.quit)
    window.commands.open_folder(args.data)
    loop.exec()  # like app.exec(): the UI thread sleeps until an event comes
    dialog = window.commands.show_train_dialog()
    dialog.folder_edit.setText(str(args.data))
    dialog._folder_changed()
    dialog.preset_combo.setCurrentIndex(dialog.preset_combo.findData(args.preset))
    dialog.device_combo.setCurrentIndex(max(0, dialog.device_combo.findData(args.device)))
    dialog.output_edit.setText(str(out))
    app.recording = True
    start = time.perf_counter()
    task = dialog.start_training()
    if task is None:
        raise SystemExit("the dialog refused to train")
    task.finished.connect(loop.quit)
    loop.exec()
    seconds = time.perf_counter() - start
    app.recording = False
    busy = sum(app.blocks) / 1e3
    if task.outcome != "done":
        raise SystemExit(f"GUI training {task.outcome}: {task.error}")
    window.commands.cancel_scoring()  # the re-scoring that follows is not training
    window.commands.tasks.shutdown()
    return {**clock.result("gui", seconds), "ui_busy_s": busy}


# ----------------------------------------------------------------------------- parent
def run_child(path: str, args: argparse.Namespace, folder: Path) -> dict:
    result = folder / f"{path}.json"
    cmd = [sys.executable, __file__, str(args.data), "--child", path, "--result", str(result)]
    cmd += ["--preset", args.preset, "--device", args.device]
    cmd += ["--rgb-steps", str(args.rgb_steps or 0), "--sdf-steps", str(args.sdf_steps or 0)]
    completed = subprocess.run(cmd, capture_output=True, text=True)
    if completed.returncode != 0 or not result.exists():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"{path} run failed:\n" + "\n".join(tail))
    return json.loads(result.read_text())


def summary(results: list[dict]) -> None:
    print(f"\n{'stage':<12} {'path':<4} {'min':>8} {'median':>8} {'max':>8}  steps/s")
    medians: dict[tuple[str, str], float] = {}
    for stage, name in STAGES.items():
        for path in ("cli", "gui"):
            rates = [
                r["rates"][stage] for r in results if r["path"] == path and stage in r["rates"]
            ]
            if not rates:
                continue
            medians[stage, path] = statistics.median(rates)
            print(
                f"{name:<12} {path:<4} {min(rates):8.2f} {medians[stage, path]:8.2f} "
                f"{max(rates):8.2f}  ({len(rates)} runs)"
            )
        if (stage, "cli") in medians and (stage, "gui") in medians:
            ratio = medians[stage, "gui"] / medians[stage, "cli"]
            print(f"{name:<12} GUI/CLI median ratio {ratio:.3f} ({100 * (ratio - 1):+.1f} %)")
    for path in ("cli", "gui"):
        runs = [r for r in results if r["path"] == path]
        threads = sorted({r["torch_threads"] for r in runs})
        where = sorted({r["thread"] for r in runs})
        seconds = statistics.median(r["seconds"] for r in runs)
        busy = [r["ui_busy_s"] / r["seconds"] for r in runs if "ui_busy_s" in r]
        ui = f"; UI thread busy {100 * statistics.median(busy):.1f} % of it" if busy else ""
        print(
            f"{path}: torch threads {threads} on thread {where}; "
            f"median wall {seconds:.1f} s per training{ui}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="category folder (train/validation/test)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="trainings per path (≥ 3)")
    parser.add_argument("--rgb-steps", type=int, default=0, help="override the preset's")
    parser.add_argument("--sdf-steps", type=int, default=0, help="override the preset's")
    parser.add_argument("--child", choices=("cli", "gui"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.mdss"
            run = child_cli if args.child == "cli" else child_gui
            args.result.write_text(json.dumps(run(args, out)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for path in ("cli", "gui"):
                result = run_child(path, args, Path(tmp))
                rates = ", ".join(f"{STAGES[s]} {v:.2f}" for s, v in result["rates"].items())
                print(f"round {round_ + 1} {path}: {rates} steps/s", flush=True)
                results.append(result)
    summary(results)


if __name__ == "__main__":
    main()
