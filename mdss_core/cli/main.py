"""Entry point of the ``mdss`` command: dispatches to one module per sub-command.

The one error boundary of the CLI is :func:`main`: deliberate errors, I/O failures (disk full,
read-only, permission), damaged files and memory exhaustion print one line
(``mdss: error: …``) and exit with 2; anything else is a bug, printed as one line pointing to
``--debug``, which shows its traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mdss_core.cli.progress_bar import end_open_line
from mdss_core.failures import describe, first_line

# Each module defines ``register(subparsers)`` (adding a parser with ``func=run``) and ``run``.
COMMAND_MODULES = (
    "mdss_core.cli.synth_cmd",
    "mdss_core.cli.train_cmd",
    "mdss_core.cli.train_all_cmd",
    "mdss_core.cli.predict_cmd",
    "mdss_core.cli.evaluate_cmd",
    "mdss_core.cli.calibrate_cmd",
    "mdss_core.cli.roi_cmd",
    "mdss_core.cli.teacher_cmd",
    "mdss_core.cli.demo_cmd",
    "mdss_core.cli.bench_cmd",
    "mdss_core.cli.export_cmd",
)

EXIT_ERROR = 2  # bad input, I/O failure, damaged file, out of memory
EXIT_BUG = 3  # an unexpected exception: a bug in mdss
EXIT_INTERRUPTED = 130

DEBUG_HELP = "show the full traceback of an unexpected error"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdss", description="Memoryless multimodal (RGB + 3D) anomaly detection."
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    # Also accepted after the sub-command (``mdss predict … --debug``); SUPPRESS keeps a
    # ``--debug`` given before it.
    for sub in subparsers.choices.values():
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        end_open_line()
        print("mdss: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # MemoryError included: it is an Exception
        end_open_line()  # the message must not continue a progress bar's line
        message = describe(exc)
        if message is not None:
            print(f"mdss: error: {message}", file=sys.stderr)
            return EXIT_ERROR
        if args.debug:
            raise
        print(
            f"mdss: internal error: {type(exc).__name__}: {first_line(exc)} "
            "(a bug: rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
