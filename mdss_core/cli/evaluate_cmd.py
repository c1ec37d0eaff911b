"""`mdss evaluate MODEL DATA`: the paper-style I-AUROC / AUPRO table per defect type."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdss_core.cli.progress_bar import ProgressBar
from mdss_core.devices import DEVICE_CHOICES
from mdss_core.rgb.teacher_choice import describe_teacher


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="I-AUROC and AUPRO on a labelled test split")
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("--category")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", type=Path, help="also write the table and per-sample scores here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.export import write_json_atomic
    from mdss_core.io import open_dataset
    from mdss_core.model import MDSSModel

    model = MDSSModel.load(args.model, device=args.device)
    dataset = open_dataset(args.data, category=args.category, split="test")
    result = model.evaluate(dataset, progress=ProgressBar())
    print(f"model '{model.name}', teacher: {describe_teacher(model.teacher_origin)}")
    print(result.table())
    decisions = result.decisions(model.image_threshold)
    print(
        f"at the model's image threshold {decisions['threshold']:.4g}: "
        f"{decisions['defective_flagged']} of {decisions['defective']} defective and "
        f"{decisions['normal_flagged']} of {decisions['normal']} normal test images flagged"
    )
    if args.json:
        record = {"model": model.info(), **result.to_dict(), "decisions": decisions}
        write_json_atomic(args.json, record)
        print(f"wrote {args.json}")
    return 0
