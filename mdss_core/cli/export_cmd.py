"""`mdss export MODEL --format onnx|openvino --out DIR`: a deployment folder for runtimes
without the training stack (see ``docs/deployment.md`` and ``mdss_core.backends.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdss_core.backends.export import FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a model as ONNX graphs or OpenVINO IR plus model.json"
    )
    p.add_argument("model", type=Path, help="a trained .mdss model file")
    p.add_argument("--format", default="onnx", choices=FORMATS)
    p.add_argument("--out", type=Path, required=True, help="a new (or empty) folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.backends.export import export_model
    from mdss_core.model import MDSSModel

    model = MDSSModel.load(args.model, device="cpu")
    out = export_model(model, args.out, args.format, force=args.force)
    print(f"exported '{model.name}' ({model.config.method}) as {args.format} to {out}:")
    for path in sorted(out.iterdir()):
        print(f"  {path.name:<16} {path.stat().st_size / 1e6:8.2f} MB")
    backend = "openvino" if args.format == "openvino" else "onnxruntime"
    print(f"run it with: mdss predict {out} SAMPLES --out DIR --backend {backend}")
    return 0
