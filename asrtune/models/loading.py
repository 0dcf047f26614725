"""Load resolved models into transformers objects: ``load_whisper`` and ``load_ctc``."""

from __future__ import annotations

import os

from asrtune.errors import ModelResolutionError
from asrtune.models.registry import ResolvedModel, resolve_model


def _resolve_family(model: str | os.PathLike | ResolvedModel, family: str) -> ResolvedModel:
    resolved = resolve_model(model)
    if resolved.family != family:
        raise ModelResolutionError(
            f"{resolved.name}: is a {resolved.family} model ({resolved.path}), but a {family} model is needed here"
        )
    return resolved


def load_whisper(model: str | os.PathLike | ResolvedModel, device: str = "cpu", dtype=None):
    """``(WhisperForConditionalGeneration, WhisperProcessor)`` for a name, folder or ResolvedModel.

    >>> model, processor = load_whisper("openai/whisper-tiny.en")   # doctest: +SKIP

    The model is in eval mode on ``device`` (float32 unless ``dtype`` is given).
    """
    # heavy: torch + transformers
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    resolved = _resolve_family(model, "whisper")
    try:
        processor = WhisperProcessor.from_pretrained(resolved.path)
        net = WhisperForConditionalGeneration.from_pretrained(resolved.path, dtype=dtype or torch.float32)
    except (OSError, ValueError) as e:
        raise ModelResolutionError(f"{resolved.path}: cannot load Whisper model: {e}") from None
    return net.to(device).eval(), processor


def load_ctc(model: str | os.PathLike | ResolvedModel, device: str = "cpu", dtype=None):
    """``(AutoModelForCTC model, processor)``: Wav2Vec2Processor-like (feature extractor + tokenizer).

    >>> model, processor = load_ctc("facebook/wav2vec2-base-960h")   # doctest: +SKIP
    """
    # heavy: torch + transformers
    import torch
    from transformers import AutoModelForCTC, AutoProcessor, Wav2Vec2Processor

    resolved = _resolve_family(model, "ctc")
    try:
        try:
            processor = AutoProcessor.from_pretrained(resolved.path)
        except (OSError, ValueError, TypeError, KeyError):
            processor = Wav2Vec2Processor.from_pretrained(resolved.path)
        net = AutoModelForCTC.from_pretrained(resolved.path, dtype=dtype or torch.float32)
    except (OSError, ValueError) as e:
        raise ModelResolutionError(f"{resolved.path}: cannot load CTC model: {e}") from None
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "feature_extractor"):
        raise ModelResolutionError(
            f"{resolved.path}: the CTC model has no tokenizer + feature extractor (vocab.json, "
            "preprocessor_config.json); save a Wav2Vec2Processor beside it"
        )
    return net.to(device).eval(), processor
