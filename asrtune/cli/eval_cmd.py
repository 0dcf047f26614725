"""`asrtune eval`: decode test manifests and write a WER report people can trust."""

from __future__ import annotations

import os

from asrtune.cli import add_subparser
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
"""

EXAMPLES = """\
  asrtune eval --model openai/whisper-tiny.en --manifest data/test.jsonl --out reports/base
  asrtune eval --model runs/accent/best --manifest data/test.jsonl --out reports/tuned --compare reports/base
  asrtune eval --model runs/accent --manifest test.jsonl --manifest librispeech.jsonl --out reports/both --engine ct2
  asrtune eval --model openai/whisper-tiny.en --manifest test.jsonl --out reports/terms --terms terms.txt --limit 50
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "eval", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("--model", required=True, help="hub id, local model folder, CTranslate2 folder or training run dir")
    p.add_argument("--manifest", action="append", required=True, metavar="JSONL",
                   help="test manifest; repeat for several (reported per manifest and pooled)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder (created; report files replaced atomically)")
    p.add_argument("--normalizer", default="whisper-en", choices=NORMALIZER_NAMES,
                   help="text normaliser for the normalised score (basic: other languages; none: whitespace only)")
    p.add_argument("--terms", metavar="FILE", help="domain terms, one per line (# comments): recall/precision per term")
    p.add_argument("--no-term-bias", action="store_true",
                   help="score --terms without also biasing the decoder towards them")
    p.add_argument("--compare", metavar="REPORT_DIR", help="an earlier report folder: paired bootstrap of the difference")
    p.add_argument("--batch-size", type=int, default=16, help="utterances per decoding batch")
    p.add_argument("--engine", default="hf", choices=("hf", "ct2"), help="Whisper engine: transformers or CTranslate2")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--lm", metavar="DIR", help="n-gram LM folder (asrtune lm) for CTC beam search")
    p.add_argument("--beam-size", type=int, default=1, help="beam width (1 = greedy)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N utterances of each manifest")
    p.add_argument("--by", action="append", metavar="FIELD", default=None,
                   help="also break WER down by this manifest field (extra fields with few values are automatic)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for confidence intervals")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from asrtune.errors import ConfigError
    from asrtune.evaluation.pipeline import evaluate
    from asrtune.evaluation.report import format_table

    if args.resamples < 100:
        raise ConfigError(f"--resamples must be >= 100 for a usable 95% interval, got {args.resamples}")
    summary = evaluate(
        args.model,
        args.manifest,
        args.out,
        normalizer=args.normalizer,
        terms=args.terms,
        compare=args.compare,
        batch_size=args.batch_size,
        engine=args.engine,
        lm=args.lm,
        beam_size=args.beam_size,
        limit=args.limit,
        by_fields=args.by,
        device=args.device,
        bias_terms=not args.no_term_bias,
        n_resamples=args.resamples,
        progress=not args.quiet,
    )
    print(format_table(summary))
    print(f"report: {os.path.join(args.out, 'report.html')} (+ report.json, report.md, utterances.jsonl)")
    return 0
