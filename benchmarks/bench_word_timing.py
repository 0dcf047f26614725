#!/usr/bin/env python
"""Word-timestamp accuracy on the long-form file, per engine (and any --model).

``--data``'s longform/ holds the 38 LibriSpeech test-clean utterances of speaker 1089 joined
in utterance-id order with 0.6 s of silence, so where each utterance lies in the file is known
to the sample (the utterances are read from librispeech-test-clean-40). Inside an utterance the
first word starts where the speech starts and the last word ends where it ends; those two points
are found from the utterance's own energy (first and last 10 ms frame within ``SPEECH_DB`` of its
loud frames). Each utterance's hypothesis words (those centred in its stretch of the file) are
timed with ``transcribe_audio(..., word_timestamps=True)``, and the error of the first word's
start and the last word's end against those points is reported: median and 90th percentile over
the 76 boundaries.

    python -m benchmarks.bench_word_timing                       # tiny.en, hf and ct2
    python -m benchmarks.bench_word_timing --model openai/whisper-base --engines ct2
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.harness import data_root, describe_hardware, parser, timed, write_result

LONGFORM = "longform/librispeech-1089-134686.flac"
UTTERANCES = "librispeech-test-clean-40/manifest.jsonl"
SPEAKER = "1089"
PAUSE_S = 0.6  # s of silence between utterances in the long-form file
FRAME_S = 0.01  # s: energy frame for the reference speech boundaries
SPEECH_DB = 35.0  # dB under the utterance's loud frames (99th percentile) that still counts as speech
MATCH_MARGIN_S = 0.3  # s: a word centred this far outside an utterance (in the pause) still belongs to it


@dataclass(frozen=True)
class Reference:
    """One utterance in the long-form file: its stretch and where its speech starts and ends (seconds)."""

    utt_id: str
    start: float
    end: float
    speech_start: float
    speech_end: float


def speech_bounds(audio: np.ndarray, sample_rate: int = 16_000) -> tuple[float, float]:
    """First and last ``FRAME_S`` frame within ``SPEECH_DB`` of the clip's loud frames (seconds)."""
    frame = int(FRAME_S * sample_rate)
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-8))
    loud = np.flatnonzero(db > np.percentile(db, 99) - SPEECH_DB)
    return loud[0] * FRAME_S, (loud[-1] + 1) * FRAME_S


def references(shared: Path) -> list[Reference]:
    """The utterances of the long-form file, in order, with sample-exact positions."""
    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio

    manifest = shared / UTTERANCES
    utts = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    utts = sorted((u for u in utts if u.get("speaker") == SPEAKER), key=lambda u: u["utt_id"])
    refs, position = [], 0
    for u in utts:
        audio = load_audio(manifest.parent / u["audio_filepath"])
        start = position / SAMPLE_RATE_HZ
        a, b = speech_bounds(audio, SAMPLE_RATE_HZ)
        refs.append(Reference(u["utt_id"], start, start + len(audio) / SAMPLE_RATE_HZ, start + a, start + b))
        position += len(audio) + int(round(PAUSE_S * SAMPLE_RATE_HZ))
    return refs


def boundary_errors(words, refs: list[Reference]) -> dict[str, list[float]]:
    """|first word start - speech start| and |last word end - speech end| per utterance (seconds);
    an utterance with no word centred in it counts as missing."""
    starts, ends, missing = [], [], 0
    for ref in refs:
        mine = [w for w in words if ref.start - MATCH_MARGIN_S <= (w.start + w.end) / 2 <= ref.end + MATCH_MARGIN_S]
        if not mine:
            missing += 1
            continue
        starts.append(abs(mine[0].start - ref.speech_start))
        ends.append(abs(mine[-1].end - ref.speech_end))
    return {"start": starts, "end": ends, "missing": missing}


def summarise(errors: dict) -> dict:
    both = np.array(errors["start"] + errors["end"])
    return {
        "median_s": round(float(np.median(both)), 3),
        "p90_s": round(float(np.percentile(both, 90)), 3),
        "start_median_s": round(float(np.median(errors["start"])), 3),
        "end_median_s": round(float(np.median(errors["end"])), 3),
        "boundaries": int(both.size),
        "missing_utterances": errors["missing"],
    }


def measure(model: str, engine: str, refs: list[Reference], shared: Path) -> dict:
    from asrtune.data.audio import load_audio
    from asrtune.inference import load_recognizer
    from asrtune.transcription.longform import transcribe_audio

    recognizer = load_recognizer(model, engine=engine)
    audio = load_audio(shared / LONGFORM)
    with timed() as elapsed:
        segments = transcribe_audio(recognizer, audio, word_timestamps=True)
    wall = elapsed.seconds
    words = [w for s in segments for w in s.words]
    return {"model": model, "engine": engine, "words": len(words), "wall_s": round(wall, 1),
            **summarise(boundary_errors(words, refs))}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, out="word_timing.json")
    p.add_argument("--model", action="append", help="model(s) to measure (default: openai/whisper-tiny.en)")
    p.add_argument("--engines", default="hf,ct2", help="comma-separated Whisper engines")
    args = p.parse_args(argv)
    shared = data_root(args)
    refs = references(shared)
    rows = [measure(m, e, refs, shared) for m in args.model or ["openai/whisper-tiny.en"] for e in args.engines.split(",")]
    print("| model | engine | words | median error (s) | 90th pct (s) | start median | end median | missing utts | wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['engine']} | {r['words']} | {r['median_s']:.3f} | {r['p90_s']:.3f} | "
              f"{r['start_median_s']:.3f} | {r['end_median_s']:.3f} | {r['missing_utterances']} | {r['wall_s']} |")
    write_result(args.out, {"utterances": len(refs), "boundaries_per_model": 2 * len(refs), "hardware": describe_hardware(),
                            "results": rows})
    print(f"-> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
