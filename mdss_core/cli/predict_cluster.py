"""`mdss predict … --ray [ADDRESS]` and `--resume`: the run of :mod:`mdss_core.cluster`, with
the plain run's messages, progress bar and exit codes."""

from __future__ import annotations

import argparse
import sys

from mdss_core.cli.progress_bar import ProgressBar, end_open_line


def run(args: argparse.Namespace) -> int:
    from mdss_core.cluster.predict_run import RunOptions, RunSummary, predict_to_folder
    from mdss_core.cluster.ray_env import import_ray
    from mdss_core.errors import MDSSError
    from mdss_core.failures import stopped_early
    from mdss_core.io import open_dataset

    if args.ray is not None:
        import_ray()  # the missing extra is named before any work
    refs = []
    for path in args.inputs:
        refs += list(open_dataset(path, category=args.category, split=args.split))
    options = RunOptions(
        overlays=() if args.no_png else ("fused",),
        data_folder=", ".join(str(path) for path in args.inputs),
        device=args.device,
        batch_size=args.batch,
        workers=args.workers,
        ray_address=args.ray,
        actors=args.actors,
        resume=args.resume,
    )
    where = "here" if args.ray is None else f"on Ray ({args.ray or 'local instance'})"
    print(f"scoring {len(refs)} samples {where} into {args.out}")
    summary = RunSummary(len(refs))
    try:
        predict_to_folder(args.model, refs, args.out, options, ProgressBar(), summary=summary)
    except BaseException as exc:  # Ctrl+C included: say what is on disk, and how to go on
        end_open_line()
        done = summary.written + summary.restored
        failure = stopped_early(exc, done, len(refs), args.out)
        if failure is exc:
            raise
        raise failure from exc
    end_open_line()
    done = summary.written + summary.restored
    again = f" ({summary.restored} written by the interrupted run)" if summary.restored else ""
    print(
        f"{done} samples scored{again}, {summary.flagged} flagged anomalous; "
        f"scores in {summary.csv_path}"
    )
    if summary.report_path is not None:
        print(f"report: {summary.report_path}")
    if summary.skipped:
        for message in summary.skipped:
            print(f"mdss: skipped {message}", file=sys.stderr)
        raise MDSSError(
            f"{len(summary.skipped)} of {len(refs)} samples could not be scored (listed above); "
            f"{summary.csv_path.name} lists the other {done}"
        )
    return 0
