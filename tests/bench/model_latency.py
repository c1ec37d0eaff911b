"""Prediction time per sample of several model files on the same samples, alternated (A/B).

    python tests/bench/model_latency.py backbone.mdss distilled.mdss \\
        --data /data/cable_gland/test --samples 8 --rounds 5

Loads every model, reads ``--samples`` samples once, warms each model up on one of them, then
runs ``--rounds`` rounds; each round predicts every sample with every model, the models' order
alternating between rounds so drift of the machine (other load, clocks) hits all alike.
Prints per model the median / min / max milliseconds per sample and the median of each stage
(``Prediction.timings_ms``). A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", required=True, type=Path, help="folder of samples")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    models = {path.name: MDSSModel.load(path, device="cpu") for path in args.models}
    every = list(open_dataset(args.data))
    refs = every[:: max(1, len(every) // args.samples)][: args.samples]  # spread over defects
    samples = [ref.load() for ref in refs]
    for model in models.values():
        model.predict(samples[0])  # warm-up: packing, allocator, first-call costs
    totals: dict[str, list[float]] = {name: [] for name in models}
    stages: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    order = list(models)
    for round_index in range(args.rounds):
        for name in order if round_index % 2 == 0 else order[::-1]:
            for sample in samples:
                start = time.perf_counter()
                prediction = models[name].predict(sample)
                totals[name].append(1e3 * (time.perf_counter() - start))
                for stage, ms in prediction.timings_ms.items():
                    stages[name].setdefault(stage, []).append(ms)
    print(f"{len(samples)} samples × {args.rounds} rounds, CPU, ms per sample")
    for name, values in totals.items():
        parts = " ".join(f"{k} {statistics.median(v):.0f}" for k, v in stages[name].items())
        print(
            f"{name:<28} median {statistics.median(values):7.0f}  min {min(values):7.0f}  "
            f"max {max(values):7.0f}   stages (median): {parts}"
        )


if __name__ == "__main__":
    main()
