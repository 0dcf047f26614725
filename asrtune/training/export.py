"""``export_model``: a Whisper model (any name the registry resolves, a run included) → a folder for
another runtime, with its model card. One implementation behind ``asrtune export``,
``asrtune convert hf-to-ct2``, ``train --export`` and ``train --export-ct2``.

Every check that needs no conversion (format, quantisation, optional packages, ``--out``, the
model's family) runs first; the folder is built in a temporary sibling and renamed into place
only when complete, so a failure leaves nothing behind. Training runs save LoRA weights merged
into the model (``best/``, ``final/``), so a run exports like any model folder; a peft adapter
folder (``adapter_config.json``) is merged into the base model it names first (``models/lora.py``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from asrtune.errors import ConfigError
from asrtune.fileio import atomic_directory, check_replaceable_folder
from asrtune.models.export_formats import FORMATS, check_format, check_packages, check_quantization, write_format
from asrtune.models.interpolate import base_model_of
from asrtune.models.lora import is_adapter_folder, merged_adapter
from asrtune.models.registry import resolve_model
from asrtune.training.model_card import write_export_card

FOLDER_MODE = 0o755


@dataclass(frozen=True)
class ExportResult:
    """Where an export went, in which format and weight type, and its size on disk."""

    path: Path
    format: str
    quantization: str
    size_bytes: int


def parse_formats(value: str | list[str] | None, option: str = "--export") -> list[str]:
    """``"ct2,ggml"`` → ``["ct2", "ggml"]``, each checked; none → [].

    >>> parse_formats("ct2, ggml")
    ['ct2', 'ggml']
    >>> parse_formats("ct2,tflite")
    Traceback (most recent call last):
    asrtune.errors.ConfigError: --export tflite: unknown export format; choose from ct2, ggml, onnx, openai-whisper
    """
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    formats = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(f"{option} {fmt}: unknown export format; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def check_export(fmt: str, quantization: str | None) -> str:
    """Check the format, its quantisation and its packages; returns the quantisation to use."""
    check_format(fmt)
    quantization = check_quantization(fmt, quantization)
    check_packages(fmt, quantization)
    return quantization


def check_exports(formats: list[str]) -> None:
    """Before a run: each format's packages are importable (a run must not fail at its very end)."""
    for fmt in formats:
        check_export(fmt, None)


def export_model(model, fmt: str, out: str | os.PathLike, *, quantization: str | None = None, force: bool = False,
                 write_card: Callable[[Path, str], None] | None = None) -> ExportResult:
    """Export ``model`` (a name, folder, run or ResolvedModel) to ``fmt`` in folder ``out``.

    >>> export_model("runs/acc", "ggml", "exports/acc-ggml", quantization="q8_0")   # doctest: +SKIP

    ``write_card(folder, quantization)`` writes the model card (the trainer passes one built from
    the run); by default the card says what the export is, how to run it, and carries the source
    model's own card.
    """
    quantization = check_export(fmt, quantization)
    out = Path(out).expanduser()
    check_replaceable_folder(out, "--out", force)
    if isinstance(model, (str, os.PathLike)) and is_adapter_folder(Path(model).expanduser()):
        resolved = resolve_model(merged_adapter(Path(model).expanduser()))
        resolved = dataclasses.replace(resolved, name=str(model), source=f"lora-merged:{resolved.path}")
    else:
        resolved = resolve_model(model)
    if resolved.family != "whisper":
        raise ConfigError(f"{resolved.name}: is a {resolved.family} model; the {fmt} export is for Whisper models only")
    with atomic_directory(out) as tmp:
        write_format(fmt, resolved.path, tmp, quantization, resolved.name)
        if write_card is not None:
            write_card(tmp, quantization)
        else:
            write_export_card(tmp, fmt, quantization, resolved.name, resolved.path, base_model_of(resolved.path), out.name)
        os.chmod(tmp, FOLDER_MODE)  # the temporary folder is private (0700); an export is meant to be shared
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportResult(out, fmt, quantization, size)
