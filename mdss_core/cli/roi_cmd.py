"""`mdss roi MODEL --polygon x0,y0,… [--exclude …] [--clear] --out NEW.mdss | --in-place`:
set or clear the region of interest a model judges (coordinates are fractions of the image
width and height, 0..1, so one ROI serves every resolution), and `mdss model info MODEL`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mdss_core.atomic import ensure_writable_folder
from mdss_core.errors import MDSSError, WriteError

POLYGON_HELP = "x0,y0,x1,y1,… in 0..1 (fractions of width, height); repeat for more polygons"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("roi", help="set or clear a model's region of interest")
    p.add_argument("model", type=Path)
    p.add_argument("--polygon", action="append", default=[], help=f"include: {POLYGON_HELP}")
    p.add_argument("--exclude", action="append", default=[], help=f"ignore: {POLYGON_HELP}")
    p.add_argument("--clear", action="store_true", help="judge the whole image again")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="model file to write")
    target.add_argument(
        "--in-place", action="store_true", help="rewrite MODEL (a copy is kept as MODEL.bak)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=run)

    info = subparsers.add_parser("model", help="describe a model file")
    info.add_argument("action", choices=["info"])
    info.add_argument("model", type=Path)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(func=run_info)


def run(args: argparse.Namespace) -> int:
    from mdss_core.model import MDSSModel
    from mdss_core.roi import make_roi, parse_polygon

    if args.clear == bool(args.polygon or args.exclude):
        raise MDSSError("roi: give --polygon/--exclude polygons, or --clear (not both)")
    include = [parse_polygon(t, f"--polygon {i + 1}") for i, t in enumerate(args.polygon)]
    exclude = [parse_polygon(t, f"--exclude {i + 1}") for i, t in enumerate(args.exclude)]
    roi = None if args.clear else make_roi(include, exclude)
    out = args.model if args.in_place else args.out
    if not args.in_place and out.exists() and not args.force:
        raise MDSSError(f"{out}: already exists (use --force to replace it)")
    ensure_writable_folder(out.parent)
    model = MDSSModel.load(args.model, device="cpu").with_roi(roi)
    if args.in_place:
        print(f"kept the previous model as {backup(args.model)}")
    model.save(out)
    print(f"roi: {model.info()['roi_text']}")
    print(f"wrote {out}")
    return 0


def backup(path: Path) -> Path:
    """Copy ``path`` to ``path.bak`` (``.bak-2``… when taken) before it is rewritten."""
    target, n = path.with_name(path.name + ".bak"), 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.bak-{n}"), n + 1
    try:
        shutil.copy2(path, target)
    except OSError as exc:
        raise WriteError(target, exc.strerror or str(exc)) from None
    return target


def run_info(args: argparse.Namespace) -> int:
    from mdss_core.model import MDSSModel

    info = MDSSModel.load(args.model, device="cpu").info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    training = info.get("training") or {}
    lines = [
        f"name: {info['name']} (format {info['format_version']})",
        f"category: {training.get('category') or '?'}, trained on {training.get('n_train', '?')}",
        f"preset: {info['preset']}, fusion: {info['fusion']}",
        f"teacher: {info['teacher_text']}",
        f"thresholds: image {info['image_threshold']:.5g}, pixel {info['pixel_threshold']:.5g}",
        f"roi: {info['roi_text']}",
    ]
    roi = info.get("roi") or {}
    for kind in ("include", "exclude"):
        for poly in roi.get(kind, []):
            points = " ".join(f"{x:.3f},{y:.3f}" for x, y in poly)
            lines.append(f"  {kind}: {points}")
    print("\n".join(lines))
    return 0
