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

A term-biasing check follows (hf engine; CTranslate2 takes no logits processor), for each
``--term-boosts`` value:

* speechocean762 (accented English): the term list is the content words tiny.en got wrong at
  least twice on dev[:N] (what a user would list after looking at their own dev errors); term
  recall/precision and WER are measured on test[:N] (other speakers, so the list was not fitted
  to the utterances it is scored on), and WER on librispeech-40 (elsewhere) with the same list;
* clinic: the shipped clinic-dictation term list (manifests/clinic/terms.txt: drug names,
  conditions) on librispeech-40 - a jargon list must leave general English alone.

The term check scores with the whisper-en normaliser, so "5" for "five" is not a missed term.

    python -m benchmarks.bench_transcribe            # writes benchmarks/results/transcribe.json
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.harness import REPO, data_root, describe_hardware, parser, timed, write_result

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
    from asrtune.inference import RecognizerOptions
    from asrtune.transcription import transcribe

    with tempfile.TemporaryDirectory() as tmp:
        paths = [r["audio"] for r in rows]
        with timed() as elapsed:
            transcribe(paths, recognizer, tmp, RecognizerOptions(batch_size=batch_size), formats="jsonl", progress=False)
        wall = elapsed.seconds
        by_key = {json.loads(line)["file"]: json.loads(line)["text"] for line in open(Path(tmp) / "transcripts.jsonl")}
    return [by_key[str(Path(p).resolve())] for p in paths], wall


def run_faster_whisper(pipeline, rows: list[dict], batch_size: int) -> tuple[list[str], float]:
    texts = []
    with timed() as elapsed:
        for r in rows:
            segments, _ = pipeline.transcribe(r["audio"], batch_size=batch_size, without_timestamps=True, beam_size=1)
            texts.append(" ".join(s.text.strip() for s in segments))
    return texts, elapsed.seconds


def run_transformers(pipe, rows: list[dict], batch_size: int) -> tuple[list[str], float]:
    from asrtune.data.audio import load_audio

    with timed() as elapsed:
        inputs = [{"raw": load_audio(r["audio"]), "sampling_rate": 16_000} for r in rows]
        outputs = pipe(inputs, batch_size=batch_size)
    return [o["text"].strip() for o in outputs], elapsed.seconds


# ----------------------------------------------------------------------------- terms


def pick_terms(refs: list[str], hyps: list[str], max_terms: int) -> list[str]:
    """Content words (>= 4 letters, not stop words) the model missed most often, ties by spelling."""
    norm = whisper_normalizer()
    missed: Counter = Counter()
    for ref, hyp in zip(refs, hyps):
        hyp_words = Counter(norm(hyp).split())
        for word, n in Counter(norm(ref).split()).items():
            if len(word) >= 4 and word.isalpha() and word not in STOPWORDS and hyp_words[word] < n:
                missed[word] += n - hyp_words[word]
    ranked = sorted(missed.items(), key=lambda kv: (-kv[1], kv[0]))
    return [w for w, n in ranked if n >= 2][:max_terms]


def whisper_normalizer():
    from asrtune.text.normalizers import get_normalizer

    return get_normalizer("whisper-en")


def term_scores(terms: list[str], refs: list[str], hyps: list[str]) -> dict:
    """Term recall/precision (asrtune's eval definition) and WER, whisper-en normalised."""
    import jiwer

    from asrtune.evaluation.terms import term_stats

    norm = whisper_normalizer()
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps) if norm(r).strip()]
    overall = term_stats(terms, [r for r, _ in pairs], [h for _, h in pairs], norm)["overall"]
    return {"recall": overall["recall"], "precision": overall["precision"], "found": overall["found"],
            "occurrences": overall["ref"], "wer": round(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]), 4)}


def term_check(args, data: Path, hf, libri: list[dict], libri_base: list[str]) -> list[dict]:
    """Term recall and WER per boost (see the module docstring)."""
    from asrtune.data.terms import load_terms
    from asrtune.inference import load_recognizer

    libri_refs = [r["text"] for r in libri]
    dev_rows = load_set(data / "speechocean762" / "dev.jsonl", args.term_set_size)
    dev_hyps, _ = run_asrtune(hf, dev_rows, args.batch_size)
    ocean_terms = pick_terms([r["text"] for r in dev_rows], dev_hyps, args.max_terms)
    ocean_rows = load_set(data / "speechocean762" / "test.jsonl", args.term_set_size)
    lists = [
        ("speechocean762", f"speechocean762 test[:{len(ocean_rows)}]", ocean_rows, ocean_terms),
        ("clinic", "(none: librispeech only)", [], load_terms(REPO / "manifests" / "clinic" / "terms.txt")),
    ]
    results = []
    for name, set_desc, rows, terms in lists:
        refs = [r["text"] for r in rows]
        base = run_asrtune(hf, rows, args.batch_size)[0] if rows else []
        entry = {"list": name, "set": set_desc, "terms": terms, "runs": [{
            "boost": 0.0, "term_set": term_scores(terms, refs, base) if rows else None,
            "librispeech_wer": term_scores(terms, libri_refs, libri_base)["wer"]}]}
        for boost in args.term_boosts:
            biased = load_recognizer(args.model, engine="hf", batch_size=args.batch_size, bias_terms=terms, term_boost=boost)
            run = {"boost": boost, "term_set": None}
            if rows:
                hyps, wall = run_asrtune(biased, rows, args.batch_size)
                run.update(term_set=term_scores(terms, refs, hyps), wall_s=round(wall, 2))
            run["librispeech_wer"] = term_scores(terms, libri_refs, run_asrtune(biased, libri, args.batch_size)[0])["wer"]
            entry["runs"].append(run)
            there = f"recall {run['term_set']['recall']:.1%} WER {run['term_set']['wer']:.2%} " if rows else ""
            print(f"  terms {name:15s} boost {boost:3.1f}: {there}librispeech WER {run['librispeech_wer']:.2%}", flush=True)
        results.append(entry)
    return results


def print_term_check(results: list[dict]) -> None:
    print()
    print("Term biasing (hf engine; boost 0 = without terms; whisper-en normaliser)")
    for entry in results:
        print()
        print(f"{entry['list']}: {len(entry['terms'])} terms on {entry['set']}")
        print()
        print("| boost | term recall | found / occurrences | term precision | WER there | WER librispeech-40 |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in entry["runs"]:
            t = r["term_set"]
            if t is None:
                print(f"| {r['boost']:.1f} | - | - | - | - | {r['librispeech_wer']:.2%} |")
                continue
            precision = "-" if t["precision"] is None else f"{t['precision']:.1%}"
            print(f"| {r['boost']:.1f} | {t['recall']:.1%} | {t['found']} / {t['occurrences']} | {precision} | {t['wer']:.2%} | {r['librispeech_wer']:.2%} |")


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, out="transcribe.json")
    p.add_argument("--model", default="openai/whisper-tiny.en")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8))
    p.add_argument("--term-set-size", type=int, default=150, help="speechocean762 dev (term list) and test (scoring) utterances")
    p.add_argument("--max-terms", type=int, default=25)
    p.add_argument("--term-boosts", type=lambda v: [float(x) for x in v.split(",")], default=[1.0, 2.0, 3.0],
                        help="comma-separated boosts to compare (default 1,2,3)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: hf,transformers,terms, or speed (all timings)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import torch

    torch.set_num_threads(args.threads)
    from asrtune.inference import load_recognizer
    from asrtune.models import ct2_copy_for, load_whisper

    data = data_root(args)
    sets = {
        "librispeech-40": load_set(data / "librispeech-test-clean-40" / "manifest.jsonl"),
        "longform-5min": load_set(data / "longform" / "manifest.jsonl"),
    }
    audio_s = {name: sum(float(r["duration"]) for r in rows) for name, rows in sets.items()}
    host = describe_hardware(threads=args.threads)
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
        libri = sets["librispeech-40"]
        libri_base = hyps_by.get(("asrtune hf (fp32)", "librispeech-40")) or run_asrtune(hf, libri, args.batch_size)[0]
        terms_result = term_check(args, data, hf, libri, libri_base)

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
        print_term_check(terms_result)

    write_result(args.out, {"hardware": host, "model": args.model, "batch_size": args.batch_size, "results": results,
                            "speedups": speedups, "terms": terms_result})
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
