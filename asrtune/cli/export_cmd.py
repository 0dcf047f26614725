"""`asrtune export`: a Whisper model (a run's best/ included) to CTranslate2, whisper.cpp, ONNX or openai-whisper."""

from __future__ import annotations

import argparse

from asrtune.cli import add_subparser
from asrtune.models.export_formats import FORMATS, QUANTIZATIONS
from asrtune.training.export import export_model

DESCRIPTION = f"""\
Write MODEL in the format another runtime loads, so a fine-tuned model runs where you deploy it:

  ct2             CTranslate2 folder for faster-whisper / WhisperX (int8 default; any CTranslate2
                  weight type: {', '.join(QUANTIZATIONS['ct2'][1:])})
  ggml            whisper.cpp model file ggml-model.bin (f16 default, q8_0, q5_0)
  onnx            ONNX Runtime encoder + decoder-with-past graphs (fp32 default, int8 dynamic quantisation)
  openai-whisper  model.pt for whisper.load_model() (fp32)

MODEL is anything asrtune resolves: a model folder, a training run (its best/), a faster-whisper
folder or a name such as openai/whisper-tiny.en. OUT gets the files, asrtune_export.json (format,
quantisation, source, alignment heads, suppress tokens) and a model card (README.md); it is
written atomically: a failed export leaves nothing behind. Check an export scores what its source
scored with `asrtune eval --engine ct2|whispercpp|onnx --model OUT` on your own test set.
Needs the optional runtimes: pip install 'asrtune[export]'.
"""

EXAMPLES = """\
  asrtune export runs/acc --to ggml --out exports/acc-ggml
  asrtune export runs/acc --to ggml --quantization q5_0 --out exports/acc-ggml-q5
  asrtune export runs/acc --to onnx --quantization int8 --out exports/acc-onnx-int8
  asrtune export openai/whisper-tiny.en --to openai-whisper --out exports/tiny-pt
  asrtune eval --model exports/acc-ggml --engine whispercpp --manifest data/test.jsonl --out reports/acc-ggml
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "export", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("model", metavar="MODEL", help="model folder, training run, or name (openai/whisper-tiny.en)")
    p.add_argument("--to", required=True, default=argparse.SUPPRESS, metavar="FORMAT",
                   help=f"target format: {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, metavar="DIR",
                   help="output folder (replaced only once the new one is complete)")
    p.add_argument("--quantization", default=argparse.SUPPRESS,
                   help="weight type of the export (default: ct2 int8, ggml f16, onnx fp32, openai-whisper fp32)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it already holds files")
    p.set_defaults(func=run)


def run(args) -> int:
    result = export_model(args.model, args.to, args.out, quantization=getattr(args, "quantization", None), force=args.force)
    print(f"exported {args.model} -> {result.path} ({result.format}, {result.quantization}, "
          f"{result.size_bytes / 1e6:.1f} MB)")
    return 0
