"""`mdss bench [--quick] [--json FILE] [--device …]`: speed, memory and scaling table."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdss_core.cli.arguments import non_negative_int
from mdss_core.cli.progress_bar import ProgressBar
from mdss_core.devices import DEVICE_CHOICES
from mdss_core.errors import DataError
from mdss_core.export import write_json_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure latency, memory and scaling against a memory-bank peer"
    )
    p.add_argument("--quick", action="store_true", help="small sizes (128², n_train 10/20/40)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    p.add_argument(
        "--workers",
        type=non_negative_int,
        help="processes preparing samples for the pipelined rate (default: 0 on CPU, ≤ 8 on GPU)",
    )
    p.add_argument(
        "--models",
        type=Path,
        nargs="+",
        help="compare these trained models (any detector) on --data instead of the synthetic run",
    )
    p.add_argument("--data", type=Path, help="samples for --models (a folder or category)")
    p.add_argument("--samples", type=int, default=8, help="samples for --models")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds for --models")
    p.add_argument(
        "--backends",
        type=_backend_list,
        default=["torch"],
        help="for --models: comma-separated torch, onnxruntime, openvino[:fp16|bf16]",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = _compare(args) if args.models else _synthetic(args)
    return _write_json(args, result)


def _compare(args: argparse.Namespace) -> dict:
    from mdss_core.bench.models import compare_models, format_models
    from mdss_core.devices import resolve_device

    if args.data is None:
        raise DataError("--models", "needs --data: the samples to time the models on")
    result = compare_models(
        args.models, args.data, args.samples, args.rounds, resolve_device(args.device),
        ProgressBar(), backends=args.backends,
    )  # fmt: skip
    print(format_models(result))
    return result


def _backend_list(text: str) -> list[str]:
    from mdss_core.backends.runtime import BACKENDS, PRECISIONS

    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        name, _, precision = item.partition(":")
        if name not in BACKENDS or (precision and precision not in PRECISIONS):
            raise argparse.ArgumentTypeError(f"unknown backend '{item}'")
    return items


def _synthetic(args: argparse.Namespace) -> dict:
    from mdss_core.bench import BenchSettings, run_bench
    from mdss_core.bench.table import format_table

    settings = BenchSettings.quick() if args.quick else BenchSettings()
    result = run_bench(
        settings,
        device=args.device,
        threads=args.threads,
        progress=ProgressBar(),
        workers=args.workers,
    )
    print(format_table(result))
    return result


def _write_json(args: argparse.Namespace, result: dict) -> int:
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.json, result)
        except OSError as exc:
            raise DataError(args.json, f"cannot write results ({exc.strerror})") from None
        print(f"results written to {args.json}")
    return 0
