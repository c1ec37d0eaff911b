"""`mdss predict MODEL INPUT… --out DIR`: float32 TIFF maps, annotated PNG overlays,
``scores.csv``, ``regions.csv`` and an HTML inspection report.

A sample that cannot be read is skipped and named on stderr; the others are scored, and the
exit code (2) says that something was skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdss_core.backends.runtime import BACKENDS
from mdss_core.cli.arguments import non_negative_int, positive_int
from mdss_core.cli.progress_bar import ProgressBar, end_open_line
from mdss_core.devices import DEVICE_CHOICES
from mdss_core.rgb.teacher_choice import describe_teacher


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="score samples; write maps, CSVs and a report")
    p.add_argument("model", type=Path)
    p.add_argument("inputs", type=Path, nargs="+", help="sample folders or datasets")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--category", help="category when an input holds several")
    p.add_argument("--split", help="only this split (e.g. test)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="what runs the networks (default: torch; an export folder: its own runtime)",
    )
    p.add_argument("--no-png", action="store_true", help="skip the PNG overlays")
    p.add_argument(
        "--batch",
        type=positive_int,
        help="samples per network pass (default: 1 on CPU, 32 with a GPU)",
    )
    p.add_argument(
        "--workers",
        type=non_negative_int,
        help="processes reading and preprocessing ahead (default: 0 on CPU, up to 8 with a GPU)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="score on Ray actors: a local Ray instance, or the cluster at ADDRESS "
        "('auto': the one this machine belongs to); needs mdss[cluster]",
    )
    p.add_argument(
        "--actors",
        type=positive_int,
        help="Ray actors (default: one per GPU of the cluster, or one per CPU without GPUs)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the interrupted run in --out: the samples it wrote are not scored again",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mdss_core import api
    from mdss_core.atomic import ensure_writable_folder
    from mdss_core.backends.load import load_on_backend
    from mdss_core.cluster.journal import start_journal
    from mdss_core.errors import MDSSError
    from mdss_core.export import ResultWriter
    from mdss_core.failures import stopped_early
    from mdss_core.io import open_dataset

    if args.ray is not None or args.resume:  # Ray and resumed runs: mdss_core.cluster
        if args.backend not in (None, "torch"):
            raise MDSSError("--ray and --resume run the torch backend (drop --backend)")
        from mdss_core.cli.predict_cluster import run as run_resumable

        return run_resumable(args)
    model = load_on_backend(args.model, args.backend, args.device)
    origin = model.teacher_origin
    backend = getattr(model.net, "backend", "torch")
    where = model.device if backend == "torch" else f"{backend} (cpu)"
    print(f"model '{model.name}' (teacher: {describe_teacher(origin)}) on {where}")
    refs = []
    for path in args.inputs:
        refs += list(open_dataset(path, category=args.category, split=args.split))
    # Before any scoring: a read-only or missing target fails now, not after the first sample.
    out = ensure_writable_folder(args.out)
    inputs = ", ".join(str(path) for path in args.inputs)
    overlays = () if args.no_png else ("fused",)
    journal = start_journal(out, args.model, overlays)  # lets --resume go on after a stop
    writer = ResultWriter(out, overlays, model.info(), inputs, on_written=journal.append)
    flagged, skipped = 0, []
    scored = api.score_folder(
        model, refs, ProgressBar(), batch_size=args.batch, workers=args.workers
    )
    try:
        for item in scored:
            if item.error is not None:
                skipped.append(item.error)
                writer.note_error(str(item.error))
                continue
            writer.add(item.ref, item.prediction)
            flagged += item.prediction.is_anomalous
        if skipped and not writer.written:
            _report_skipped(skipped[1:])
            raise skipped[0]  # nothing scored: no scores.csv, the first failure says why
        csv_path = writer.close()
    except BaseException as exc:  # Ctrl+C and bugs included: say what is on disk either way
        failure = stopped_early(exc, writer.written, len(refs), out)
        if failure is exc:
            raise
        raise failure from exc
    print(f"{writer.written} samples scored, {flagged} flagged anomalous; scores in {csv_path}")
    if writer.report_path is not None:
        print(f"report: {writer.report_path}")
    if skipped:
        _report_skipped(skipped)
        raise MDSSError(
            f"{len(skipped)} of {len(refs)} samples could not be scored (listed above); "
            f"{csv_path.name} lists the other {writer.written}"
        )
    return 0


def _report_skipped(errors: list[Exception]) -> None:
    end_open_line()
    for error in errors:
        print(f"mdss: skipped {error}", file=sys.stderr)
