"""The runtimes a Whisper model exports to, and one converter entry point per format.

``write_format(fmt, hf_folder, dst, quantization)`` fills an existing folder ``dst`` with the
format's files plus ``asrtune_export.json``, which records the format, quantisation, source and
what each runtime may lack a slot for (alignment heads, suppress tokens); ``read_export(folder)``
reads it back so ``--engine whispercpp|onnx`` can run an export folder. ``cached_export`` is the
engines' on-the-fly conversion of any Whisper model, cached by content like ``ct2_copy_for``.

>>> default_quantization("ggml"), default_quantization("onnx")
('f16', 'fp32')
>>> check_quantization("onnx", "q8_0")
Traceback (most recent call last):
asrtune.errors.ConfigError: --quantization q8_0: the onnx export takes fp32, int8
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.extras import install_hint
from asrtune.fileio import write_json_atomic
from asrtune.models.cache import cached_build, content_key
from asrtune.models.convert import hf_to_ct2
from asrtune.models.ggml import MODEL_FILE, write_ggml
from asrtune.models.openai_whisper import CHECKPOINT_FILE, write_openai_checkpoint

EXPORT_INFO_FILE = "asrtune_export.json"
INSTALL_HINT = install_hint("export")
CT2_QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
#: format -> its quantisations, the first being the default (lossless except ct2, whose int8 is
#: what faster-whisper runs on CPU and what ``convert hf-to-ct2`` has always written)
QUANTIZATIONS = {
    "ct2": CT2_QUANTIZATIONS,
    # no f32: whisper.cpp's convolution takes float16 kernels only, and a float32 file aborts the
    # process (https://github.com/ggml-org/whisper.cpp/issues/2557); f16 is whisper.cpp's full precision
    "ggml": ("f16", "q8_0", "q5_0"),
    "onnx": ("fp32", "int8"),
    "openai-whisper": ("fp32",),
}
FORMATS = tuple(QUANTIZATIONS)
#: format -> the modules its converter and runtime import (checked before any work)
REQUIRED_MODULES = {
    "ct2": ("ctranslate2",),
    "ggml": ("pywhispercpp",),
    "onnx": ("onnx", "onnxruntime"),
    "openai-whisper": ("whisper",),
}
RUNTIMES = {"ct2": "CTranslate2 (faster-whisper)", "ggml": "whisper.cpp", "onnx": "ONNX Runtime",
            "openai-whisper": "openai-whisper"}
QUANTISED_GGML = ("q8_0", "q5_0")


def check_format(fmt: str) -> str:
    if fmt not in QUANTIZATIONS:
        raise ConfigError(f"--to {fmt}: unknown export format; choose from {', '.join(FORMATS)}")
    return fmt


def default_quantization(fmt: str) -> str:
    return QUANTIZATIONS[check_format(fmt)][0]


def check_quantization(fmt: str, quantization: str | None) -> str:
    """``quantization`` (or the format's default) after checking the format takes it."""
    if quantization is None:
        return default_quantization(fmt)
    if quantization not in QUANTIZATIONS[check_format(fmt)]:
        raise ConfigError(f"--quantization {quantization}: the {fmt} export takes {', '.join(QUANTIZATIONS[fmt])}")
    return quantization


def check_packages(fmt: str, quantization: str | None = None) -> None:
    """ConfigError naming the install command when a format's optional package is missing."""
    modules = REQUIRED_MODULES[check_format(fmt)] + (("gguf",) if quantization in QUANTISED_GGML else ())
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        names = {"whisper": "openai-whisper"}
        raise ConfigError(f"the {fmt} export needs {', '.join(names.get(m, m) for m in missing)}: {INSTALL_HINT}")


def export_info(fmt: str, quantization: str, source: str, hf_folder: Path) -> dict:
    """What ``asrtune_export.json`` records: format, quantisation, source, and the decoding settings
    (alignment heads, suppress tokens) taken from the model's generation config."""
    generation = {}
    if (hf_folder / "generation_config.json").is_file():
        generation = json.loads((hf_folder / "generation_config.json").read_text(encoding="utf-8"))
    return {
        "format": fmt, "quantization": quantization, "runtime": RUNTIMES[fmt], "source": source,
        "alignment_heads": generation.get("alignment_heads"), "suppress_tokens": generation.get("suppress_tokens"),
        "begin_suppress_tokens": generation.get("begin_suppress_tokens"),
    }


def write_format(fmt: str, hf_folder: str | os.PathLike, dst: str | os.PathLike, quantization: str, source: str) -> Path:
    """Convert HF Whisper folder ``hf_folder`` to ``fmt`` inside the existing folder ``dst``."""
    hf_folder, dst = Path(hf_folder), Path(dst)
    quantization = check_quantization(fmt, quantization)
    if fmt == "ct2":
        hf_to_ct2(hf_folder, dst / "ct2", quantization=quantization)
        for item in (dst / "ct2").iterdir():
            os.replace(item, dst / item.name)
        (dst / "ct2").rmdir()
    elif fmt == "ggml":
        write_ggml(hf_folder, dst / MODEL_FILE, quantization)
    elif fmt == "onnx":
        from asrtune.models.onnx_export import write_onnx  # heavy: torch + transformers at import

        write_onnx(hf_folder, dst, quantization)
    else:
        info = export_info(fmt, quantization, source, hf_folder)
        write_openai_checkpoint(hf_folder, dst / CHECKPOINT_FILE, {k: info[k] for k in ("alignment_heads", "suppress_tokens", "begin_suppress_tokens")})
    write_json_atomic(dst / EXPORT_INFO_FILE, export_info(fmt, quantization, source, hf_folder))
    return dst


def read_export(folder: str | os.PathLike) -> dict | None:
    """The ``asrtune_export.json`` of an export folder, or None for any other folder or file."""
    path = Path(folder) / EXPORT_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AsrtuneError(f"{path}: unreadable export description ({e})") from None
    if info.get("format") not in QUANTIZATIONS:
        raise AsrtuneError(f"{path}: unknown export format {info.get('format')!r}")
    return info


def cached_export(resolved, fmt: str, quantization: str | None = None) -> Path:
    """An export folder of Whisper model ``resolved`` (a ResolvedModel) in ``fmt``, converted once
    per content and quantisation into the cache (what ``--engine whispercpp|onnx`` run on a model
    that is not an export folder)."""
    quantization = check_quantization(fmt, quantization)
    check_packages(fmt, quantization)
    if resolved.family != "whisper":
        raise ConfigError(f"{resolved.name}: is a {resolved.family} model; the {fmt} format is for Whisper models")
    files = sorted(p for p in resolved.path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin"))
    key = content_key(files, salt=f"export:v1:{fmt}:{quantization}")
    return cached_build(f"{fmt}-from-hf", key, lambda tmp: write_format(fmt, resolved.path, tmp, quantization, resolved.name),
                        marker=EXPORT_INFO_FILE)
