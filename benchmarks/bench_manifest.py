#!/usr/bin/env python
"""Benchmark `asrtune manifest validate`: throughput on real audio, memory on a 1M-line manifest.

What is measured
  1. Throughput on speechocean762/train.jsonl (1200 real 16 kHz FLACs, ~4 s each): the full-decode
     check (the default; every sample decoded, which is what catches truncated FLACs) on 1 thread
     and on the default thread count, and the --quick header-only check. Each run starts with a
     cold per-file cache (a new validate call); the OS page cache is warm after the first run, so
     the numbers are decode cost, not disk reads. Speed-ups are ratios against full decode on 1
     thread in the same run.
  2. Memory on a generated manifest of N lines (default 1,000,000) that point at real files: every
     line is a distinct 1 s segment (distinct offsets) of the 5-minute longform FLAC or of
     librispeech clips, so the duplicate detector sees N unique keys (its worst case). Each
     measurement runs in a fresh subprocess and reports its peak resident memory (ru_maxrss)
     minus that of a subprocess that only imports asrtune.data, for N/10 and N lines: iterating
     with read_manifest (should be flat) and validate --quick (grows only by the 8-byte-hash set).

    python -m benchmarks.bench_manifest                  # full run (~2 minutes on 2 cores)
    python -m benchmarks.bench_manifest --lines 100000   # smaller
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import child_env, data_root, describe_hardware, parser, timed, write_result

CHILD = r"""
import json, resource, sys, time
mode, manifest = sys.argv[1], sys.argv[2]
import soundfile, asrtune.data  # noqa: F401,E401  (same imports in every child, so the baseline subtracts them)
from asrtune.data.manifest import read_manifest
from asrtune.data.validate import validate_manifests
t = time.perf_counter()
if mode == "iterate":
    n = sum(1 for _ in read_manifest(manifest))
elif mode == "validate-quick":
    r = validate_manifests([manifest], quick=True)
    assert r.ok, r.summary()
    n = r.lines
else:
    n = 0
seconds = time.perf_counter() - t
print(json.dumps({"lines": n, "seconds": seconds, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def child(mode: str, manifest: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, manifest], capture_output=True, text=True, env=child_env())
    if out.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(shared: Path, jobs_default: int) -> list[dict]:
    from asrtune.data.manifest import load_manifest
    from asrtune.data.validate import validate_manifests

    manifest = shared / "speechocean762" / "train.jsonl"
    utts = load_manifest(manifest)
    audio_s = sum(u.duration for u in utts)
    validate_manifests([manifest], quick=True, jobs=1)  # warm the OS page cache once
    rows = []
    for name, quick, jobs in (
        ("full decode, 1 thread", False, 1),
        (f"full decode, {jobs_default} threads", False, jobs_default),
        ("--quick (headers), 1 thread", True, 1),
    ):
        with timed() as elapsed:
            report = validate_manifests([manifest], quick=quick, jobs=jobs)
        seconds = elapsed.seconds
        assert report.ok and report.lines == len(utts)
        rows.append({"what": f"validate speechocean762 train: {name}", "files": len(utts), "seconds": seconds,
                     "files_per_s": len(utts) / seconds, "x_realtime": audio_s / seconds})
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup"] = base / r["seconds"]
    return rows


def write_big_manifest(shared: Path, path: Path, lines: int) -> None:
    """``lines`` distinct 1 s segments of a few real recordings (offsets never repeat per file)."""
    import soundfile as sf

    sources = [shared / "longform" / "librispeech-1089-134686.flac"]
    sources += sorted((shared / "librispeech-test-clean-40" / "audio").rglob("*.flac"))[:4]
    # Offsets step by 0.1 ms: ~(length - 1 s) / 0.1 ms distinct segments per file.
    slots = [(str(s), int((sf.info(s).duration - 1.0) / 1e-4)) for s in sources]
    with open(path, "w") as f:
        i = 0
        for source, n in slots:
            for k in range(min(n, lines - i)):
                f.write(json.dumps({"audio_filepath": source, "text": "BENCH LINE", "duration": 1.0, "offset": round(k * 1e-4, 4), "speaker": "s"}) + "\n")
            i += min(n, lines - i)
            if i >= lines:
                break
    if i < lines:
        raise SystemExit(f"could only make {i} distinct segments")


def memory(shared: Path, lines: int, workdir: Path) -> tuple[list[dict], float]:
    small, big = workdir / "small.jsonl", workdir / "big.jsonl"
    write_big_manifest(shared, small, lines // 10)
    write_big_manifest(shared, big, lines)
    base = child("baseline", str(small))["maxrss_kb"]
    rows = []
    for mode in ("iterate", "validate-quick"):
        for path in (small, big):
            r = child(mode, str(path))
            rows.append({"what": f"{mode} {r['lines']:,} lines", "lines": r["lines"], "seconds": r["seconds"],
                         "lines_per_s": r["lines"] / r["seconds"], "peak_rss_mb": r["maxrss_kb"] / 1024,
                         "rss_above_import_mb": (r["maxrss_kb"] - base) / 1024})
    return rows, base / 1024


def main() -> None:
    p = parser(__doc__, out="manifest.json")
    p.add_argument("--lines", type=int, default=1_000_000)
    args = p.parse_args()
    shared = data_root(args)
    jobs_default = min(4, os.cpu_count() or 1)
    rows = throughput(shared, jobs_default)
    print("\nvalidate throughput (1200 real FLACs, 1.34 h of audio)")
    print(f"{'what':<58} {'s':>7} {'files/s':>9} {'x realtime':>11} {'speed-up':>9}")
    for r in rows:
        print(f"{r['what']:<58} {r['seconds']:>7.2f} {r['files_per_s']:>9.0f} {r['x_realtime']:>11.0f} {r['speedup']:>8.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        mem_rows, base_mb = memory(shared, args.lines, Path(tmp))
    print(f"\nmemory (fresh subprocess each; import-only baseline peak RSS {base_mb:.0f} MB)")
    print(f"{'what':<40} {'s':>7} {'lines/s':>9} {'peak RSS MB':>12} {'above import MB':>16}")
    for r in mem_rows:
        print(f"{r['what']:<40} {r['seconds']:>7.1f} {r['lines_per_s']:>9.0f} {r['peak_rss_mb']:>12.0f} {r['rss_above_import_mb']:>16.1f}")

    # Described last: it imports torch, and a child forked from a process that big would report
    # the parent's peak as its own (ru_maxrss), spoiling the memory rows.
    hardware = describe_hardware()
    print(f"\nhardware: {hardware['cpu']}, {hardware['cores']} logical cores; python {hardware['python']}")
    write_result(args.out, {"hardware": hardware, "throughput": rows, "memory": mem_rows, "import_baseline_rss_mb": base_mb,
                            "lines": args.lines})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
