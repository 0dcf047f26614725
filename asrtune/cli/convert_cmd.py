"""`asrtune convert`: Whisper checkpoints between CTranslate2 (faster-whisper) and Hugging Face."""

from __future__ import annotations

from pathlib import Path

from asrtune.cli import add_subparser
from asrtune.errors import ConfigError
from asrtune.fileio import check_replaceable_folder
from asrtune.models.convert import ct2_to_hf
from asrtune.models.export_formats import CT2_QUANTIZATIONS as QUANTIZATIONS
from asrtune.models.registry import is_ct2_folder, resolve_model
from asrtune.training.export import export_model


DESCRIPTION = """\
Convert Whisper checkpoints between CTranslate2 (the faster-whisper format: model.bin +
config.json + tokenizer.json) and Hugging Face transformers (config, generation config,
tokenizer, feature extractor, safetensors).

ct2-to-hf makes a faster-whisper model trainable with asrtune (and loadable by
transformers.pipeline); hf-to-ct2 makes a fine-tuned model run in faster-whisper or
`asrtune transcribe --engine ct2` (it is `asrtune export SRC --to ct2`, which also exports to
whisper.cpp, ONNX and openai-whisper). SRC may be a folder, a training run (its best/ is used) or a
model name such as openai/whisper-tiny.en (resolved as everywhere in asrtune). DST is written
atomically: an interrupted conversion leaves nothing behind.
"""

EXAMPLES = """\
  asrtune convert ct2-to-hf ~/models/faster-whisper-small models/whisper-small-hf
  asrtune convert ct2-to-hf openai/whisper-tiny.en models/tiny.en-hf
  asrtune convert hf-to-ct2 runs/acc models/acc-ct2 --quantization int8
  asrtune convert hf-to-ct2 runs/acc/best models/acc-ct2-f16 --quantization float16
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "convert", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("direction", choices=("ct2-to-hf", "hf-to-ct2"), help="which way to convert")
    p.add_argument("src", help="source model: folder, training run, or name (openai/whisper-tiny.en)")
    p.add_argument("dst", help="output folder (replaced if it exists, only once the new one is complete)")
    p.add_argument("--quantization", default="int8", choices=QUANTIZATIONS,
                   help="hf-to-ct2: CTranslate2 weight type")
    p.add_argument("--force", action="store_true", help="overwrite DST if it already holds files")
    p.set_defaults(func=run)


def _source_ct2_folder(src: str) -> Path:
    """The CTranslate2 folder behind SRC: a folder with model.bin, or a resolved model's origin."""
    folder = Path(src).expanduser()
    if folder.is_dir() and is_ct2_folder(folder):
        return folder
    resolved = resolve_model(src)
    if resolved.ct2_path is None:
        raise ConfigError(f"{src}: is a Hugging Face model already ({resolved.path}); use hf-to-ct2 to go the other way")
    return resolved.ct2_path


def run(args) -> int:
    dst = Path(args.dst).expanduser()
    check_replaceable_folder(dst, "DST", args.force)
    if args.direction == "ct2-to-hf":
        src = _source_ct2_folder(args.src)
        ct2_to_hf(src, dst)
    else:
        resolved = resolve_model(args.src)
        if resolved.family != "whisper":
            raise ConfigError(f"{args.src}: is a {resolved.family} model; CTranslate2 conversion is for Whisper")
        src = resolved.path
        export_model(resolved, "ct2", dst, quantization=args.quantization, force=True)
    print(f"converted {src} -> {dst} ({args.direction}{', ' + args.quantization if args.direction == 'hf-to-ct2' else ''})")
    return 0
