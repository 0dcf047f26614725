#!/usr/bin/env python
"""Benchmark `asrtune eval`: decoding speed and WER of each Whisper engine on real speech.

What is measured
  For each engine (hf = transformers generate, ct2 = CTranslate2 int8), one full
  ``asrtune.evaluation.evaluate`` run over speechocean762/test.jsonl (500 non-native English
  read utterances, ~4 s each) with Whisper tiny.en, greedy decoding, batch size 16, utterances
  sorted by duration. Reported per engine: utterances per second of decoding, real-time
  factor (decode seconds / audio seconds; lower is faster), wall time (model load + audio +
  decode + scoring + report), and normalised and orthographic WER with the 95 % bootstrap CI.
  Speed-ups are ratios against the first engine listed in the same run. The engines get the same
  thread budget (--threads, default 2 = this machine's cores).

    python -m benchmarks.bench_eval                       # both engines, 500 utts (minutes)
    python -m benchmarks.bench_eval --limit 50 --engines ct2
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmarks.harness import data_root, describe_hardware, parser, timed, write_result


def main() -> int:
    p = parser(__doc__, out="eval.json")
    p.add_argument("--model", default="openai/whisper-tiny.en")
    p.add_argument("--manifest", default=None, help="manifest to decode (default: --data's speechocean762/test.jsonl)")
    p.add_argument("--engines", default="hf,ct2", help="comma-separated; the first is the speed-up baseline")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="first N utterances only")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for each engine")
    p.add_argument("--reports", default=None, help="keep each engine's report folder under this folder")
    args = p.parse_args()
    if args.manifest is None:
        args.manifest = str(data_root(args) / "speechocean762" / "test.jsonl")

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from asrtune.evaluation import evaluate
    from asrtune.inference import RecognizerOptions

    reports_root = Path(args.reports) if args.reports else Path(tempfile.mkdtemp(prefix="bench_eval_"))
    hardware = describe_hardware(threads=args.threads)
    rows: list[dict] = []
    for engine in args.engines.split(","):
        with timed() as elapsed:
            report = evaluate(args.model, args.manifest, reports_root / engine,
                              RecognizerOptions(engine=engine, batch_size=args.batch_size), limit=args.limit, progress=True)
        wall = elapsed.seconds
        speed, ci = report.speed, report.confidence_interval.normalized
        rows.append({
            "engine": engine,
            "model": report.model.to_dict(),
            "utterances": report.n_utterances,
            "failed": len(report.failed),
            "audio_s": speed.audio_s,
            "decode_s": speed.decode_s,
            "wall_s": wall,
            "utterances_per_s": speed.utterances_per_s,
            "rtf": speed.rtf,
            "wer_normalized": report.normalized.wer,
            "wer_ci": [ci.low, ci.high],
            "wer_orthographic": report.orthographic.wer,
            "cer_normalized": report.normalized.cer,
        })
        # Print and save after every engine, so a slow engine never costs the finished results.
        report(rows, args, hardware)
    return 0


def report(rows: list[dict], args, hardware: dict) -> None:
    base = rows[0]
    for r in rows:
        r["speedup"] = base["decode_s"] / r["decode_s"] if r["decode_s"] else None
        r["speedup_baseline"] = base["engine"]
    print(f"\nasrtune eval benchmark: {args.model} on {args.manifest} ({base['utterances']} utterances, "
          f"{base['audio_s'] / 60:.1f} min audio), batch {args.batch_size}, greedy")
    print(f"hardware: {hardware['cpu']}, {hardware['cores']} logical cores, {args.threads} threads used\n")
    header = (f"{'engine':6}  {'utt/s':>7}  {'RTF':>7}  {'vs ' + base['engine']:>8}  {'decode s':>8}  {'wall s':>7}  "
              f"{'WER norm':>8}  {'95% CI':>15}  {'WER orth':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['engine']:6}  {r['utterances_per_s']:7.2f}  {r['rtf']:7.4f}  {r['speedup']:7.2f}x  "
              f"{r['decode_s']:8.1f}  {r['wall_s']:7.1f}  {100 * r['wer_normalized']:7.2f}%  "
              f"{100 * r['wer_ci'][0]:6.2f}-{100 * r['wer_ci'][1]:6.2f}%  {100 * r['wer_orthographic']:7.2f}%")
    result = {"hardware": hardware, "model": args.model,
              "manifest": args.manifest, "batch_size": args.batch_size, "threads": args.threads, "rows": rows}
    write_result(args.out, result)
    print(f"\nwritten: {args.out}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
