"""`mdss evaluate MODEL DATA`: the paper-style I-AUROC / AUPRO table per defect type."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdss_core.backends.runtime import BACKENDS, PRECISIONS
from mdss_core.cli.progress_bar import ProgressBar
from mdss_core.devices import DEVICE_CHOICES
from mdss_core.rgb.teacher_choice import describe_teacher


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="I-AUROC and AUPRO on a labelled test split")
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("--category")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="what runs the networks (default: torch; an export folder: its own runtime)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="inference precision hint (openvino only; a CPU without native support keeps fp32)",
    )
    p.add_argument("--json", type=Path, help="also write the table and per-sample scores here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.backends.load import load_on_backend
    from mdss_core.export import write_json_atomic
    from mdss_core.io import open_dataset

    model = load_on_backend(args.model, args.backend, args.device, args.precision)
    dataset = open_dataset(args.data, category=args.category, split="test")
    result = model.evaluate(dataset, progress=ProgressBar())
    print(f"model '{model.name}', teacher: {describe_teacher(model.teacher_origin)}")
    backend = getattr(model.net, "backend", "torch")
    if backend != "torch":
        print(f"backend: {backend} ({_precision_note(model, args.precision)})")
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


def _precision_note(model: object, asked: str) -> str:
    """The precision asked for, and what the runtime compiled where that differs."""
    sessions = getattr(model.net, "sessions", {})
    used = {getattr(s, "effective_precision", None) for s in sessions.values()} - {None}
    return f"{asked}, runtime uses {'/'.join(sorted(used))}" if used else asked
