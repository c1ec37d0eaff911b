"""`mdss train-all DATA --out DIR [--ray [ADDRESS]]`: one model per category of a dataset
root, ``DIR/<category>.mdss``; a category that fails is named in one line, the others go on."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdss_core.cli.progress_bar import ProgressBar, end_open_line
from mdss_core.config import DEFAULT_METHOD, DEFAULT_PRESET, METHODS, PRESETS
from mdss_core.devices import DEVICE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-all", help="train one model per category of a dataset root (optionally on Ray)"
    )
    p.add_argument("data", type=Path, help="dataset root holding category folders")
    p.add_argument("--out", type=Path, required=True, help="folder for the <category>.mdss files")
    p.add_argument(
        "--category",
        action="append",
        default=[],
        help="only this category (repeatable; default: all of them)",
    )
    p.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS))
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted({*PRESETS, *METHODS["crd"]}))
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="train again categories already trained")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="one Ray task per category: a local Ray instance, or the cluster at ADDRESS "
        "('auto': the one this machine belongs to); needs mdss[cluster]",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.cluster.ray_env import import_ray
    from mdss_core.cluster.train_all import (
        CategoryOutcome,
        TrainSettings,
        categories_to_train,
        train_all,
    )
    from mdss_core.errors import MDSSError

    if args.ray is not None:
        import_ray()  # the missing extra is named before any work
    names = categories_to_train(args.data, args.category)
    where = "one after another" if args.ray is None else f"on Ray ({args.ray or 'local'})"
    print(f"training {len(names)} categories ({', '.join(names)}) {where}")

    def show(outcome: CategoryOutcome) -> None:
        end_open_line()
        print(outcome.line, file=sys.stderr if outcome.error else sys.stdout, flush=True)

    settings = TrainSettings(args.preset, args.method, args.seed, args.device)
    outcomes = train_all(
        args.data,
        args.out,
        settings,
        only=args.category,
        force=args.force,
        ray_address=args.ray,
        on_outcome=show,
        progress=ProgressBar() if args.ray is None else None,
    )
    failed = [o.category for o in outcomes if o.error is not None]
    trained = sum(o.error is None and not o.skipped for o in outcomes)
    print(
        f"{trained} trained, {len(outcomes) - trained - len(failed)} already there, "
        f"{len(failed)} failed; models in {args.out}"
    )
    if failed:
        raise MDSSError(f"{len(failed)} of {len(outcomes)} categories failed: {', '.join(failed)}")
    return 0
