"""`asrtune manifest align`: long recordings + full transcripts -> a manifest of training segments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrtune.alignment.long_audio import WINDOW_S, align_to_manifest, collect_recordings
from asrtune.alignment.segmenter import SegmentRules
from asrtune.cli import HelpFormatter
from asrtune.errors import ConfigError
from asrtune.inference import load_recognizer
from asrtune.inference.options import RecognizerOptions
from asrtune.options import add_options, given_options, update_options

DESCRIPTION = """\
Cut long recordings with full transcripts into training segments of at most 30 s and 448
Whisper tokens. The audio is decoded in 10-minute windows with word timestamps, the transcript
is aligned to the recognised words, and segments are cut at pauses. Each segment keeps the
transcript's own text (casing, punctuation) and its match score. Stretches where transcript and
audio disagree (text the speaker skipped, speech the transcript lacks: ads, crosstalk, music)
are left out and listed with times and reason in rejected.jsonl beside --out. Where the words
disagree only because the recogniser misheard (accents, noise, jargon), a forced alignment of
the transcript on that audio says so and the stretch is kept (--max-logprob-gap). Transcript
words before the first or after the last word heard in the audio that nothing there matches
(a title, a credit line) are rejected too, however few.

Inputs:
  AUDIO TRANSCRIPT   TRANSCRIPT is plain UTF-8 text, or a JSONL manifest: then its line(s) whose
                     audio_filepath is AUDIO (relative paths resolve against the manifest's
                     folder) give the transcript - one line's text, or the texts of segment
                     lines joined in offset order; no such line is an error
  MANIFEST.jsonl     one line per recording (text = the full transcript)
  FOLDER             audio files with same-named .txt transcripts
A transcript with no words (empty, "...", "!!!") is an error; nothing is written.
"""

EPILOG = """\
examples:
  asrtune manifest align episode1.mp3 episode1.txt --model openai/whisper-tiny.en --out data/ep1.jsonl
  asrtune manifest align episodes/ --model openai/whisper-base --out data/episodes.jsonl --cut data/segments/
  asrtune manifest align long.jsonl --model runs/acc --out data/aligned.jsonl --min-score 0.8
"""


def add_align_parser(sub) -> None:
    """Add ``align`` to the ``asrtune manifest`` actions."""
    rules = SegmentRules()
    p = sub.add_parser("align", help="long recordings + full transcripts -> <= 30 s training segments (rejects mismatches)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="AUDIO TRANSCRIPT, or MANIFEST.jsonl, or FOLDER")
    p.add_argument("--model", required=True, help="recogniser giving the word times (Whisper or CTC)")
    p.add_argument("--out", required=True, help="output segment manifest (.jsonl); rejected.jsonl is written beside it")
    p.add_argument("--cut", metavar="DIR", help="write each segment as its own FLAC in DIR (the manifest then points at them)")
    p.add_argument("--window", type=float, default=WINDOW_S, help="seconds of audio decoded at once (bounds memory)")
    p.add_argument("--vad", default="silero", choices=["silero", "energy"], help="voice-activity detector cutting each window")
    p.add_argument("--max-duration", type=float, default=rules.max_duration_s, metavar="SECONDS",
                   help="longest segment (Whisper's window is 30 s; shorter segments, cut at the largest pauses, "
                        "match a test set of short clips)")
    p.add_argument("--max-unmatched-words", type=int, default=rules.max_unmatched_words,
                   help="a longer run of transcript words the recogniser did not hear is rejected")
    p.add_argument("--max-extra-words", type=int, default=rules.max_extra_words,
                   help="a longer run of recognised words missing from the transcript is cut out")
    p.add_argument("--min-score", type=float, default=rules.min_score, help="segments whose share of exactly matched words is lower are rejected")
    p.add_argument("--pad", type=float, default=rules.pad_s, help="seconds kept before the first and after the last word (up to mid-pause)")
    p.add_argument("--max-logprob-gap", type=_gap, default=rules.max_logprob_gap, metavar="NATS",
                   help="second opinion on a rejected stretch with recognised speech (Whisper): kept when the model finds "
                        "the transcript at most this many nats per token less likely than its own hypothesis there "
                        "(misheard, not wrong); 'off' skips the check")
    add_options(p, RecognizerOptions, exclude=("bias_terms", "term_boost"))
    p.set_defaults(func=run_align)


def run_align(args: argparse.Namespace) -> int:
    rules = SegmentRules(max_duration_s=args.max_duration, max_unmatched_words=args.max_unmatched_words, max_extra_words=args.max_extra_words,
                         min_score=args.min_score, pad_s=args.pad, max_logprob_gap=args.max_logprob_gap)
    try:
        rules.check()
    except ConfigError as e:  # name the flag, not the field
        message = str(e)
        for field, flag in RULE_FLAGS.items():
            message = message.replace(field, flag)
        raise ConfigError(message) from None
    recordings = collect_recordings(args.inputs)
    _check_before_model(args)  # a typo should cost a second, not a model load
    opts = update_options(RecognizerOptions(), given_options(RecognizerOptions, args), "command line").validate()
    recognizer = load_recognizer(args.model, engine=opts.engine, device=opts.device, batch_size=opts.batch_size, prompt=opts.prompt,
                                 language=opts.language, lm=opts.lm, beam_size=opts.beam_size, compute_type=opts.compute_type,
                                 features=opts.features, threads=opts.threads)
    summary = align_to_manifest(recognizer, recordings, args.out, args.cut, rules, window_s=args.window, vad=args.vad, progress=True)
    print(f"{summary.line()} -> {args.out}")
    if summary.rejected:
        print(f"rejected stretches listed in {Path(args.out).with_name('rejected.jsonl')}", file=sys.stderr)
    return 0


RULE_FLAGS = {"max_duration_s": "--max-duration", "max_unmatched_words": "--max-unmatched-words",
              "max_extra_words": "--max-extra-words", "min_score": "--min-score", "pad_s": "--pad",
              "max_logprob_gap": "--max-logprob-gap"}


def _gap(value: str) -> float | None:
    """``--max-logprob-gap``: a number of nats >= 0, or ``off``."""
    if value.strip().lower() in ("off", "none"):
        return None
    try:
        gap = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of nats per token or 'off', got {value!r}") from None
    if not gap >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (or 'off'), got {value}")
    return gap


def _check_before_model(args: argparse.Namespace) -> None:
    out, cut = args.out, args.cut
    if args.window <= 0:
        raise ConfigError(f"--window must be > 0 seconds, got {args.window}")
    if Path(out).suffix not in (".jsonl", ".json") or Path(out).is_dir():
        raise ConfigError(f"--out {out}: the output is a JSONL manifest; give a .jsonl path")
    if cut and Path(cut).exists() and not Path(cut).is_dir():
        raise ConfigError(f"--cut {cut}: is a file; give a folder for the segment FLACs")
