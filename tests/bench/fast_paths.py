"""Do the CPU fast paths pay? Each branch of the demo model, fast paths on and off in alternation.

    python tests/bench/fast_paths.py [--pairs 20] [--threads N]

Prints the median milliseconds per sample of each branch with the switch on and off, and the
median of the paired differences (alternation puts both sides under the same machine load).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mdss_core import fast_paths
from mdss_core.demo import demo_model_path, ensure_demo_dataset
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel
from mdss_core.preprocess.pipeline import prepare


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = MDSSModel.load(demo_model_path(), device="cpu")
    ref = open_dataset(ensure_demo_dataset(), split="test")[0]
    prepared = prepare(ref.load(), model.config.preprocess)
    net = model.net
    patches = net.patch_settings.cut(prepared.points)
    branches = {
        "RGB branch": lambda: net.rgb_maps([prepared]),
        "3D branch": lambda: net.point_grids([prepared], [patches]),
    }
    threads = torch.get_num_threads()
    print(f"demo model, sample {ref.key}, {args.pairs} alternated pairs, {threads} threads")
    for name, run in branches.items():
        run()  # packs the weights (the first call after loading a model does)
        with fast_paths.switched(False):
            run()
        on, off = [], []
        for _ in range(args.pairs):
            on.append(timed(run))
            with fast_paths.switched(False):
                off.append(timed(run))
        gain = statistics.median(b - a for a, b in zip(on, off, strict=True))
        print(
            f"{name:<12} fast {statistics.median(on):7.1f} ms   plain {statistics.median(off):7.1f}"
            f" ms   median paired gain {gain:6.1f} ms"
        )


if __name__ == "__main__":
    main()
