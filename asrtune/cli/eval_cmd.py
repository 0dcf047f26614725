"""`asrtune eval`: decode test manifests and write a WER report people can trust."""

from __future__ import annotations

import argparse
import os

from asrtune.cli import add_subparser
from asrtune.errors import ConfigError
from asrtune.evaluation.pipeline import evaluate, score_file
from asrtune.evaluation.report import format_table
from asrtune.inference.options import RecognizerOptions
from asrtune.options import add_options, given_options
from asrtune.text.normalizers import NORMALIZER_NAMES

DESCRIPTION = """\
Decode one or more test manifests with a model and write a report folder:
report.json (all numbers), utterances.jsonl (per-utterance ref/hyp/alignment), report.md and a
self-contained report.html with plots.

Every score is given twice: orthographic (raw strings, whitespace collapsed only) and
normalised with a named, versioned normaliser (default whisper-en: Whisper's English
normaliser, so "fifty" = "50" and "it's" = "it is"). Each comes with substitution, deletion and
insertion counts, CER, and a 95% bootstrap confidence interval. Extra manifest fields (speaker,
age, gender, ...) get WER breakdowns; empty, overlong and looping hypotheses are flagged.
--compare runs a paired bootstrap against an earlier report (difference, CI, p-value).
--terms only scores a term list (recall/precision); it never changes decoding. To decode with
term biasing, give --bias-terms (a decoding option, recorded in report.json under model.decoding).

Recordings longer than 30 s are decoded as `asrtune transcribe` decodes them (cut at pauses by
Silero VAD, segments batched) and the whole transcript is scored against the reference; their
lines in utterances.jsonl carry the segments. Shorter clips are decoded whole, in batches.

--hypotheses FILE.jsonl scores transcripts any other system made, with no model (give either
--model or --hypotheses; decoding options are refused with it): one JSON object per utterance
with "id" (asrtune's id: the audio path, @OFFSET for a segment; or the manifest's id/utt_id) or
"audio_filepath" (+ "offset"), and "text" (or "hyp"/"hypothesis"). A report's utterances.jsonl
and the transcripts.jsonl of `asrtune transcribe` are read as they are. Every manifest utterance
needs exactly one hypothesis. --name labels the system in the report; --compare works between
any two reports, model or file.
"""

EXAMPLES = """\
  asrtune eval --model openai/whisper-tiny.en --manifest data/test.jsonl --out reports/base
  asrtune eval --model runs/accent/best --manifest data/test.jsonl --out reports/tuned --compare reports/base
  asrtune eval --model runs/accent --manifest test.jsonl --manifest librispeech.jsonl --out reports/both --engine ct2
  asrtune eval --model openai/whisper-tiny.en --manifest test.jsonl --out reports/terms --terms terms.txt --limit 50
  asrtune eval --model runs/accent --manifest test.jsonl --out reports/biased --terms terms.txt --bias-terms terms.txt
  asrtune eval --hypotheses vendor.jsonl --name vendor-x --manifest test.jsonl --out reports/vendor --compare reports/tuned
  asrtune eval --model openai/whisper-tiny.en --manifest podcasts.jsonl --out reports/long   # hour-long files: long-form
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "eval", summary, DESCRIPTION, EXAMPLES)
    system = p.add_mutually_exclusive_group(required=True)
    system.add_argument("--model", default=argparse.SUPPRESS, help="hub id, local model folder, CTranslate2 folder or training run dir")
    system.add_argument("--hypotheses", metavar="JSONL", default=argparse.SUPPRESS,
                        help="score this file of transcripts from any system instead of decoding (no model)")
    p.add_argument("--name", metavar="LABEL", default=argparse.SUPPRESS,
                   help="label of the system in the report (default: the model or the hypotheses file name)")
    p.add_argument("--manifest", action="append", required=True, default=argparse.SUPPRESS, metavar="JSONL",
                   help="test manifest; repeat for several (reported per manifest and pooled)")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, metavar="DIR", help="report folder (created; report files replaced atomically)")
    p.add_argument("--normalizer", default="whisper-en", choices=NORMALIZER_NAMES,
                   help="text normaliser for the normalised score (basic: other languages; none: whitespace only)")
    p.add_argument("--terms", metavar="FILE", default=argparse.SUPPRESS,
                   help="domain terms, one per line (# comments): recall/precision per term; scoring only, "
                        "decoding is unchanged (biasing is --bias-terms)")
    p.add_argument("--compare", metavar="REPORT_DIR", default=argparse.SUPPRESS,
                   help="an earlier report folder: paired bootstrap of the difference")
    p.add_argument("--limit", type=int, metavar="N", default=argparse.SUPPRESS, help="only the first N utterances of each manifest")
    p.add_argument("--by", action="append", metavar="FIELD", default=argparse.SUPPRESS,
                   help="also break WER down by this manifest field (extra fields with few values are automatic)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for confidence intervals")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_options(p, RecognizerOptions)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.resamples < 100:
        raise ConfigError(f"--resamples must be >= 100 for a usable 95% interval, got {args.resamples}")
    decoding = given_options(RecognizerOptions, args)
    scoring = dict(
        normalizer=args.normalizer,
        terms=getattr(args, "terms", None),
        compare=getattr(args, "compare", None),
        limit=getattr(args, "limit", None),
        by_fields=getattr(args, "by", None),
        n_resamples=args.resamples,
        name=getattr(args, "name", None),
    )
    if hasattr(args, "hypotheses"):
        if decoding:
            flag = "--" + next(iter(decoding)).replace("_", "-")
            raise ConfigError(f"{flag} is a decoding option; --hypotheses scores a file and decodes nothing")
        report = score_file(args.hypotheses, args.manifest, args.out, **scoring)
    else:
        options = RecognizerOptions.from_dict(decoding, source="command line")
        report = evaluate(args.model, args.manifest, args.out, options, progress=not args.quiet, **scoring)
    print(format_table(report))
    print(f"report: {os.path.join(args.out, 'report.html')} (+ report.json, report.md, utterances.jsonl)")
    return 0
