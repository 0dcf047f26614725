"""``asrtune train``: fine-tune a model on manifests (thin layer over ``asrtune.training.train``).

Every option can also be given in a YAML file (``--config``) under the same name with ``-`` or
``_``; the command line wins over the file, the file over the defaults. With ``--resume RUN_DIR``
the run's own ``config.yaml`` is the starting point, so only what changes needs repeating.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from asrtune.cli import add_subparser

DESCRIPTION = """\
Fine-tune Whisper (frozen encoder by default) or a wav2vec2-family CTC model on JSONL manifests.

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

# (option, type, help). Defaults come from TrainConfig; argparse's own defaults stay None so
# that only options the user actually typed override the YAML file.
OPTIONS: list[tuple[str, object, str]] = [
    ("--model", str, "hub id, local model folder, or a training run dir"),
    ("--train", "append", "training manifest (repeat for several; see --weights)"),
    ("--weights", "floats", "sampling weights of the --train manifests, e.g. 0.9,0.1 (replay)"),
    ("--dev", str, "dev manifest: WER every --eval-every steps picks best/"),
    ("--out", str, "run directory"),
    ("--freeze", str, "freezing preset: auto (encoder for Whisper, feature-encoder for CTC), encoder, feature-encoder, none"),
    ("--adapter", str, "none, or lora: train LoRA adapters (merged on export)"),
    ("--lora-r", int, "LoRA rank"),
    ("--lora-alpha", int, "LoRA alpha"),
    ("--lora-dropout", float, "LoRA dropout"),
    ("--freeze-token-embeddings", "bool", "keep the (output-tied) token embeddings fixed: faster, less forgetting"),
    ("--unfreeze-after", int, "gradual unfreezing: after this many steps ..."),
    ("--unfreeze-top-layers", int, "... make the top K encoder layers trainable"),
    ("--encoder-lr", float, "learning rate of unfrozen encoder layers (default lr/10)"),
    ("--max-steps", int, "optimiser steps to train"),
    ("--epochs", float, "epochs to train (default 3 when --max-steps is not given)"),
    ("--max-train-minutes", float, "stop after this much wall time (then evaluate and save)"),
    ("--batch-size", int, "utterances per step and process"),
    ("--grad-accum", int, "gradient accumulation micro-batches per step"),
    ("--lr", float, "peak learning rate"),
    ("--weight-decay", float, "AdamW weight decay (matrices only)"),
    ("--warmup-steps", int, "linear warm-up steps"),
    ("--lr-schedule", str, "linear, cosine or constant after warm-up"),
    ("--max-grad-norm", float, "gradient clipping norm"),
    ("--precision", str, "auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, bf16, fp16"),
    ("--gradient-checkpointing", "bool", "recompute activations to save memory"),
    ("--seed", int, "random seed"),
    ("--text-policy", str, "sentence, keep, lower, normalize (see above)"),
    ("--language", str, "language of multilingual models (default en)"),
    ("--task", str, "transcribe or translate"),
    ("--spec-augment", "bool", "SpecAugment on log-mel features (disables the cache)"),
    ("--speed-perturb", "bool", "speed perturbation 0.9/1.0/1.1 (disables the cache)"),
    ("--noise-snr-db", float, "add white noise at this SNR (disables the cache)"),
    ("--extend-vocab", "bool", "CTC: add transcript characters the model's vocabulary lacks (new CTC-head rows)"),
    ("--char-map", str, "CTC: rewrite/drop characters before training, e.g. \"é=e,’=',—=\" (empty right side drops)"),
    ("--mask-time-prob", float, "CTC SpecAugment (with --spec-augment): share of frames masked in time"),
    ("--mask-time-length", int, "CTC SpecAugment: frames per time mask"),
    ("--mask-feature-prob", float, "CTC SpecAugment: share of feature channels masked"),
    ("--group-by-duration", "bool", "batch utterances of similar duration to cut padding (default: on for CTC)"),
    ("--cache", str, "auto (cache encoder outputs when possible) or off"),
    ("--cache-dir", str, "encoder-output cache folder (default: the asrtune cache)"),
    ("--eval-every", int, "steps between dev evaluations"),
    ("--eval-batch-size", int, "batch size of dev decoding and cache building"),
    ("--patience", int, "early stopping: evaluations without improvement"),
    ("--save-every", int, "steps between resumable checkpoints"),
    ("--log-every", int, "steps between metrics.jsonl lines"),
    ("--divergence-factor", float, "stop when the smoothed loss exceeds this multiple of its best (and has risen by over 0.5 nats)"),
    ("--eval-sets", "list", "after training: base vs tuned WER on these manifests (comma-separated)"),
    ("--export-ct2", "bool", "write a CTranslate2 int8 copy of best/ to RUN_DIR/best-ct2"),
    ("--device", str, "auto, cpu, cuda, cuda:N"),
    ("--num-workers", int, "threads that decode, resample and augment audio in parallel with each other (0: in the training thread)"),
    ("--threads", int, "torch CPU threads"),
    ("--progress", "bool", "show progress bars"),
    ("--resume", str, "continue the run in this run dir"),
    ("--force", "bool", "resume despite a changed config / reuse a non-empty --out"),
]


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "train", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("--config", help="YAML file of options (same names); command-line options win")
    for option, kind, help_text in OPTIONS:
        if kind == "append":
            p.add_argument(option, action="append", default=None, help=help_text)
        elif kind == "bool":
            p.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind in ("floats", "list"):
            p.add_argument(option, default=None, help=help_text)
        else:
            p.add_argument(option, type=kind, default=None, help=help_text)
    p.add_argument("--json", action="store_true", help="print the run result as JSON at the end")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """Defaults < resumed run's config.yaml < --config YAML < command line."""
    from pathlib import Path

    from asrtune.errors import ConfigError
    from asrtune.training.config import TrainConfig, load_yaml_config

    config = TrainConfig()
    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume {args.resume}: not a training run dir (no config.yaml)")
        config.update(load_yaml_config(saved), source=str(saved))
        config.resume, config.force = None, False
    if args.config:
        config.update(load_yaml_config(args.config), source=f"--config {args.config}")
    given = {}
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            given[field.name] = value
    config.update(given, source="command line")
    return config


def run(args: argparse.Namespace) -> int:
    from asrtune.training import train

    result = train(config_from_args(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    return 0
