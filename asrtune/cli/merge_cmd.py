"""`asrtune merge`: interpolate a tuned model's weights with its base model's (WiSE-FT)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asrtune.cli import add_subparser
from asrtune.errors import ConfigError
from asrtune.fileio import check_replaceable_folder
from asrtune.models.interpolate import base_model_of, check_alpha, interpolate_folders
from asrtune.models.registry import resolve_model

DESCRIPTION = """\
Write a model whose weights lie on the straight line between the base model and a fine-tuned
copy of it: (1 - alpha) * base + alpha * tuned (WiSE-FT, Wortsman et al. 2022). alpha 1 is the
tuned model, 0 the base. A fine-tune that forgot general speech (a guard or a general test set
got worse) often keeps most of its domain gain at alpha 0.5-0.75 with much less forgetting:
score a few alphas with `asrtune eval` on your domain dev set and a general one, or let
`asrtune train --merge-alphas` do it at the end of a run.

TUNED is a model folder or a training run (its best/ is used; name RUN/final for the last
weights). The base is read from the folder's asrtune_training.json unless --base is given.
OUT gets the tuned folder's config, processor and generation config (alignment heads included)
and the interpolated weights, atomically; asrtune_merge.json records base, tuned and alpha.
"""

EXAMPLES = """\
  asrtune merge runs/acc/final --alpha 0.5 --out models/acc-wise-0.5
  asrtune merge models/acc --base openai/whisper-tiny.en --alpha 0.7 --out models/acc-0.7
  asrtune eval --model models/acc-wise-0.5 --manifest data/dev.jsonl --out reports/wise-0.5
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "merge", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("tuned", metavar="TUNED", help="the fine-tuned model: folder or training run")
    p.add_argument("--alpha", type=float, required=True, default=argparse.SUPPRESS,
                   help="weight of the tuned model: 0 = the base model, 1 = the tuned model")
    p.add_argument("--base", default=argparse.SUPPRESS,
                   help="the model TUNED was trained from (default: the one TUNED's asrtune_training.json names)")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, metavar="DIR", help="output model folder (replaced only once the new one is complete)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it already holds files")
    p.set_defaults(func=run)


def run(args) -> int:
    check_alpha(args.alpha)
    out = Path(args.out).expanduser()
    check_replaceable_folder(out, "--out", args.force)
    tuned = resolve_model(args.tuned)
    base_name = getattr(args, "base", None) or base_model_of(tuned.path)
    if base_name is None:
        raise ConfigError(f"{tuned.path}: no asrtune_training.json names its base model; give --base")
    base = resolve_model(base_name)
    if base.family != tuned.family:
        raise ConfigError(f"--base {base_name} is a {base.family} model and {args.tuned} a {tuned.family} model")
    if base.path.resolve() == tuned.path.resolve():
        raise ConfigError(f"--base {base_name} and {args.tuned} are the same model folder ({tuned.path})")
    interpolate_folders(base.path, tuned.path, args.alpha, out, base_name=base_name)
    print(f"merged (1 - {args.alpha:g}) x {base_name} + {args.alpha:g} x {tuned.path} -> {out}")
    return 0
