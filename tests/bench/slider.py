"""UI-thread time per threshold step, with a folder of scored samples loaded in the inspector.

    mdss synth --out /tmp/s300 --categories ring --train 10 --val 4 --test 300 --size 128
    QT_QPA_PLATFORM=offscreen python tests/bench/slider.py /tmp/s300/ring \\
        --model resources/demo/demo_ring.mdss --cache /tmp/s300-scores

Scores the test split once with the model (``--cache`` keeps the predictions for the next
run), replays them through the real window's scoring path, shows the highest-scoring sample,
then moves the pixel-threshold slider over ``--steps`` positions at ``--hz`` and the image
threshold line likewise. Every event the UI thread handles is timed (``QApplication.notify``),
plus the slider call itself. Prints, per step, the UI thread's busy milliseconds (median and
95th percentile), the longest single block, and how long after the last step the regions at
its threshold were on screen. A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from ui_timing import TimedApplication  # this folder: scripts run as files


def drag(
    app: TimedApplication, move: Callable[[float], None], values: np.ndarray, hz: float
) -> dict[str, float]:
    """Call ``move(value)`` for each value at ``hz``; the UI thread's busy ms per step."""
    per_step, longest = [], 0.0
    for value in values:
        app.blocks.clear()
        app.recording = True
        start = time.perf_counter()
        move(float(value))
        direct = 1e3 * (time.perf_counter() - start)
        deadline = start + 1.0 / hz
        while time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.001)
        app.recording = False
        per_step.append(direct + sum(app.blocks))
        longest = max([longest, direct, *app.blocks])
    ordered = sorted(per_step)
    return {
        "steps": len(per_step),
        "median_ms": statistics.median(per_step),
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
        "max_step_ms": ordered[-1],
        "longest_block_ms": longest,
    }


def wait_until(app: TimedApplication, ready: Callable[[], bool], timeout: float = 600.0) -> float:
    """Process events until ``ready()``; seconds waited."""
    start = time.perf_counter()
    while not ready():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.002)
    return time.perf_counter() - start


def print_result(name: str, result: dict[str, float]) -> None:
    print(
        f"{name:<22} {result['steps']:>4} steps   UI-thread ms per step: median "
        f"{result['median_ms']:6.2f}  p95 {result['p95_ms']:6.2f}  max {result['max_step_ms']:6.2f}"
        f"   longest single block {result['longest_block_ms']:6.2f} ms"
    )


# ----- the predictions ---------------------------------------------------------------------------
MAPS = ("rgb_map", "rgb_map_aligned", "map_3d", "point_map", "object_mask", "fused_map")


def cached_predictions(refs: list, model_path: Path, cache: Path) -> Iterator[tuple]:
    """``(ref, arrays)`` per test sample: scored by the model once, then read from ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [r for r in refs if not (cache / _file_name(r)).is_file()]
    if missing:
        from mdss_core.model import MDSSModel

        model = MDSSModel.load(model_path, device="cpu")
        print(f"scoring {len(missing)} samples once (kept in {cache})", file=sys.stderr)
        for ref, p in model.predict_many(missing):
            scores = [p.score_rgb, p.score_3d, p.score_fused]
            np.savez(cache / _file_name(ref), scores=scores, **{m: getattr(p, m) for m in MAPS})
    for ref in refs:
        with np.load(cache / _file_name(ref)) as stored:
            yield ref, {name: stored[name] for name in stored.files}


def _file_name(ref) -> str:
    return ref.key.replace("/", "__") + ".npz"


class ReplayModel:
    """The model's thresholds with predictions read from the cache (the window's Model API)."""

    def __init__(self, model_path: Path, stored: dict) -> None:
        from mdss_core.model_file import read_model_file

        record = read_model_file(model_path)
        self.name, self.device = "replay", "cpu"
        self.image_threshold = record.calibration.image_threshold
        self.pixel_threshold = record.calibration.pixel_threshold
        self._stored = stored

    def info(self) -> dict:
        return {"name": self.name}

    def score_many(self, refs, progress=None, cancel=None, batch_size=1, workers=0):
        from mdss_core.api import Prediction, Scored, pixel_area_mm2
        from mdss_core.regions import find_regions

        for ref in refs:
            arrays = self._stored[ref.key]
            area = pixel_area_mm2(ref.load().xyz, arrays["object_mask"])
            regions = find_regions(
                arrays["fused_map"], arrays["rgb_map_aligned"], arrays["map_3d"],
                self.pixel_threshold, area,
            )  # fmt: skip
            maps = {m: arrays[m] for m in MAPS}
            scores = arrays["scores"]
            yield Scored(
                ref, Prediction(ref.key, **maps, score_rgb=float(scores[0]),
                                score_3d=float(scores[1]), score_fused=float(scores[2]),
                                image_threshold=self.image_threshold, regions=regions),
            )  # fmt: skip


# ----- the run -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="category folder with a test split")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="folder for the predictions")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--hz", type=float, default=30.0, help="slider positions per second")
    args = parser.parse_args()

    from mdss_app.main_window import MainWindow
    from mdss_app.style import apply_style
    from mdss_core.api import open_folder

    app = TimedApplication([sys.argv[0]])
    apply_style(app)
    refs = open_folder(args.data).select(split="test").refs
    stored = {ref.key: arrays for ref, arrays in cached_predictions(refs, args.model, args.cache)}
    window = MainWindow(interactive=False)
    window.show()
    session, commands = window.session, window.commands
    commands.open_folder(args.data)
    wait_until(app, lambda: session.dataset is not None)
    commands.use_model(ReplayModel(args.model, stored), str(args.model), "CPU")
    wait_until(app, lambda: not commands.inference_running and not commands.metrics_running)
    window.sample_list.select_key(session.top_sample())
    wait_until(app, lambda: session.view.regions is not None)
    view = session.view
    print(
        f"{len(session.predictions)} scored samples loaded; showing {view.key} {view.sample.shape}"
    )

    pixel = session.thresholds.pixel
    panel = window.threshold_panel
    positions = np.linspace(0.3, 1.2, args.steps) * pixel / panel._pixel_max * 1000
    result = drag(app, lambda v: panel.pixel_slider.setValue(round(v)), positions, args.hz)
    print_result("pixel threshold slider", result)
    start = time.perf_counter()  # one more step: how long until its regions are on screen
    panel.pixel_slider.setValue(round(positions[0]))
    new = session.thresholds.pixel
    wait_until(app, lambda: session.view.regions.threshold == new)
    latency = 1e3 * (time.perf_counter() - start)
    print(f"{'':<22} regions of a step on screen {latency:.1f} ms after it")
    image = session.thresholds.image
    values = np.linspace(0.5, 2.0, args.steps) * image
    result = drag(app, panel.image_line.setValue, values, args.hz)
    print_result("image threshold line", result)
    window.close()


if __name__ == "__main__":
    main()
