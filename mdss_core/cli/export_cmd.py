"""`mdss export MODEL --format onnx|openvino --out DIR`: a deployment folder for runtimes
without the training stack (see ``docs/deployment.md`` and ``mdss_core.backends.export``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mdss_core.backends.export import FORMATS
from mdss_core.cli.arguments import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a model as ONNX graphs or OpenVINO IR plus model.json"
    )
    p.add_argument("model", type=Path, help="a trained .mdss model file")
    p.add_argument("--format", default="onnx", choices=FORMATS)
    p.add_argument("--out", type=Path, required=True, help="a new (or empty) folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument(
        "--int8",
        type=Path,
        metavar="DATA",
        help="quantize the image graphs to int8 on normal scans of DATA (OpenVINO, needs nncf)",
    )
    p.add_argument(
        "--calibrate",
        type=Path,
        metavar="DATA",
        help="thresholds again from the exported graphs' maps of DATA's normal validation scans",
    )
    p.add_argument("--category", help="category of --int8 / --calibrate DATA")
    p.add_argument(
        "--scans", type=positive_int, default=16, help="normal scans for --int8 (default 16)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core.backends.export import export_model
    from mdss_core.model import MDSSModel

    model = MDSSModel.load(args.model, device="cpu")
    samples = None
    if args.int8 is not None:
        refs = _normal_refs(args.int8, args.category)[: args.scans]
        print(f"calibrating int8 on {len(refs)} normal scans of {args.int8}")
        samples = [r.load() for r in refs]
    calibrate = None
    if args.calibrate is not None:
        calibrate = _normal_refs(args.calibrate, args.category)
        splits = {r.split for r in calibrate} & {"validation"}
        calibrate = [r for r in calibrate if r.split in splits] if splits else calibrate
    out = export_model(model, args.out, args.format, args.force, samples, calibrate)
    if calibrate is not None:
        record = json.loads((out / "model.json").read_text())
        print(
            f"thresholds from {len(calibrate)} normal scans on the exported graphs: image "
            f"{model.image_threshold:.5g} → {record['image_threshold']:.5g}, pixel "
            f"{model.pixel_threshold:.5g} → {record['pixel_threshold']:.5g}"
        )
    print(f"exported '{model.name}' ({model.config.method}) as {args.format} to {out}:")
    for path in sorted(out.iterdir()):
        print(f"  {path.name:<16} {path.stat().st_size / 1e6:8.2f} MB")
    backend = "openvino" if args.format == "openvino" else "onnxruntime"
    print(f"run it with: mdss predict {out} SAMPLES --out DIR --backend {backend}")
    return 0


def _normal_refs(data: Path, category: str | None) -> list:
    """The normal scans of ``data``, validation before train; test ones only when there is
    nothing else (a folder of good parts)."""
    from mdss_core.errors import DataError
    from mdss_core.io import open_dataset

    refs = [r for r in open_dataset(data, category=category) if r.label == 0]
    refs.sort(key=lambda r: {"validation": 0, "train": 1}.get(r.split, 2))
    refs = [r for r in refs if r.split != "test"] or refs
    if not refs:
        raise DataError(data, "no normal scans to calibrate on")
    return refs
