"""`asrtune demo`: zero-shot eval, fine-tune, eval again, HTML report - on the shipped corpus or your data."""

from __future__ import annotations

from asrtune.cli import add_subparser
from asrtune.demo import DemoConfig, run_demo

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
    d = DemoConfig()
    p = add_subparser(subparsers, "demo", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("--out", default=d.out, help="output folder")
    p.add_argument("--model", default=d.model, help="Whisper model: hub id, local folder or run dir")
    p.add_argument("--manifest", default=None, help="your training manifest (with --dev and --test) instead of the synthesised corpus")
    p.add_argument("--dev", default=None, help="your dev manifest (picks the best checkpoint)")
    p.add_argument("--test", default=None, help="your test manifest (zero-shot vs tuned)")
    p.add_argument("--corpus", default=None, help="folder with train.txt, heldout.txt, terms.txt to synthesise (default: manifests/clinic)")
    p.add_argument("--terms", default=None, help="term list for term recall (default: the corpus's terms.txt)")
    p.add_argument("--max-train-minutes", type=float, default=d.max_train_minutes, help="training time budget (after the encoder cache is built)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (whichever comes first)")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (constant after warm-up)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="utterances (clips) per step")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="dev evaluation every N steps")
    p.add_argument("--variants-per-sentence", type=int, default=d.variants_per_sentence, help="training renderings per sentence")
    p.add_argument("--max-sentences", type=int, default=None, help="use only the first N training and held-out sentences (quick trial)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    config = DemoConfig(
        out=args.out, model=args.model, manifest=args.manifest, dev=args.dev, test=args.test, corpus=args.corpus,
        terms=args.terms, max_train_minutes=args.max_train_minutes, max_steps=args.max_steps, lr=args.lr,
        batch_size=args.batch_size, eval_every=args.eval_every, variants_per_sentence=args.variants_per_sentence,
        max_sentences=args.max_sentences, threads=args.threads, seed=args.seed, progress=args.progress,
    )  # fmt: skip
    result = run_demo(config)
    print()
    print(result.table)
    print()
    print(f"report: {result.paths['report_html']}  (details: {result.paths['tuned_report']}, summary: {result.paths['summary_md']})")
    return 0
