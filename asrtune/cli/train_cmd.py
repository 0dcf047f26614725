"""``asrtune train``: fine-tune a model on manifests (thin layer over ``asrtune.training.train``).

Every option can also be given in a YAML file (``--config``) under the same name with ``-`` or
``_``; the command line wins over the file, the file over the defaults. With ``--resume RUN_DIR``
the run's own ``config.yaml`` is the starting point, so only what changes needs repeating.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asrtune.cli import add_subparser
from asrtune.errors import ConfigError
from asrtune.options import add_options, given_options
from asrtune.training import train
from asrtune.training.config import TrainConfig, load_yaml_config

DESCRIPTION = """\
Fine-tune Whisper (frozen encoder by default) or a wav2vec2-family CTC model on JSONL manifests.
Every option below is also a key of the --config YAML file (--max-steps = max_steps);
docs/options.md lists them all.

With the encoder frozen and no input augmentation, encoder outputs are computed once per
utterance and cached on disk (float16, memory-mapped) under the asrtune cache, so later epochs
and later runs only pay for the decoder. The run directory gets config.yaml, metrics.jsonl,
train.log, best/ and final/ (complete model folders usable by `asrtune eval` / `asrtune
transcribe`), checkpoint/ (resumable) and learning_curve.png.

Freezing presets (--freeze): auto (default) = encoder for Whisper, feature-encoder for CTC;
encoder = whole encoder frozen, decoder trained (CTC: all but the head and the top
--unfreeze-top-layers K layers); feature-encoder = only the convolutional stem frozen;
none = full fine-tune.
Text policy (--text-policy): sentence = ALL-CAPS transcripts become sentence case (default);
keep = as written; lower = lower case; normalize = Whisper English normaliser."""

EXAMPLES = """\
  asrtune train --model openai/whisper-tiny.en --train data/train.jsonl --dev data/dev.jsonl --out runs/acc
  asrtune train --config train.yaml --max-steps 2000 --out runs/acc2
  asrtune train --model openai/whisper-base --train domain.jsonl --train general.jsonl --weights 0.9,0.1 \\
      --dev dev.jsonl --out runs/replay --adapter lora --eval-sets dev.jsonl,general_test.jsonl
  asrtune train --resume runs/acc --max-steps 4000       # continue (after a crash, or for longer)
"""

def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "train", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("--config", metavar="YAML", default=argparse.SUPPRESS, help="YAML file of options (same names); command-line options win")
    p.add_argument("--json", action="store_true", help="print the run result as JSON at the end")
    add_options(p, TrainConfig)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """Defaults < resumed run's config.yaml < --config YAML < command line."""
    config = TrainConfig()
    resume = getattr(args, "resume", None)
    if resume:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume {resume}: not a training run dir (no config.yaml)")
        config.update(load_yaml_config(saved), source=str(saved))
        config.resume, config.force = None, False
    yaml_file = getattr(args, "config", None)
    if yaml_file:
        config.update(load_yaml_config(yaml_file), source=f"--config {yaml_file}")
    config.update(given_options(TrainConfig, args), source="command line")
    return config


def run(args: argparse.Namespace) -> int:
    result = train(config_from_args(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    return 0
