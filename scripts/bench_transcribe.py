#!/usr/bin/env python
"""Benchmark `asrtune transcribe` against faster-whisper and the transformers ASR pipeline.

All systems run the same Whisper checkpoint (tiny.en by default) on CPU with the same number of
threads, greedy decoding (beam 1), no timestamps, in one process and one run, on:

* librispeech-test-clean-40: 40 short utterances (many files: tests batching across files);
* longform: one 5-minute recording (tests long-form segmentation).

Systems:
* asrtune ct2  — asrtune.transcription.transcribe(engine="ct2"): CTranslate2 int8, Silero VAD
                 segmentation for long audio, segments batched across files;
* asrtune hf   — the same runner with the transformers engine (float32);
* faster-whisper — BatchedInferencePipeline(WhisperModel(int8, cpu_threads=T)).transcribe(
                 file, batch_size=B, without_timestamps=True, beam_size=1), file by file;
* transformers — pipeline("automatic-speech-recognition", chunk_length_s=30, batch_size=B).

Timing covers audio decoding through transcripts (model loading excluded). RTF = wall time /
audio duration; speed-ups are wall-time ratios within this run. WER uses the "basic" normaliser.

A term-biasing check follows (hf engine; CTranslate2 takes no logits processor): transcribe a
speechocean762 test slice, take as the term list the content words tiny.en got wrong there most
often (an oracle domain vocabulary), transcribe again with --terms, and report term recall and
WER on that slice and the WER on librispeech-40 (no terms occur there) with and without terms.

    .venv/bin/python scripts/bench_transcribe.py --out bench_results/transcribe.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from asrtune.hardware import cpu_name  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STOPWORDS = set(
    "the and that this with from have they them their there then than what when where which while will would could "
    "should about into your yours were been being some more most very just also only over such each other these those "
    "because after before again does done here like make made many much must said same says shall still take upon".split()
)


def normalizer():
    try:
        from asrtune.text.normalizers import get_normalizer

        return get_normalizer("basic")
    except ImportError:
        from transformers.models.whisper.english_normalizer import BasicTextNormalizer

        return BasicTextNormalizer()


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    norm = normalizer()
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


def load_set(path: Path, limit: int | None = None) -> list[dict]:
    """Manifest rows with absolute audio paths and durations."""
    rows = []
    for line in path.read_text().splitlines()[:limit]:
        row = json.loads(line)
        row["audio"] = str((path.parent / row["audio_filepath"]).resolve())
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- systems


def run_asrtune(recognizer, rows: list[dict], batch_size: int) -> tuple[list[str], float]:
    from asrtune.transcription import transcribe

    with tempfile.TemporaryDirectory() as tmp:
        paths = [r["audio"] for r in rows]
        start = time.perf_counter()
        transcribe(paths, recognizer, tmp, formats="jsonl", batch_size=batch_size, progress=False)
        wall = time.perf_counter() - start
        by_key = {json.loads(line)["file"]: json.loads(line)["text"] for line in open(Path(tmp) / "transcripts.jsonl")}
    return [by_key[str(Path(p).resolve())] for p in paths], wall


def run_faster_whisper(pipeline, rows: list[dict], batch_size: int) -> tuple[list[str], float]:
    texts = []
    start = time.perf_counter()
    for r in rows:
        segments, _ = pipeline.transcribe(r["audio"], batch_size=batch_size, without_timestamps=True, beam_size=1)
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts, time.perf_counter() - start


def run_transformers(pipe, rows: list[dict], batch_size: int) -> tuple[list[str], float]:
    from asrtune.data.audio import load_audio

    start = time.perf_counter()
    inputs = [{"raw": load_audio(r["audio"]), "sampling_rate": 16_000} for r in rows]
    outputs = pipe(inputs, batch_size=batch_size)
    return [o["text"].strip() for o in outputs], time.perf_counter() - start


# ----------------------------------------------------------------------------- terms


def pick_terms(refs: list[str], hyps: list[str], max_terms: int) -> list[str]:
    """Content words (>= 4 letters, not stop words) the model missed most often, ties by spelling."""
    norm = normalizer()
    missed: Counter = Counter()
    for ref, hyp in zip(refs, hyps):
        hyp_words = Counter(norm(hyp).split())
        for word, n in Counter(norm(ref).split()).items():
            if len(word) >= 4 and word.isalpha() and word not in STOPWORDS and hyp_words[word] < n:
                missed[word] += n - hyp_words[word]
    ranked = sorted(missed.items(), key=lambda kv: (-kv[1], kv[0]))
    return [w for w, n in ranked if n >= 2][:max_terms]


def term_recall(refs: list[str], hyps: list[str], terms: list[str]) -> tuple[float, int]:
    """Share of the terms' occurrences in the references that the hypotheses contain (clipped counts)."""
    norm = normalizer()
    wanted = set(terms)
    hits = total = 0
    for ref, hyp in zip(refs, hyps):
        ref_counts = Counter(w for w in norm(ref).split() if w in wanted)
        hyp_counts = Counter(norm(hyp).split())
        for word, n in ref_counts.items():
            total += n
            hits += min(n, hyp_counts[word])
    return (hits / total if total else float("nan")), total


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="openai/whisper-tiny.en")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--term-set-size", type=int, default=120, help="speechocean762 test utterances for the term check")
    parser.add_argument("--max-terms", type=int, default=25)
    parser.add_argument("--term-boost", type=float, default=None)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: hf,transformers,terms, or speed (all timings)")
    parser.add_argument("--out", default=str(REPO / "bench_results" / "transcribe.json"))
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import torch

    torch.set_num_threads(args.threads)
    from asrtune.fileio import write_json_atomic
    from asrtune.inference import load_recognizer
    from asrtune.models import ct2_copy_for, load_whisper

    data = Path(args.data)
    sets = {
        "librispeech-40": load_set(data / "librispeech-test-clean-40" / "manifest.jsonl"),
        "longform-5min": load_set(data / "longform" / "manifest.jsonl"),
    }
    audio_s = {name: sum(float(r["duration"]) for r in rows) for name, rows in sets.items()}
    host = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads, "python": platform.python_version()}
    print(f"# {host['cpu']}, {host['cores']} cores, {args.threads} threads; model {args.model}; batch {args.batch_size}", flush=True)

    systems = {}
    ct2 = load_recognizer(args.model, engine="ct2", batch_size=args.batch_size)
    systems["asrtune ct2 (int8)"] = lambda rows: run_asrtune(ct2, rows, args.batch_size)
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    fw = BatchedInferencePipeline(WhisperModel(str(ct2_copy_for(args.model)), device="cpu", compute_type="int8", cpu_threads=args.threads))
    systems["faster-whisper batched (int8)"] = lambda rows: run_faster_whisper(fw, rows, args.batch_size)
    hf = None
    if "hf" not in skip or "terms" not in skip:
        hf = load_recognizer(args.model, engine="hf", batch_size=args.batch_size)
    if "hf" not in skip:
        systems["asrtune hf (fp32)"] = lambda rows: run_asrtune(hf, rows, args.batch_size)
    if "transformers" not in skip:
        from transformers import pipeline

        model, processor = load_whisper(args.model)
        if processor.tokenizer.pad_token is None:  # the pipeline needs one to batch
            processor.tokenizer.pad_token = processor.tokenizer.eos_token
        tp = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                      feature_extractor=processor.feature_extractor, chunk_length_s=30, device="cpu")
        systems["transformers pipeline (fp32)"] = lambda rows: run_transformers(tp, rows, args.batch_size)

    if "speed" in skip:
        systems = {}
    # Warm-up on one clip each so one-off costs (thread pools, lazy imports, VAD session) are not timed.
    warm = sets["librispeech-40"][:1]
    for fn in systems.values():
        fn(warm)

    results = []
    hyps_by = {}
    for system, fn in systems.items():
        for set_name, rows in sets.items():
            texts, wall = fn(rows)
            hyps_by[(system, set_name)] = texts
            row = {"system": system, "set": set_name, "audio_s": round(audio_s[set_name], 2), "wall_s": round(wall, 2),
                   "rtf": round(wall / audio_s[set_name], 4), "wer": round(wer([r["text"] for r in rows], texts), 4)}
            results.append(row)
            print(f"  {system:32s} {set_name:16s} wall {wall:7.1f}s  RTF {row['rtf']:.4f}  WER {row['wer']:.2%}", flush=True)

    def ratio(a: str, b: str, set_name: str) -> float | None:
        wa = next((r["wall_s"] for r in results if r["system"] == a and r["set"] == set_name), None)
        wb = next((r["wall_s"] for r in results if r["system"] == b and r["set"] == set_name), None)
        return round(wb / wa, 2) if wa and wb else None

    speedups = {
        set_name: {
            "ct2 vs faster-whisper": ratio("asrtune ct2 (int8)", "faster-whisper batched (int8)", set_name),
            "ct2 vs transformers pipeline": ratio("asrtune ct2 (int8)", "transformers pipeline (fp32)", set_name),
            "hf vs transformers pipeline": ratio("asrtune hf (fp32)", "transformers pipeline (fp32)", set_name),
        }
        for set_name in sets
    }

    terms_result = None
    if "terms" not in skip:
        term_rows = load_set(data / "speechocean762" / "test.jsonl", args.term_set_size)
        refs = [r["text"] for r in term_rows]
        base, base_wall = run_asrtune(hf, term_rows, args.batch_size)
        terms = pick_terms(refs, base, args.max_terms)
        biased_rec = load_recognizer(args.model, engine="hf", batch_size=args.batch_size, terms=terms, term_boost=args.term_boost)
        biased, biased_wall = run_asrtune(biased_rec, term_rows, args.batch_size)
        libri = sets["librispeech-40"]
        libri_base = hyps_by.get(("asrtune hf (fp32)", "librispeech-40")) or run_asrtune(hf, libri, args.batch_size)[0]
        libri_biased, _ = run_asrtune(biased_rec, libri, args.batch_size)
        recall_base, occurrences = term_recall(refs, base, terms)
        recall_biased, _ = term_recall(refs, biased, terms)
        libri_refs = [r["text"] for r in libri]
        terms_result = {
            "term_set": f"speechocean762 test[:{len(term_rows)}]", "terms": terms, "occurrences": occurrences,
            "term_boost": biased_rec.describe().get("term_boost"),
            "recall_without": round(recall_base, 4), "recall_with": round(recall_biased, 4),
            "wer_term_set_without": round(wer(refs, base), 4), "wer_term_set_with": round(wer(refs, biased), 4),
            "wer_librispeech_without": round(wer(libri_refs, libri_base), 4), "wer_librispeech_with": round(wer(libri_refs, libri_biased), 4),
            "wall_without_s": round(base_wall, 2), "wall_with_s": round(biased_wall, 2),
        }

    print()
    print(f"## asrtune transcribe benchmark — {host['cpu']} ({host['cores']} cores, {args.threads} threads), {args.model}")
    print()
    print("| system | set | audio s | wall s | RTF | x realtime | WER |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['system']} | {r['set']} | {r['audio_s']:.0f} | {r['wall_s']:.1f} | {r['rtf']:.4f} | {1 / r['rtf']:.0f} | {r['wer']:.2%} |")
    print()
    print("| speed-up (wall-time ratio) | " + " | ".join(sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for key in next(iter(speedups.values())):
        print(f"| {key} | " + " | ".join(f"{speedups[s][key]}x" if speedups[s][key] else "-" for s in sets) + " |")
    if terms_result:
        t = terms_result
        print()
        print(f"Term biasing (hf engine, boost {t['term_boost']}), {len(t['terms'])} terms from tiny.en's misses on {t['term_set']} "
              f"({t['occurrences']} occurrences): {', '.join(t['terms'])}")
        print()
        print("| | without terms | with terms |")
        print("|---|---:|---:|")
        print(f"| term recall ({t['term_set']}) | {t['recall_without']:.1%} | {t['recall_with']:.1%} |")
        print(f"| WER ({t['term_set']}) | {t['wer_term_set_without']:.2%} | {t['wer_term_set_with']:.2%} |")
        print(f"| WER librispeech-40 (elsewhere) | {t['wer_librispeech_without']:.2%} | {t['wer_librispeech_with']:.2%} |")
        print(f"| wall s ({t['term_set']}) | {t['wall_without_s']:.1f} | {t['wall_with_s']:.1f} |")

    write_json_atomic(args.out, {"host": host, "model": args.model, "batch_size": args.batch_size, "results": results,
                                 "speedups": speedups, "terms": terms_result})
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
