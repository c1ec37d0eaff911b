"""Runs ``mdss`` in a child process with one fault injected (driven by ``test_faults.py``).

    python tests/fault_child.py [--fsize BYTES] [--fit-from MODEL] [--pause save|written] \
        -- <mdss arguments>

``--fsize`` sets RLIMIT_FSIZE with SIGXFSZ ignored, so a write past it fails with EFBIG as on
a full disk. ``--fit-from`` makes ``mdss train`` skip fitting and use a saved model (the save
is what is under test). ``--pause`` prints ``PAUSED`` and sleeps at a known point — after a
model's data is written and synced but before the rename (``save``), or after the first sample's
files are written (``written``) — so the parent can send SIGKILL or SIGINT exactly there.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import time


def _pause() -> None:
    print("PAUSED", flush=True)
    time.sleep(120)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--fit-from")
    parser.add_argument("--pause", choices=["save", "written"])
    parser.add_argument("mdss", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    mdss_args = args.mdss[1:] if args.mdss[:1] == ["--"] else args.mdss

    if args.fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, hard))

    from mdss_core import atomic, export
    from mdss_core.model import MDSSModel

    if args.fit_from:
        source = args.fit_from
        MDSSModel.fit = classmethod(lambda cls, *a, **k: cls.load(source, device="cpu"))
    if args.pause == "save":
        real_fsync = atomic.fsync_path

        def fsync_then_pause(path):
            real_fsync(path)
            _pause()

        atomic.fsync_path = fsync_then_pause
    elif args.pause == "written":
        real_add = export.ResultWriter.add

        def add_then_pause(self, *a, **k):
            stem = real_add(self, *a, **k)
            if self.written == 1:
                _pause()
            return stem

        export.ResultWriter.add = add_then_pause

    from mdss_core.cli.main import main as mdss

    return mdss(mdss_args)


if __name__ == "__main__":
    sys.exit(main())
