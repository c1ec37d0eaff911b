"""`mdss calibrate MODEL DATA --out OUT`: new fusion statistics and default thresholds from
normal samples (a validation split, or a folder of good parts from the line), same networks."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdss_core.atomic import ensure_writable_folder
from mdss_core.cli.progress_bar import ProgressBar
from mdss_core.devices import DEVICE_CHOICES
from mdss_core.errors import MDSSError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate", help="recompute a model's thresholds from normal samples"
    )
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path, help="normal samples (e.g. the validation split)")
    p.add_argument("--category")
    p.add_argument(
        "--split", default="validation", help="split of DATA to use (default: validation)"
    )
    p.add_argument("--quantile", type=float, help="of the normal scores (default: the model's)")
    p.add_argument("--out", type=Path, required=True, help="model file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing model file")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.io import open_dataset
    from mdss_core.model import MDSSModel

    if args.out.exists() and not args.force:
        raise MDSSError(f"{args.out}: already exists (use --force to replace it)")
    if args.quantile is not None and not 0.0 < args.quantile <= 1.0:
        raise MDSSError(f"--quantile must lie in (0, 1], not {args.quantile}")
    ensure_writable_folder(args.out.parent)
    model = MDSSModel.load(args.model, device=args.device)
    dataset = open_dataset(args.data, category=args.category, split=args.split or None)
    before = (model.image_threshold, model.pixel_threshold)
    model.recalibrate(dataset, args.quantile, progress=ProgressBar())
    print(
        f"thresholds: image {before[0]:.5g} → {model.image_threshold:.5g}, "
        f"pixel {before[1]:.5g} → {model.pixel_threshold:.5g} "
        f"(quantile {model.config.threshold_quantile} of "
        f"{model.calibration.n_samples} normal samples)"
    )
    path = model.save(args.out)
    print(f"wrote {path}")
    return 0
