"""`mdss train DATA --category C --out MODEL`: fit a model and write it atomically."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mdss_core.atomic import ensure_writable_folder
from mdss_core.checkpoint import DEFAULT_EVERY, Checkpointer, checkpoint_path, read_info
from mdss_core.cli.progress_bar import ProgressBar, end_open_line
from mdss_core.config import (
    DEFAULT_METHOD,
    DEFAULT_PRESET,
    METHOD_DESCRIPTIONS,
    METHODS,
    PRESETS,
    get_preset,
)
from mdss_core.crd.config import INPUTS_3D
from mdss_core.devices import DEVICE_CHOICES, device_label, resolve_device
from mdss_core.errors import Cancelled, MDSSError
from mdss_core.rgb.teacher_choice import DEFAULT_TEACHER, TEACHER_NAMES, describe_teacher


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model on one category's normal samples")
    p.add_argument("data", type=Path, help="MVTec 3D-AD root, category folder or sample folder")
    p.add_argument("--category", help="category name when DATA holds several")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.mdss)")
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=sorted(METHODS),
        help="detector: " + "; ".join(METHOD_DESCRIPTIONS.values()),
    )
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted({*PRESETS, *METHODS["crd"]}))
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument(
        "--teacher",
        help=f"{', '.join(TEACHER_NAMES)} or a PDN teacher file (default: {DEFAULT_TEACHER})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rgb-steps", type=int, help="override the preset's student steps")
    p.add_argument("--sdf-steps", type=int, help="override the preset's 3D network steps")
    p.add_argument(
        "--extra-good",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="also train on the good samples in DIR (e.g. parts marked as good); repeatable",
    )
    p.add_argument("--epochs", type=int, help="override a CRD preset's epochs")
    p.add_argument("--input-3d", choices=INPUTS_3D, help="CRD's 3D input (default: normals)")
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing model file (and start over from any checkpoint)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted training saved in OUT.ckpt (same data and settings)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_EVERY,
        metavar="N",
        help=f"save OUT.ckpt every N steps and on Ctrl+C (default {DEFAULT_EVERY}; 0: Ctrl+C only)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mdss_core.io import open_dataset
    from mdss_core.model import MDSSModel

    if args.out.exists() and not args.force:
        raise MDSSError(f"{args.out}: already exists (use --force to replace it)")
    ckpt = checkpoint_path(args.out)
    if ckpt.exists() and not (args.resume or args.force):
        raise MDSSError(
            f"{ckpt}: an unfinished training's checkpoint (add --resume to continue it, "
            "or --force to start over)"
        )
    ensure_writable_folder(args.out.parent)  # fail now, not after a long training
    dataset = open_dataset(args.data, category=args.category)
    if args.extra_good:
        from mdss_core.io.layout import with_extra_good

        dataset = with_extra_good(dataset, args.extra_good)
    _check_method_options(args)
    config = get_preset(args.preset, args.method).with_seed(args.seed)
    if args.epochs:
        config.crd = replace(config.crd, epochs=args.epochs)
    if args.input_3d:
        config.crd = replace(config.crd, input_3d=args.input_3d)
    if args.rgb_steps and config.method == "dmgrd":  # the colour branch's steps
        config.dmgrd = replace(config.dmgrd, steps=args.rgb_steps)
    elif args.rgb_steps:
        config.rgb = replace(config.rgb, steps=args.rgb_steps)
    if args.sdf_steps:
        config.sdf = replace(config.sdf, steps=args.sdf_steps)
    device = resolve_device(args.device)
    n_train, n_val = len(dataset.select("train")), len(dataset.select("validation"))
    name = dataset.category or dataset.root.name
    print(
        f"training '{name}' ({n_train} train, {n_val} validation) method={args.method} "
        f"preset={args.preset} "
        f"on {device_label(device)}"
    )
    checkpoint = Checkpointer(ckpt, every=args.checkpoint_every, resume=args.resume)
    cancel = threading.Event()
    try:
        with _ctrl_c_cancels(cancel):
            model = MDSSModel.fit(
                dataset,
                config,
                teacher=args.teacher,
                device=device,
                progress=ProgressBar(),
                cancel=cancel,
                checkpoint=checkpoint,
            )
    except Cancelled:
        end_open_line()
        info = read_info(ckpt)
        where = f"step {info.done} of {info.total} saved in {ckpt}" if info else "nothing saved"
        print(f"mdss: training interrupted ({where}); rerun with --resume", file=sys.stderr)
        return 130
    if args.resume and model.training.get("resumed_at_step"):
        print(f"resumed at step {model.training['resumed_at_step']}")
    model.save(args.out)
    checkpoint.remove()  # the model is complete: the checkpoint has served
    print(f"teacher: {describe_teacher(model.teacher_origin)}")
    print(
        f"thresholds: image {model.image_threshold:.5g}, pixel {model.pixel_threshold:.5g}; "
        f"trained in {model.training['seconds']} s"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _check_method_options(args: argparse.Namespace) -> None:
    """Options of another detector are refused in one line rather than silently ignored."""
    misplaced = [
        option
        for option, given, method in (
            ("--teacher", args.teacher, "mdss"),
            ("--epochs", args.epochs, "crd"),
            ("--input-3d", args.input_3d, "crd"),
        )
        if given and args.method != method
    ]
    if misplaced:
        raise MDSSError(f"{', '.join(misplaced)}: not an option of --method {args.method}")


@contextmanager
def _ctrl_c_cancels(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl+C stops training after the current step (saving the checkpoint); a
    second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nstopping after this step (Ctrl+C again to quit at once)…", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
