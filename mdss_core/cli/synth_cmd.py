"""``mdss synth``: write a synthetic MVTec 3D-AD-style dataset for demos and tests."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mdss_core.cli.arguments import non_negative_int
from mdss_core.cli.progress_bar import ProgressBar
from mdss_core.synth import CATEGORIES, category_defects, generate_dataset, split_test_counts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic dataset in the MVTec 3D-AD layout",
        description="Write synthetic categories (RGB PNG + xyz TIFF + gt PNG) with planted "
        "colour and geometry defects, in the MVTec 3D-AD folder layout.",
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset root folder")
    parser.add_argument(
        "--categories",
        nargs="+",
        choices=CATEGORIES,
        default=list(CATEGORIES),
        metavar="NAME",
        help=f"categories to write (default: all of {', '.join(CATEGORIES)})",
    )
    parser.add_argument(
        "--train", type=non_negative_int, default=60, help="training samples (default 60)"
    )
    parser.add_argument(
        "--val", type=non_negative_int, default=10, help="validation samples (default 10)"
    )
    parser.add_argument(
        "--test",
        type=non_negative_int,
        default=40,
        help="test samples over good + each defect (default 40)",
    )
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing non-empty category folders"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    roots = generate_dataset(
        args.out,
        categories=args.categories,
        n_train=args.train,
        n_val=args.val,
        n_test=args.test,
        size=args.size,
        seed=args.seed,
        progress=ProgressBar(),
        overwrite=args.overwrite,
    )
    for root in roots:
        counts = split_test_counts(args.test, category_defects(root.name))
        tests = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        print(f"wrote {root}: train {args.train}, validation {args.val}, test ({tests})")
    seconds = time.monotonic() - started
    print(f"{len(roots)} categories, {args.size}x{args.size} px, in {seconds:.1f} s")
    return 0
