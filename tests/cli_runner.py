"""Run ``asrtune ARGS`` as its own process, without paying Python's and torch's start-up each time.

``python -m asrtune`` spends 1-2 s importing torch and transformers before it reads its
arguments, and the bad-input suite runs over a hundred commands. :func:`run_asrtune` forks each
command from a forkserver that imported asrtune and its heavy libraries once
(``set_forkserver_preload``): every
command still runs in a process of its own, with its own working folder, environment, standard
streams (file descriptors 1 and 2, so library and C-level output is caught too) and exit code,
exactly as ``python -m asrtune`` would, but starts in milliseconds. The forkserver never runs a
model, so no thread pool exists when it forks.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
# What commands import late (asrtune.cli itself imports no torch): each costs seconds per process.
PRELOADED = ["asrtune.cli", "asrtune.training.trainer", "asrtune.evaluation.pipeline", "asrtune.inference.whisper_hf",
             "asrtune.inference.whisper_ct2", "asrtune.transcription.batch",
             "transformers.models.whisper.modeling_whisper", "faster_whisper", "cli_runner"]
_CONTEXT.set_forkserver_preload(PRELOADED)


def _child(argv: list[str], cwd: str, env: dict[str, str], out_path: str, err_path: str) -> None:
    """The body of ``python -m asrtune ARGV``: standard streams to files, exit with main's code."""
    for fd, path in ((1, out_path), (2, err_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    sys.stdin = open(os.devnull)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    from asrtune.cli import main

    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors exit 2, --help exits 0
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # what python -m asrtune would print and exit with
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_asrtune(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``asrtune ARGV`` in ``cwd`` as a separate process; stdout/stderr as text, like ``subprocess.run``."""
    with tempfile.TemporaryDirectory(prefix="asrtune-cli-") as streams:
        out_path, err_path = os.path.join(streams, "stdout"), os.path.join(streams, "stderr")
        process = _CONTEXT.Process(target=_child, args=(list(argv), str(cwd), dict(env or os.environ), out_path, err_path))
        process.start()
        process.join()
        out = Path(out_path).read_text(errors="replace") if os.path.exists(out_path) else ""
        err = Path(err_path).read_text(errors="replace") if os.path.exists(err_path) else ""
    return subprocess.CompletedProcess(["asrtune", *argv], process.exitcode, out, err)
