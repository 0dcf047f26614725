#!/usr/bin/env python
"""Benchmark: is a fine-tune on ``asrtune manifest align`` segments as good as one on hand-cut clips?

speechocean762 train (1200 read utterances, 60 speakers) is the hand-cut data. Each speaker's 20
utterances are joined, in manifest order with ``GAP_S`` of silence between them, into one long
recording with a one-paragraph transcript: what a user with whole recordings and their
transcripts has. ``asrtune manifest align`` (Whisper tiny.en, ct2 engine) cuts those back into
training segments of at most 30 s. Whisper tiny.en is then tuned twice with one recipe (the
``mixed`` recipe of :mod:`benchmarks.recipes`, which ``bench_timestamps`` tunes too: timestamp,
prompt and no-speech fractions at 0.5 / 0.3 / 0.05), and both are scored with ``asrtune eval`` (ct2, greedy) on speechocean762 test
(500 utterances of 25 other speakers), with a paired bootstrap of the difference.

Same budget: the aligned segments are ~6x longer than the clips, so the aligned run's batch holds
as many seconds of audio as the hand-cut run's 16 clips and it runs for as many seconds of audio
in all (the same number of epochs over the same 80 minutes of speech).

Rows (each updates ``--out``, default ``benchmarks/results/align_finetune.json``)::

    python -m benchmarks.bench_align_finetune --row build --row align   # long files, then align them
    python -m benchmarks.bench_align_finetune --row gap                 # the forced-alignment check's two distributions
    python -m benchmarks.bench_align_finetune --row tune-aligned        # the hand-cut run is bench_timestamps' tune-mixed
    python -m benchmarks.bench_align_finetune --row score
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import WORK, data_root, parser, save_row, timed
from benchmarks.recipes import MODEL, TUNES

GAP_S = 0.6  # s of silence between joined utterances, as in the shared long-form file
HANDCUT_BATCH = 16
ROWS = ("build", "gap", "align", "tune-aligned", "score")


def main() -> int:
    p = parser(__doc__, out="align_finetune.json")
    p.add_argument("--row", action="append", choices=ROWS, help="row(s) to run (default: all, in order)")
    p.add_argument("--work", type=Path, default=WORK / "align_finetune", help="long files, segments, the run (default: %(default)s)")
    p.add_argument("--handcut-run", type=Path, default=WORK / "timestamps_runs" / "mixed",
                   help="the hand-cut run (bench_timestamps --row tune-mixed; default: %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-segment-s", type=float, default=30.0, help="align: longest segment (manifest align --max-duration)")
    args = p.parse_args()
    data, work = data_root(args), Path(args.work)
    rows = {"build": build_row, "gap": gap_row, "align": align_row, "tune-aligned": tune_row, "score": score_row}
    for row in args.row or ROWS:
        with timed() as elapsed:
            result = rows[row](data, work, args)
        result["row_s"] = round(elapsed.seconds, 1)
        save_row(Path(args.out), row, result)
        print(json.dumps({row: result}, indent=2), flush=True)
    return 0


def build_row(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One FLAC + transcript per speaker of speechocean762 train, listed in ``long.jsonl``."""
    import numpy as np

    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio, write_flac
    from asrtune.data.manifest import Utterance, load_manifest, write_manifest

    by_speaker: dict[str, list] = defaultdict(list)
    for utt in load_manifest(data / "speechocean762" / "train.jsonl"):
        by_speaker[str(utt.speaker)].append(utt)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), dtype=np.float32)
    recordings = []
    for speaker, utts in sorted(by_speaker.items()):
        audio = np.concatenate([part for u in utts for part in (load_audio(u.audio_filepath), gap)][:-1])
        path = work / "long" / f"speaker-{speaker}.flac"
        write_flac(path, audio)
        recordings.append(Utterance(str(path), " ".join(u.text for u in utts), len(audio) / SAMPLE_RATE_HZ,
                                    extra={"speaker": speaker}))
    write_manifest(work / "long.jsonl", recordings, relative=False)
    return {"recordings": len(recordings), "minutes": round(sum(r.duration for r in recordings) / 60, 1),
            "gap_s": GAP_S, "utterances": sum(len(u) for u in by_speaker.values())}


def gap_row(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """How the forced-alignment check (``asrtune.alignment.verify``) separates misheard from wrong text.

    With the check off, every stretch the word match rejects that it could rescue is scored three
    ways on its own audio: the recogniser's hypothesis, the stretch's own transcript (correct
    text: the long files are built from the manifest) and the transcript of the next such stretch
    (wrong text of the same kind). Reported: both gap distributions and how many of each a
    threshold keeps.
    """
    import dataclasses

    import numpy as np

    from asrtune.alignment.limits import whisper_token_counter
    from asrtune.alignment.long_audio import collect_recordings, hypothesis_words
    from asrtune.alignment.segmenter import SegmentRules, segment_alignment, speech_limits
    from asrtune.alignment.text_align import align_text
    from asrtune.alignment.verify import _bounds, _rescuable, scoring_text
    from asrtune.data.audio import audio_info, load_audio
    from asrtune.inference import load_recognizer

    recognizer = load_recognizer(MODEL, engine="ct2", threads=args.threads)
    rules, count = dataclasses.replace(SegmentRules(), max_logprob_gap=None), whisper_token_counter()
    clips, texts = [], []
    for rec in collect_recordings([str(work / "long.jsonl")]):
        alignment = align_text(rec.transcript, hypothesis_words(recognizer, rec.audio))
        duration = audio_info(rec.audio)[0]
        _, rejected = segment_alignment(alignment, rec.audio, rules, count, duration)
        limits = speech_limits(alignment, duration)
        for r in (r for r in rejected if _rescuable(r, rules, count)):
            span = _bounds(r, alignment, rules, limits)
            if span is not None:
                clips.append(load_audio(rec.audio, offset=span[0], duration=span[1] - span[0]))
                texts.append(r.text)
    heard = [h.text for h in recognizer.decode(clips)]
    wrong = texts[1:] + texts[:1]
    n = len(clips)
    forced = recognizer.force_align(clips * 3, heard + [scoring_text(t) for t in texts] + [scoring_text(t) for t in wrong])
    hyp, own, other = (np.array([h.avg_logprob for h in forced[k * n : (k + 1) * n]]) for k in range(3))
    pos, neg = hyp - own, hyp - other
    keep = {f"{g:.1f}": {"own_kept": int((pos <= g).sum()), "wrong_kept": int((neg <= g).sum())}
            for g in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)}
    pct = lambda a: {str(q): round(float(np.percentile(a, q)), 2) for q in (5, 25, 50, 75, 95)}  # noqa: E731
    return {"stretches": n, "own_transcript_gap_percentiles": pct(pos), "wrong_transcript_gap_percentiles": pct(neg),
            "kept_at_gap": keep}


def align_row(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``asrtune manifest align long.jsonl --out aligned.jsonl`` (tiny.en, ct2), as a user runs it."""
    from asrtune.alignment.long_audio import align_to_manifest, collect_recordings
    from asrtune.alignment.segmenter import SegmentRules
    from asrtune.data.manifest import load_manifest
    from asrtune.inference import load_recognizer

    recognizer = load_recognizer(MODEL, engine="ct2", threads=args.threads)
    rules = SegmentRules(max_duration_s=args.max_segment_s)
    with timed() as elapsed:
        summary = align_to_manifest(recognizer, collect_recordings([str(work / "long.jsonl")]), work / "aligned.jsonl", rules=rules)
    seconds = elapsed.seconds
    segments = load_manifest(work / "aligned.jsonl")
    durations = sorted(u.duration for u in segments)
    return {"summary": summary.line(), "max_segment_s": args.max_segment_s, "segments": len(segments), "rejected": summary.rejected,
            "kept_speech_pct": round(100 * summary.kept_s / summary.audio_s, 1),
            "kept_words_pct": round(100 * summary.kept_words / max(summary.words, 1), 1),
            "segment_s": {"mean": round(sum(durations) / len(durations), 2), "min": durations[0], "max": durations[-1]},
            "align_s": round(seconds, 1), "rtf": round(seconds / summary.audio_s, 3)}


def tune_row(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The hand-cut run's recipe on the aligned segments, with the same audio per step and in all."""
    from asrtune.data.manifest import load_manifest
    from asrtune.training import TrainConfig, train

    handcut = json.loads((Path(args.handcut_run) / "result.json").read_text())
    handcut_cfg = _run_config(Path(args.handcut_run))
    clips = load_manifest(data / "speechocean762" / "train.jsonl")
    segments = load_manifest(work / "aligned.jsonl")
    mean_clip = sum(u.duration for u in clips) / len(clips)
    mean_segment = sum(u.duration for u in segments) / len(segments)
    batch = max(1, round(HANDCUT_BATCH * mean_clip / mean_segment))
    steps = round(handcut["steps"] * HANDCUT_BATCH * mean_clip / (batch * mean_segment))
    config = TrainConfig(model=MODEL, train=[str(work / "aligned.jsonl")], out=str(work / "run"), max_steps=steps,
                         batch_size=batch, lr=handcut_cfg["lr"], warmup_steps=handcut_cfg["warmup_steps"], export_ct2=True,
                         threads=args.threads, progress=False, force=True, **TUNES["mixed"])
    result = train(config)
    return {"steps": result.steps, "stopped": result.stopped, "batch_size": batch, "handcut_steps": handcut["steps"],
            "handcut_batch_size": HANDCUT_BATCH, "mean_clip_s": round(mean_clip, 2), "mean_segment_s": round(mean_segment, 2),
            "lr": handcut_cfg["lr"], **TUNES["mixed"]}


def score_row(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``asrtune eval`` of both tuned models on speechocean762 test; the aligned one paired with the hand-cut one."""
    from asrtune.evaluation.pipeline import evaluate
    from asrtune.evaluation.schema import EvalReport
    from asrtune.inference.options import RecognizerOptions

    test = data / "speechocean762" / "test.jsonl"
    options = RecognizerOptions(engine="ct2", threads=args.threads)
    out: dict[str, Any] = {"engine": "ct2", "beam_size": options.beam_size, "normaliser": "whisper-en", "set": "speechocean762 test"}
    handcut_report = work / "reports" / "handcut"
    for name, model, compare in (("handcut", Path(args.handcut_run) / "best-ct2", None),
                                 ("aligned", work / "run" / "best-ct2", handcut_report)):
        done = work / "reports" / name / "report.json"
        if name == "handcut" and done.is_file():  # the same model and options: its report stands
            report = EvalReport.from_json(done)
        else:
            report = evaluate(model, test, work / "reports" / name, options, compare=compare, progress=False)
        norm, ci = report.normalized, report.confidence_interval.normalized
        out[name] = {"wer": round(100 * norm.wer, 2), "errors": norm.errors, "ref_words": norm.ref_words,
                     "ci95": [round(100 * ci.low, 2), round(100 * ci.high, 2)]}
        if compare is not None and report.compare is not None:
            out["aligned_vs_handcut"] = report.compare.normalized.to_dict()
    return out


def _run_config(run: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


if __name__ == "__main__":
    sys.exit(main())
