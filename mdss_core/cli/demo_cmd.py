"""`mdss demo build`: (re)build the shipped demo model from the deterministic demo category."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdss_core.cli.progress_bar import ProgressBar


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="built-in demo data and model")
    p.add_argument("action", choices=("data", "build"), help="data: generate; build: train model")
    p.add_argument("--out", type=Path, help="model path (default: resources/demo/)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.demo import DEMO_MODEL_NAME, ensure_demo_dataset

    root = ensure_demo_dataset(progress=ProgressBar())
    print(f"demo data: {root}")
    if args.action == "data":
        return 0
    from mdss_core.io import open_dataset
    from mdss_core.model import MDSSModel
    from mdss_resources import resource_path

    out = args.out or resource_path("demo", DEMO_MODEL_NAME)
    model = MDSSModel.fit(open_dataset(root), "fast", device=args.device, progress=ProgressBar())
    model.name = "demo ring"
    model.save(out, half=True)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {model.training['seconds']} s")
    print(model.evaluate(open_dataset(root, split="test"), progress=ProgressBar()).table())
    return 0
