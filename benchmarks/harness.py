"""What every benchmark shares: the data root, the machine, timing, and its result as JSON.

A benchmark is a module of this package, run from the repository root::

    python -m benchmarks.bench_eval --help

:func:`parser` gives it ``--data`` (the shared speech sets, ``../shared/data`` beside the
repository by default) and ``--out`` (its JSON under ``benchmarks/results/``);
:func:`describe_hardware` names the machine in every result; :func:`write_result`,
:func:`save_row` and :func:`append_record` write the JSON atomically, so an interrupted run never
leaves half a file. ``python -m benchmarks.tables`` turns the results into the documentation's
tables. Run folders, converted models and reports go under ``bench_results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"  # committed: the tables are generated from these
WORK = REPO / "bench_results"  # git-ignored: run folders, models, reports
DEFAULT_DATA = REPO.parent / "shared" / "data"

# Benchmarks run offline: models come from installed weights packages or the local cache, so a
# timing never includes a download (set before any benchmark imports transformers).
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# General English DEV sets for the forgetting guard (never test sets), pooled: librivox-cmu-11
# alone is 96 words, where one extra error is +1.04 points and the 0.5-point margin would forbid any.
GUARD_SETS = ("librivox-cmu-11", "spontaneous-mfa-12")  # 366 words, 143 s
#: General-English TEST sets the fine-tuning benchmarks score forgetting on (never trained or selected on)
FORGETTING_SETS = ("librispeech-test-clean-40", "ljspeech-32")


# --- arguments -----------------------------------------------------------------------------------


def parser(doc: str, *, out: str | None = None, data: bool = True) -> argparse.ArgumentParser:
    """An argument parser showing ``doc`` (the benchmark's module docstring) as written.

    ``data`` adds ``--data``; ``out`` (a file name) adds ``--out``, defaulting to
    ``benchmarks/results/<out>``.
    """
    script = Path(sys.argv[0])
    prog = f"python -m benchmarks.{script.stem}" if script.parent.name == "benchmarks" else None  # as it is run
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if data:
        p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                       help="folder of the shared speech sets (speechocean762/, longform/, ...; default: %(default)s)")
    if out:
        p.add_argument("--out", type=Path, default=RESULTS / out, help="result JSON (default: %(default)s)")
    return p


def data_root(args: argparse.Namespace) -> Path:
    """``--data``, checked: a missing folder is one line naming the flag, not a traceback later."""
    root = Path(args.data)
    if not root.is_dir():
        raise SystemExit(f"--data {root}: not found (the folder of shared speech sets, e.g. ../shared/data)")
    return root


def guard_manifest(data: Path, runs: Path) -> Path:
    """The :data:`GUARD_SETS` as one manifest (absolute audio paths) under ``runs``."""
    from asrtune.data.manifest import load_manifest, write_manifest

    path = runs / "guard-general-english.jsonl"
    runs.mkdir(parents=True, exist_ok=True)
    write_manifest(path, [u for name in GUARD_SETS for u in load_manifest(next((data / name).glob("*.jsonl")))],
                   relative=False)
    return path


def scored_manifests(data: Path) -> list[Path]:
    """speechocean762 test, then each forgetting test set: what every fine-tuning row is scored on."""
    return [data / "speechocean762" / "test.jsonl"] + [next((data / s).glob("*.jsonl")) for s in FORGETTING_SETS]


# --- the machine ---------------------------------------------------------------------------------


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s "model name"), or the platform's best guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware(threads: int | None = None) -> dict[str, Any]:
    """CPU, logical cores, torch threads (``threads`` when the benchmark set them), GPU (if any),
    versions and the 1-minute load average.

    The load average is there because timings on a shared machine are only comparable with it.
    """
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


# --- timing --------------------------------------------------------------------------------------


@dataclass
class Elapsed:
    """Wall seconds of a :func:`timed` block (set when the block ends)."""

    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Elapsed]:
    """``with timed() as t: ...`` then ``t.seconds``: wall time on the monotonic clock."""
    elapsed = Elapsed()
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.seconds = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class ChildRun:
    """How a child process ended: exit code, wall seconds and its peak resident memory (MB)."""

    exit_code: int
    seconds: float
    peak_rss_mb: float


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the repository first on ``PYTHONPATH`` (a child ``python -m asrtune``
    or ``-m benchmarks...`` imports this checkout), plus ``extra`` variables."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_child(cmd: list[str], log_path: Path, **env: str) -> ChildRun:
    """Run ``cmd`` from the repository root, its output to ``log_path``; measure it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=child_env(**env))
        _, status, usage = os.wait4(proc.pid, 0)
    return ChildRun(os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024)


# --- results -------------------------------------------------------------------------------------


def utc_now() -> str:
    """The current UTC time as recorded in results, e.g. ``2026-12-01T12:24:52Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_result(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write one benchmark's result (with ``finished``: when) atomically; returns what was written."""
    record = {**record, "finished": utc_now()}
    write_result_raw(path, record)
    return record


def write_result_raw(path: Path, content: Any) -> None:
    """Write ``content`` as it is (no ``finished`` stamp), atomically."""
    from asrtune.fileio import write_json_atomic

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, content, indent=2)


def load_result(path: Path, default: Any = None) -> Any:
    """A result JSON, or ``default`` when there is none yet."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


def save_row(path: Path, row: str, result: dict[str, Any]) -> None:
    """Set one named row of a results object (atomically), keeping the other rows."""
    results = load_result(path, {})
    results[row] = {**result, "finished": utc_now()}
    write_result_raw(path, results)


def append_record(path: Path, record: dict[str, Any], key: tuple[str, ...]) -> None:
    """Add ``record`` to the ``rows`` list of a results file, replacing a row with the same
    values under ``key`` (the same run saved again as it progresses)."""
    table = load_result(path, {"rows": []})
    same = tuple(record[k] for k in key)
    table["rows"] = [r for r in table["rows"] if tuple(r.get(k) for k in key) != same] + [record]
    write_result_raw(path, table)
