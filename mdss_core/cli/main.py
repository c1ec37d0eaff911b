"""Entry point of the ``mdss`` command: dispatches to one module per sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mdss_core.errors import MDSSError

# Each module defines ``register(subparsers)`` (adding a parser with ``func=run``) and ``run``.
COMMAND_MODULES = (
    "mdss_core.cli.synth_cmd",
    "mdss_core.cli.train_cmd",
    "mdss_core.cli.predict_cmd",
    "mdss_core.cli.evaluate_cmd",
    "mdss_core.cli.teacher_cmd",
    "mdss_core.cli.demo_cmd",
    "mdss_core.cli.bench_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdss", description="Memoryless multimodal (RGB + 3D) anomaly detection."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MDSSError as exc:
        print(f"mdss: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdss: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
