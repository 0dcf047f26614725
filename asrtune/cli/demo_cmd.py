"""`asrtune demo`: zero-shot eval, fine-tune, eval again, HTML report - on the shipped corpus or your data."""

from __future__ import annotations

from asrtune.cli import add_subparser
from asrtune.demo import DemoConfig, run_demo
from asrtune.options import add_options, given_options, update_options

DESCRIPTION = """\
See asrtune do its main job end to end in ~12 minutes on 2 CPU cores, offline:

  1. speak the shipped clinic-dictation corpus (manifests/clinic: drug names, conditions,
     tests) with eSpeak NG - training sentences in 5 voices, held-out sentences (same terms,
     new sentences) in 3 voices never used for training;
  2. evaluate Whisper tiny.en zero-shot on the held-out set;
  3. fine-tune it with the encoder frozen (decoder only, cached encoder outputs);
  4. evaluate again and compare (paired bootstrap);
  5. write OUT/report.html, OUT/summary.md and OUT/summary.json and print the before/after table
     (WER and domain-term recall).

With --manifest/--dev/--test the same flow runs on your own audio manifests instead (give
--terms for term recall). Term biasing is off in both evaluations, so the gain is fine-tuning's.
"""

EXAMPLES = """\
  asrtune demo
  asrtune demo --out demo_output --max-train-minutes 8
  asrtune demo --manifest data/train.jsonl --dev data/dev.jsonl --test data/test.jsonl --terms terms.txt
  asrtune demo --corpus my_domain/ --model openai/whisper-base    # my_domain/{train,heldout,terms}.txt
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "demo", summary, DESCRIPTION, EXAMPLES)
    add_options(p, DemoConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    config = update_options(DemoConfig(), given_options(DemoConfig, args), "command line")
    result = run_demo(config)
    print()
    print(result.table)
    print()
    print(f"report: {result.paths['report_html']}  (details: {result.paths['tuned_report']}, summary: {result.paths['summary_md']})")
    return 0
