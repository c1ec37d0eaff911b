"""`mdss teacher download|import|distill|corpus`: get or make a teacher PDN for the RGB branch."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from mdss_core.cli.progress_bar import ProgressBar
from mdss_core.devices import DEVICE_CHOICES, resolve_device
from mdss_core.errors import MDSSError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("teacher", help="download, import or distill a teacher PDN")
    actions = parser.add_subparsers(dest="teacher_action", required=True)

    from mdss_core.rgb.teacher_download import PUBLISHED_SHA256, PUBLISHED_URL

    download = actions.add_parser("download", help="fetch the published EfficientAD teacher")
    download.add_argument("--size", default="small", choices=("small", "medium"))
    download.add_argument(
        "--cache", type=Path, help="cache folder (default: $MDSS_CACHE_DIR or ~/.cache/mdss)"
    )
    download.add_argument("--url", default=PUBLISHED_URL, help="archive URL (a mirror)")
    download.add_argument("--sha256", default=PUBLISHED_SHA256, help="expected archive sha256")
    download.set_defaults(func=run)

    convert = actions.add_parser(
        "import", help="check a teacher file (.pth/.safetensors) and convert it to mdss format"
    )
    convert.add_argument("file", type=Path, help="teacher weights (nelson or anomalib keys)")
    convert.add_argument("--out", type=Path, help="mdss teacher file to write (.safetensors)")
    convert.add_argument("--size", choices=("small", "medium"), help="require this PDN size")
    convert.set_defaults(func=run)

    distill = actions.add_parser(
        "distill",
        help="distil a pretrained backbone's features into a new PDN teacher (GPU advised)",
    )
    distill.add_argument(
        "--backbone",
        default="mobilenet_v2",
        help="mobilenet_v2 (shipped ImageNet weights, default) or a wide_resnet101_2 state dict",
    )
    distill.add_argument(
        "--weights",
        type=Path,
        help="with mobilenet_v2: a torchvision mobilenet_v2 state dict instead of the shipped one",
    )
    distill.add_argument(
        "--images",
        type=Path,
        required=True,
        help="image folder (`mdss teacher corpus` output: train/ + heldout/, or any images)",
    )
    distill.add_argument("--out", type=Path, required=True, help="teacher file to write")
    distill.add_argument("--steps", type=int, help="training steps (default 60000)")
    distill.add_argument(
        "--minutes", type=float, default=0.0, help="time budget: fewer steps if they do not fit"
    )
    distill.add_argument("--size", default="small", choices=("small", "medium"))
    distill.add_argument("--image-size", type=int, default=256)
    distill.add_argument("--batch-size", type=int, default=16)
    distill.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (Adam)")
    distill.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    distill.add_argument("--seed", type=int, default=0)
    distill.add_argument(
        "--backbone-blocks",
        default="3,4,23",
        help="ResNet backbones: bottleneck blocks in layers 1-3 (wide_resnet50_2: 3,4,6)",
    )
    distill.add_argument(
        "--backbone-width",
        type=int,
        default=128,
        help="ResNet backbones: width per group (128 for wide ResNets, 64 for plain ResNets)",
    )
    distill.set_defaults(func=run)

    corpus = actions.add_parser(
        "corpus", help="build a generic image corpus (procedural + from downloaded packages)"
    )
    corpus.add_argument("--out", type=Path, required=True, help="corpus folder to write")
    corpus.add_argument(
        "--packages",
        type=Path,
        help="folder of downloaded .deb/.whl files (tools/fetch_corpus_sources.sh)",
    )
    # Defaults: with the fetch script's packages, ~1,700 images in ~44 MB (one device transfer).
    corpus.add_argument("--procedural", type=int, default=450, help="generated images")
    corpus.add_argument("--seed", type=int, default=0, help="seed of the generated images")
    corpus.add_argument(
        "--max-side",
        type=int,
        default=384,
        help="shorter side of stored images at most (384: about ImageNet's resolution)",
    )
    corpus.add_argument(
        "--per-package",
        type=int,
        default=150,
        help="at most this many images per package, evenly spaced (0: no limit)",
    )
    corpus.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.teacher_action == "download":
        return _download(args)
    if args.teacher_action == "import":
        return _import(args)
    if args.teacher_action == "corpus":
        return _corpus(args)
    return _distill(args)


def _download(args: argparse.Namespace) -> int:
    from mdss_core.rgb.teacher import load_teacher_file
    from mdss_core.rgb.teacher_download import download_teacher

    path = download_teacher(
        args.size,
        args.cache,
        args.url,
        args.sha256,
        progress=ProgressBar(),
        cancel=threading.Event(),
    )
    _, origin = load_teacher_file(path, args.size)  # proves the file is a usable teacher
    print(f"teacher PDN-{origin['size']} ({origin['format']} keys): {path}")
    print(f"use it with: mdss train … --teacher {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from mdss_core.rgb.teacher import load_teacher_file, save_teacher_file

    teacher, origin = load_teacher_file(args.file, args.size)
    print(
        f"{args.file}: PDN-{origin['size']} teacher, {origin['format']} keys, "
        f"sha256 {origin['sha256'][:16]}…"
    )
    out = args.out
    if out is None and args.file.suffix.lower() != ".safetensors":
        out = args.file.with_suffix(".safetensors")
    if out is None:
        return 0  # already a safetensors file and no --out: checking was the job
    if out.resolve() == args.file.resolve():
        raise MDSSError(f"{out}: --out must differ from the input file")
    save_teacher_file(teacher, origin, out)
    print(f"wrote {out}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from mdss_core.rgb.teacher import save_teacher_file
    from mdss_core.rgb.teacher_distill import (
        DEFAULT_DISTILL_STEPS,
        DistillSettings,
        distill_teacher,
        mobilenet_target,
        wrn_target,
    )

    if args.backbone == "mobilenet_v2":
        target, target_origin = mobilenet_target(args.weights)
    else:
        target, target_origin = wrn_target(Path(args.backbone), _resnet_spec(args), args.seed)
    settings = DistillSettings(
        size=args.size,
        steps=args.steps or DEFAULT_DISTILL_STEPS,
        image_size=args.image_size,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_seconds=60.0 * args.minutes,
    )
    teacher, origin, normalised = distill_teacher(
        target,
        target_origin,
        args.images,
        settings,
        device=resolve_device(args.device),
        progress=ProgressBar(),
        cancel=threading.Event(),
    )
    extra = {"distill.mean": normalised.mean, "distill.std": normalised.std}
    save_teacher_file(teacher, origin, args.out, extra)
    losses = {k: origin[k] for k in ("final_loss", "heldout_loss", "seconds")}
    print(f"wrote {args.out} ({json.dumps(losses)})")
    return 0


def _resnet_spec(args: argparse.Namespace):
    from mdss_core.rgb.distill_wrn import BackboneSpec

    try:
        blocks = tuple(int(part) for part in args.backbone_blocks.split(","))
    except ValueError:
        blocks = ()
    if len(blocks) != 3 or min(blocks) < 1:
        raise MDSSError(
            f"--backbone-blocks must be three positive integers, not {args.backbone_blocks!r}"
        )
    name = "wide_resnet101_2" if (blocks, args.backbone_width) == ((3, 4, 23), 128) else "resnet"
    return BackboneSpec(blocks=blocks, width_per_group=args.backbone_width, name=name)


def _corpus(args: argparse.Namespace) -> int:
    from mdss_core.rgb.corpus import build_corpus

    if args.procedural < 0 or args.max_side < 128 or args.per_package < 0:
        raise MDSSError("--procedural must be >= 0, --max-side >= 128, --per-package >= 0")
    summary = build_corpus(
        args.out,
        args.packages,
        args.procedural,
        args.seed,
        progress=ProgressBar(),
        cancel=threading.Event(),
        max_side=args.max_side,
        per_package=args.per_package or None,
    )
    sources = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_source.items()))
    print(
        f"wrote {summary.images} images ({sources}; {summary.train} train, "
        f"{summary.heldout} held out, {summary.total_bytes / 2**20:.1f} MiB) to {args.out}"
    )
    print(f"distil with: mdss teacher distill --images {args.out} --out TEACHER.safetensors")
    return 0
