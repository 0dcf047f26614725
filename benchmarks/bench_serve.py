#!/usr/bin/env python
"""Benchmark `asrtune serve`: latency and throughput of the OpenAI-compatible server under load.

Starts ``asrtune serve`` (tiny.en, CTranslate2 int8 by default) as a subprocess on a free local
port, then sends the same ``--requests`` clips (librispeech-test-clean-40 + speechocean762 test,
alternating) at each concurrency level (1, 4, 16 clients, each request a multipart upload as the
openai client sends it). Every request must be answered exactly once with 200, and every answer
must be its own clip's transcript: the first (concurrency 1) pass fixes each clip's transcript and
later passes must reproduce it, so a response delivered to the wrong request, lost or duplicated
shows up as a mismatch. Reports p50/p95 latency, requests/s and audio seconds per second, prints a
table and writes JSON (with the hardware and load average) to --out.

Goal: throughput at concurrency 16 at least 2x that at concurrency 1 (dynamic batching). On a
2-core CPU the encoder (every clip padded to Whisper's 30 s window) is most of the work and costs
the same per clip in a batch, so the gain there is small; ``scripts/gpu_check.sh`` runs this with
``--device cuda``, where a batch is nearly as cheap as one clip.

    python -m benchmarks.bench_serve                 # writes benchmarks/results/serve.json
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.harness import child_env, data_root, describe_hardware, parser, timed, write_result

SETS = ("librispeech-test-clean-40/manifest.jsonl", "speechocean762/test.jsonl")
STARTUP_TIMEOUT_S = 600
READY_LINE = "Uvicorn running on"  # uvicorn's log line once the socket is listening
STOPPED_LINE = "Finished server process"  # uvicorn's last line after a graceful shutdown
REQUEST_TIMEOUT_S = 600


def clips(data: Path, n: int) -> list[tuple[str, bytes, float]]:
    """``n`` (name, bytes, duration) clips alternating between the sets."""
    per_set = []
    for rel in SETS:
        manifest = data / rel
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        per_set.append([(Path(r["audio_filepath"]).name, (manifest.parent / r["audio_filepath"]).read_bytes(), float(r["duration"]))
                        for r in rows])
    out, i = [], 0
    while len(out) < n:
        pool = per_set[i % len(per_set)]
        idx = (i // len(per_set)) % len(pool)
        out.append(pool[idx])
        i += 1
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "asrtune", "serve", "--model", args.model, "--engine", args.engine, "--device", args.device,
           "--port", str(port),
           "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms),
           "--max-queue", str(max(64, 2 * max(args.concurrency))), "--log-level", "info"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=child_env())
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for line in proc.stderr:  # blocks on the server's own log: ready when uvicorn says so
        if READY_LINE in line:
            break
        if time.monotonic() > deadline:
            break
    else:
        raise SystemExit(f"server exited before it was ready (exit code {proc.wait()})")
    # keep draining its log so the pipe never fills and blocks the server; keep the lines that matter
    import threading

    proc.notable = []  # type: ignore[attr-defined]
    proc.drain = threading.Thread(  # type: ignore[attr-defined]
        target=lambda: proc.notable.extend(line for line in proc.stderr if "HTTP/1.1" not in line), daemon=True)
    proc.drain.start()
    return proc


def run_level(url: str, items: list, concurrency: int) -> dict:
    import httpx

    before = httpx.get(url + "/health").json()
    load_before = os.getloadavg()[0]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        def one(index: int) -> tuple[int, int, str, float]:
            name, data, _ = items[index]
            with timed() as latency:
                r = client.post("/v1/audio/transcriptions", files={"file": (name, data)},
                                data={"model": "whisper-1", "response_format": "json"})
            return index, r.status_code, r.json().get("text", "") if r.status_code == 200 else r.text, latency.seconds

        with timed() as elapsed:
            with ThreadPoolExecutor(concurrency) as pool:
                answers = list(pool.map(one, range(len(items))))
        wall = elapsed.seconds
    after = httpx.get(url + "/health").json()
    calls = after["model_calls"] - before["model_calls"]
    segments = after["segments_decoded"] - before["segments_decoded"]
    return {"answers": answers, "wall_s": wall, "model_calls": calls, "mean_batch": segments / calls if calls else None,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def summarise(level: dict, items: list, concurrency: int, truth: dict[int, str] | None) -> dict:
    import numpy as np

    answers = level["answers"]
    indices = [a[0] for a in answers]
    ok = [a for a in answers if a[1] == 200]
    latencies = np.array([a[3] for a in ok])
    mismatched = [a[0] for a in ok if truth is not None and truth[a[0]] != a[2]]
    audio_s = sum(items[a[0]][2] for a in ok)
    return {
        "concurrency": concurrency, "requests": len(items), "answered_200": len(ok),
        "lost": len(set(range(len(items))) - set(indices)), "duplicated": len(indices) - len(set(indices)),
        "errors": sorted({a[1] for a in answers if a[1] != 200}), "mismatched": len(mismatched),
        "wall_s": round(level["wall_s"], 2), "requests_per_s": round(len(ok) / level["wall_s"], 3),
        "audio_s_per_s": round(audio_s / level["wall_s"], 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if len(ok) else None,
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3) if len(ok) else None,
        "model_calls": level["model_calls"], "mean_batch_segments": round(level["mean_batch"] or 0, 2),
        "load_average_1min_before_after": level["load_average_1min"],
    }


def main() -> int:
    p = parser(__doc__, out="serve.json")
    p.add_argument("--model", default="openai/whisper-tiny.en")
    p.add_argument("--engine", default="ct2", choices=["ct2", "hf"])
    p.add_argument("--device", default="cpu", help="the server's --device: cpu, cuda or cuda:N")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", default="1,4,16", type=lambda s: [int(c) for c in s.split(",")])
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=20.0)
    args = p.parse_args()

    items = clips(data_root(args), args.requests)
    port = free_port()
    server = start_server(args, port)
    url = f"http://127.0.0.1:{port}"
    results, truth = [], None
    try:
        for concurrency in args.concurrency:
            level = run_level(url, items, concurrency)
            row = summarise(level, items, concurrency, truth)
            if truth is None:  # the first level fixes each clip's transcript
                truth = {a[0]: a[2] for a in level["answers"] if a[1] == 200}
            results.append(row)
            print(f"concurrency {concurrency:>3}: {row['requests_per_s']:.2f} req/s, p50 {row['latency_p50_s']} s, "
                  f"p95 {row['latency_p95_s']} s, mean batch {row['mean_batch_segments']}, lost {row['lost']}, "
                  f"mismatched {row['mismatched']}, load {row['load_average_1min_before_after']}", flush=True)
    finally:
        server.terminate()  # SIGTERM: graceful shutdown (uvicorn then re-raises it, so the exit code is -15)
        server.wait(120)
        server.drain.join(10)
    graceful = any(STOPPED_LINE in line for line in server.notable)
    print(f"server stopped on SIGTERM: {'gracefully' if graceful else 'NOT gracefully'} (exit code {server.returncode})")

    base = results[0]["requests_per_s"]
    print(f"\n{'clients':>7} {'ok':>5} {'lost':>4} {'dup':>4} {'mismatch':>8} {'req/s':>7} {'audio s/s':>9} "
          f"{'p50 s':>7} {'p95 s':>7} {'batch':>5} {'speed-up':>8}")
    for r in results:
        print(f"{r['concurrency']:>7} {r['answered_200']:>5} {r['lost']:>4} {r['duplicated']:>4} {r['mismatched']:>8} "
              f"{r['requests_per_s']:>7.2f} {r['audio_s_per_s']:>9.1f} {r['latency_p50_s']:>7.3f} {r['latency_p95_s']:>7.3f} "
              f"{r['mean_batch_segments']:>5.1f} {r['requests_per_s'] / base:>7.2f}x")
    report = {"model": args.model, "engine": args.engine, "device": args.device, "requests": args.requests,
              "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
              "server_exit_code": server.returncode, "graceful_shutdown": graceful, "levels": results, "hardware": describe_hardware()}
    write_result(args.out, report)
    print(f"\nwrote {args.out}")
    all_ok = all(r["answered_200"] == r["requests"] and r["mismatched"] == 0 and r["lost"] == r["duplicated"] == 0
                 for r in results)
    return 0 if all_ok and graceful else 1


if __name__ == "__main__":
    raise SystemExit(main())
