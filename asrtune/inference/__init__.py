"""Recognition engines behind one interface: ``load_recognizer(model, engine=...)``.

- ``hf``: transformers Whisper, batched greedy/beam ``generate`` (supports term biasing);
- ``ct2``: CTranslate2 Whisper (what faster-whisper runs), int8 on CPU, batched;
- CTC models (wav2vec2 family) always run through :mod:`asrtune.inference.ctc` (greedy, or
  beam search with an n-gram LM).
"""

from __future__ import annotations

import os

from asrtune.errors import ConfigError
from asrtune.inference.base import Recognizer

ENGINES = ("hf", "ct2")

__all__ = ["ENGINES", "Recognizer", "load_recognizer"]


def load_recognizer(
    model,
    engine: str = "hf",
    device: str = "cpu",
    batch_size: int = 16,
    terms=None,
    prompt: str | None = None,
    language: str | None = None,
    lm: str | os.PathLike | None = None,
    beam_size: int = 1,
    compute_type: str = "int8",
    term_boost: float | None = None,
    features: str = "hf",
    threads: int | None = None,
) -> Recognizer:
    """A :class:`Recognizer` for ``model`` (a name, folder or ResolvedModel).

    >>> rec = load_recognizer("openai/whisper-tiny.en", engine="ct2")   # doctest: +SKIP

    ``terms`` (a list of words/phrases) biases Whisper decoding towards them (hf engine);
    ``prompt`` is Whisper's initial prompt; ``language`` overrides English for multilingual
    Whisper; ``lm`` is an n-gram LM for CTC beam search; ``compute_type`` is CTranslate2's;
    ``features`` is ``hf`` (transformers' feature extractor: the audio zero-padded to 30 s, as
    asrtune trains; the default) or ``faster-whisper`` (the clip's spectrogram padded after
    normalisation, as faster-whisper does: reproduces faster-whisper token for token on single
    clips, but stops early on some long-form segments). ``threads`` caps the CPU
    threads of the ct2 engine (``--workers`` gives each worker its share of the cores).
    """
    from asrtune.models.registry import resolve_model

    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if beam_size < 1:
        raise ConfigError(f"--beam-size must be >= 1, got {beam_size}")
    resolved = resolve_model(model)
    if resolved.family == "ctc":
        if prompt is not None:
            raise ConfigError("--prompt is a Whisper option; CTC models take no prompt")
        from asrtune.inference.ctc import CTCRecognizer

        return CTCRecognizer(resolved, device=device, batch_size=batch_size, lm=lm, terms=terms, beam_size=beam_size)
    if lm is not None:
        raise ConfigError("--lm is for CTC models; Whisper decodes with its own language model")
    if engine == "ct2":
        from asrtune.inference.whisper_ct2 import WhisperCT2Recognizer

        return WhisperCT2Recognizer(
            resolved, device=device, batch_size=batch_size, terms=terms, prompt=prompt, language=language,
            beam_size=beam_size, compute_type=compute_type, features=features, threads=threads,
        )
    from asrtune.inference.whisper_hf import WhisperHFRecognizer

    return WhisperHFRecognizer(
        resolved, device=device, batch_size=batch_size, terms=terms, prompt=prompt, language=language,
        beam_size=beam_size, term_boost=term_boost, features=features,
    )
