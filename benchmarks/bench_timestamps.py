#!/usr/bin/env python
"""Benchmark: does a tuned Whisper keep its timestamps, its prompts and its silence?

Whisper tiny.en is tuned on speechocean762 train (1200 accented read utterances) twice with the
same budget: ``plain`` (every example ``<|notimestamps|>``, no prompts, no no-speech clips) and ``mixed`` (``--timestamp-fraction``, ``--prompt-fraction`` and
``--no-speech-fraction`` at 0.5, 0.3 and 0.05); ``packed`` is the mix trained on the clips plus the
same clips packed into <= 30 s windows with one timed part each (``asrtune manifest pack``), for
multi-segment timestamp targets. Each is exported with ``--export-ct2`` and run,
with the untuned ``base``, through faster-whisper's own ``WhisperModel.transcribe`` (timestamped
decoding, its default):

* ``timestamps`` - ``--data``'s longform (one 5-minute file) and librispeech-test-clean-40:
  segment count, whether every segment's times are monotonic and inside the file, WER
  (whisper-en normaliser);
* ``prompting`` - speechocean762 test WER without and with an ``initial_prompt`` of the domain's
  vocabulary (the most frequent words of the training transcripts), and the prompt's effect as a
  paired bootstrap over the same clips (points, 95 % CI, p);
* ``hallucination`` - 30 generated clips of silence, white/pink noise and 50/60 Hz hum (a seed
  the training clips never used): how many come back with any text;
* ``accuracy`` - ``asrtune eval`` (ct2, greedy) of every model on speechocean762 test and
  librispeech-test-clean-40, normalised WER with counts and 95 % CI, tuned models paired with
  ``tuned-plain``;
* ``silence`` - the hallucination clips through asrtune's own paths, both engines:
  ``transcribe_audio`` (VAD, then the no-speech rule) and the model alone (the rule only).

Any other run folder with a ``best-ct2/`` placed (or linked) in ``--runs`` is measured too.
Rows run separately and update one JSON (``--out``, default ``benchmarks/results/timestamps.json``)::

    python -m benchmarks.bench_timestamps --row tune-plain
    python -m benchmarks.bench_timestamps --row tune-mixed
    python -m benchmarks.bench_timestamps --row tune-packed
    python -m benchmarks.bench_timestamps --row accuracy --row silence --row hallucination --row timestamps
    python -m benchmarks.bench_timestamps --row prompting --test-limit 250

The recipes are :data:`benchmarks.recipes.TUNES`.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import WORK, data_root, parser, save_row, timed
from benchmarks.recipes import MODEL, TUNES

HALLUCINATION_SEED = 12345  # no-speech clips the training series (seed 0) never contains
HALLUCINATION_CLIPS = 30
PROMPT_WORDS = 40  # words in the domain-vocabulary prompt
FLOAT_SLACK_S = 1e-6  # faster-whisper's times are window offset + k * 0.02 in floats: 154.48000000000002 then 154.48
FILE_SLACK_S = 0.5  # s past the end of the file a segment end may fall (Whisper's 0.02 s grid, padding)
ROWS = ("tune-plain", "tune-mixed", "tune-packed", "tune-packed-terms", "timestamps", "prompting", "hallucination", "accuracy", "silence")


def main() -> None:
    p = parser(__doc__, out="timestamps.json")
    p.add_argument("--row", action="append", choices=ROWS, help="row(s) to run (default: all, in order)")
    p.add_argument("--runs", type=Path, default=WORK / "timestamps_runs", help="folder of the tuned runs (default: %(default)s)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="train on the first N utterances of speechocean762 train (a short budget on a slow machine)")
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--max-train-minutes", type=float, default=None, help="training budget per tuned model")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--beam-size", type=int, default=5, help="faster-whisper beam (its default is 5)")
    p.add_argument("--test-limit", type=int, default=None, help="speechocean762 test utterances for the prompting row")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", action="append", metavar="MODEL",
                   help="measure only these models (base, tuned-plain, tuned-mixed, ...; default: all in --runs)")
    args = p.parse_args()
    data, runs, out = data_root(args), Path(args.runs), Path(args.out)
    for row in args.row or ROWS:
        with timed() as elapsed:
            if row.startswith("tune-"):
                result = tune(row.removeprefix("tune-"), data, runs, args)
            else:
                models = {k: v for k, v in available_models(runs).items() if not args.only or k in args.only}
                rows = {"timestamps": timestamps_row, "prompting": prompting_row, "hallucination": hallucination_row,
                        "accuracy": accuracy_row, "silence": silence_row}
                result = rows[row](models, data, args)
        result["row_s"] = round(elapsed.seconds, 1)
        save_row(out, row, result)
        print(json.dumps({row: result}, indent=2), flush=True)


# --- tuning ---------------------------------------------------------------------------------------


def tune(name: str, data: Path, runs: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train one tuned model (no dev set: best/ = final/) and export it to CTranslate2."""
    from asrtune.training import TrainConfig, train

    from asrtune.data.manifest import load_manifest, write_manifest

    options = TUNES[name]
    manifest = runs / f"train-{args.train_limit or 'all'}.jsonl"
    clips = load_manifest(data / "speechocean762" / "train.jsonl")[: args.train_limit]
    write_manifest(manifest, clips, relative=False)
    manifests = [str(manifest)]
    packed: dict[str, Any] = {}
    if name == "packed":
        from asrtune.data.pack import pack_utterances

        windows, summary = pack_utterances(clips, runs / f"{manifest.stem}-packed_audio")
        write_manifest(runs / f"{manifest.stem}-packed.jsonl", windows, relative=False)
        manifests.append(str(runs / f"{manifest.stem}-packed.jsonl"))
        packed = {"packed": summary.line()}
    config = TrainConfig(model=MODEL, train=manifests, out=str(runs / name),
                         max_steps=args.max_steps, max_train_minutes=args.max_train_minutes, batch_size=args.batch_size,
                         lr=args.lr, warmup_steps=30, export_ct2=True, threads=args.threads, progress=False,
                         force=True, **options)
    result = train(config)
    return {"model": MODEL, **options, "steps": result.steps, "stopped": result.stopped, "epochs": result.epochs,
            "max_steps": args.max_steps, "max_train_minutes": args.max_train_minutes, "batch_size": args.batch_size,
            "lr": args.lr, "cpu_threads": args.threads, "train_utterances": len(clips), **packed}


def available_models(runs: Path) -> dict[str, Path]:
    """``base`` (converted once) plus every tuned run that has a ``best-ct2/``."""
    from asrtune.models import hf_to_ct2, resolve_model

    base = runs / "base-ct2"
    if not (base / "model.bin").is_file():
        hf_to_ct2(resolve_model(MODEL).path, base, quantization="int8")
    models = {"base": base}
    for name in [*TUNES, *sorted(p.name for p in runs.iterdir() if p.name not in TUNES)]:  # the two tunes first, then
        if (runs / name / "best-ct2" / "model.bin").is_file():  # any other run put here (e.g. a link to one)
            models[f"tuned-{name}"] = runs / name / "best-ct2"
    return models


def whisper_model(path: Path, threads: int):
    from faster_whisper import WhisperModel

    return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)


# --- rows -------------------------------------------------------------------------------------------


def timestamps_row(models: dict[str, Path], data: Path, args: argparse.Namespace) -> dict[str, Any]:
    from asrtune.data.manifest import load_manifest

    sets = {"longform": load_manifest(data / "longform" / "manifest.jsonl"),
            "librispeech-test-clean-40": load_manifest(data / "librispeech-test-clean-40" / "manifest.jsonl")}
    out: dict[str, Any] = {"beam_size": args.beam_size}
    for name, path in models.items():
        model = whisper_model(path, args.threads)
        for set_name, utts in sets.items():
            out[f"{name}/{set_name}"] = timestamp_stats(model, utts, args.beam_size)
    return out


def timestamp_stats(model: Any, utts: list, beam_size: int) -> dict[str, Any]:
    """Segments, monotonic/inside-the-file checks and WER of faster-whisper's timestamped decoding."""
    from asrtune.data.audio import load_audio
    from asrtune.evaluation.metrics import corpus_wer

    segments = monotonic = inside = 0
    hyps = []
    for utt in utts:
        segs = list(model.transcribe(load_audio(utt.audio_filepath), language="en", beam_size=beam_size)[0])
        times = [t for s in segs for t in (s.start, s.end)]
        segments += len(segs)
        monotonic += all(b >= a - FLOAT_SLACK_S for a, b in zip(times, times[1:]))
        inside += bool(times) and times[0] >= 0 and times[-1] <= utt.duration + FILE_SLACK_S
        hyps.append(" ".join(s.text.strip() for s in segs))
    return {"files": len(utts), "segments": segments, "monotonic_files": monotonic, "inside_files": inside,
            "wer": round(100 * corpus_wer([u.text for u in utts], hyps), 2)}


def prompting_row(models: dict[str, Path], data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """WER without and with the domain-vocabulary prompt, and the prompt's effect (paired bootstrap
    over the same clips: points, 95 % CI, p)."""
    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest
    from asrtune.evaluation.bootstrap import paired_bootstrap
    from asrtune.evaluation.metrics import corpus_wer

    prompt = domain_prompt([u.text for u in load_manifest(data / "speechocean762" / "train.jsonl")])
    utts = load_manifest(data / "speechocean762" / "test.jsonl")[: args.test_limit]
    audios = [load_audio(u.audio_filepath) for u in utts]
    refs = [u.text for u in utts]
    out: dict[str, Any] = {"prompt": prompt, "utterances": len(utts), "beam_size": args.beam_size}
    for name, path in models.items():
        model = whisper_model(path, args.threads)
        counts = {}
        for label, initial in (("no-prompt", None), ("prompt", prompt)):
            hyps = [" ".join(s.text.strip() for s in model.transcribe(a, language="en", beam_size=args.beam_size,
                                                                      initial_prompt=initial)[0]) for a in audios]
            out[f"{name}/{label}"] = round(100 * corpus_wer(refs, hyps), 2)
            counts[label] = utterance_errors(refs, hyps)
        effect = paired_bootstrap(*counts["prompt"], *counts["no-prompt"])  # prompt - no prompt, same clips
        out[f"{name}/prompt_effect"] = {"points": round(100 * effect.difference, 2), "p_value": round(effect.p_value, 3),
                                        "ci95": [round(100 * effect.low, 2), round(100 * effect.high, 2)]}
    return out


def utterance_errors(refs: list[str], hyps: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance (errors, reference words), whisper-en normalised: what the paired bootstrap resamples."""
    from asrtune.evaluation.metrics import error_counts

    counts = [error_counts([r], [h], "whisper-en") for r, h in zip(refs, hyps)]
    return np.array([c.errors for c in counts]), np.array([c.ref_words for c in counts])


def domain_prompt(texts: list[str]) -> str:
    """The domain's vocabulary: its most frequent words outside a short stop list, comma-separated."""
    from asrtune.data.terms import domain_vocabulary

    return ", ".join(domain_vocabulary(texts, PROMPT_WORDS))


def hallucination_row(models: dict[str, Path], data: Path, args: argparse.Namespace) -> dict[str, Any]:
    from asrtune.training.no_speech import no_speech_clip

    clips = [no_speech_clip(HALLUCINATION_SEED, i) for i in range(HALLUCINATION_CLIPS)]
    out: dict[str, Any] = {"clips": len(clips), "kinds": dict(collections.Counter(c.kind for c in clips)),
                           "beam_size": args.beam_size}
    for name, path in models.items():
        model = whisper_model(path, args.threads)
        texts = [" ".join(s.text.strip() for s in model.transcribe(c.samples, language="en", beam_size=args.beam_size)[0]).strip()
                 for c in clips]
        out[f"{name}/non_empty"] = sum(bool(t) for t in texts)
        out[f"{name}/examples"] = sorted({t for t in texts if t})[:5]
    return out


def hf_folder(name: str, path: Path) -> Path | str:
    """The transformers folder of a model: the hub id for ``base``, ``best/`` beside a run's ``best-ct2/``."""
    return MODEL if name == "base" else path.parent / "best"


def accuracy_row(models: dict[str, Path], data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``asrtune eval`` (ct2 engine, greedy, its defaults) of every model on speechocean762 test and
    librispeech-test-clean-40: normalised WER with counts and 95 % CI; tuned models are also
    compared pairwise with ``tuned-plain`` (the recipe without the new options)."""
    from asrtune.evaluation.pipeline import evaluate
    from asrtune.inference.options import RecognizerOptions

    sets = {"speechocean762-test": data / "speechocean762" / "test.jsonl",
            "librispeech-test-clean-40": data / "librispeech-test-clean-40" / "manifest.jsonl"}
    reports = Path(args.runs) / "reports"
    options = RecognizerOptions(engine="ct2", threads=args.threads)
    out: dict[str, Any] = {"engine": "ct2", "beam_size": options.beam_size, "normaliser": "whisper-en"}
    for name, path in models.items():
        for set_name, manifest in sets.items():
            plain = reports / f"tuned-plain-{set_name}"
            compare = plain if name not in ("base", "tuned-plain") and (plain / "report.json").is_file() else None
            report = evaluate(path, manifest, reports / f"{name}-{set_name}", options, compare=compare, progress=False)
            norm, ci = report.normalized, report.confidence_interval.normalized
            row = {"wer": round(100 * norm.wer, 2), "errors": norm.errors, "ref_words": norm.ref_words,
                   "ci95": [round(100 * ci.low, 2), round(100 * ci.high, 2)]}
            if report.compare is not None:
                row["vs_tuned_plain"] = report.compare.normalized.to_dict()
            out[f"{name}/{set_name}"] = row
    return out


def silence_row(models: dict[str, Path], data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The hallucination clips through asrtune's own paths, both engines: ``transcribe`` (VAD on
    every file, then the no-speech/log-probability rule) and the model alone (every clip decoded,
    only the rule): how many give any text."""
    from asrtune.inference import load_recognizer
    from asrtune.training.no_speech import no_speech_clip
    from asrtune.transcription.longform import transcribe_audio

    clips = [no_speech_clip(HALLUCINATION_SEED, i) for i in range(HALLUCINATION_CLIPS)]
    out: dict[str, Any] = {"clips": len(clips)}
    for name, path in models.items():
        for engine, folder in (("ct2", path), ("hf", hf_folder(name, path))):
            recognizer = load_recognizer(str(folder), engine=engine, threads=args.threads)
            texts = {"transcribe": [" ".join(s.text for s in transcribe_audio(recognizer, c.samples)).strip() for c in clips],
                     "no-vad": [h.text.strip() for h in recognizer.decode([c.samples for c in clips])]}
            for path_name, said in texts.items():
                out[f"{name}/{engine}/{path_name}/non_empty"] = sum(bool(t) for t in said)
                out[f"{name}/{engine}/{path_name}/examples"] = sorted({t for t in said if t})[:5]
    return out


if __name__ == "__main__":
    sys.exit(main())
