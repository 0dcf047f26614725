"""Recognition engines behind one interface: ``load_recognizer(model, options)``.

- ``hf``: transformers Whisper, batched greedy/beam ``generate`` (supports term biasing);
- ``ct2``: CTranslate2 Whisper (what faster-whisper runs), int8 on CPU, batched;
- ``whispercpp`` / ``onnx``: whisper.cpp and ONNX Runtime, on the folders ``asrtune export``
  writes (or on any Whisper model, converted once and cached), greedy on the CPU;
- CTC models (wav2vec2 family) always run through :mod:`asrtune.inference.ctc` (greedy, or
  beam search with an n-gram LM).

How to decode is one :class:`RecognizerOptions` (engine, device, beam, prompt, bias terms, ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from asrtune.errors import ConfigError
from asrtune.inference.base import Recognizer
from asrtune.inference.options import ENGINES, EXPORT_ENGINES, RecognizerOptions
from asrtune.inference.whisper_common import load_terms_arg
from asrtune.models.export_formats import cached_export, check_packages, read_export
from asrtune.models.ggml import MODEL_FILE
from asrtune.models.registry import resolve_model
from asrtune.options import update_options

__all__ = ["ENGINES", "Recognizer", "RecognizerOptions", "check_model_options", "load_recognizer", "recognizer_options"]


def recognizer_options(options: RecognizerOptions | None = None, **overrides: Any) -> RecognizerOptions:
    """``options`` (or the defaults) with ``overrides`` applied and every option checked.

    >>> recognizer_options(engine="ct2", beam_size=4).beam_size
    4
    >>> recognizer_options(beam=4)
    Traceback (most recent call last):
    asrtune.errors.ConfigError: load_recognizer: unknown option 'beam' (did you mean 'beam-size'?)
    """
    base = options if options is not None else RecognizerOptions()
    return update_options(dataclasses.replace(base), overrides, "load_recognizer").validate()


def check_model_options(options: RecognizerOptions, resolved) -> RecognizerOptions:
    """``options`` checked against a resolved (not yet loaded) model: its family, and for Whisper
    whether it is English-only (read from its config.json), so a bad --language or --beam-size
    fails before the weights load."""
    vocab_size = None
    if resolved.family == "whisper":
        try:
            vocab_size = int(json.loads((resolved.path / "config.json").read_text())["vocab_size"])
        except (OSError, KeyError, TypeError, ValueError):
            vocab_size = None  # the loader reports an unreadable config with its own error
    return options.check_family(resolved.family, vocab_size)


def load_recognizer(model, options: RecognizerOptions | None = None, **overrides: Any) -> Recognizer:
    """A :class:`Recognizer` for ``model`` (a name, folder or ResolvedModel), decoding as ``options`` say.

    ``overrides`` are :class:`RecognizerOptions` field names, for convenience; an unknown name
    raises :class:`~asrtune.errors.ConfigError`.

    >>> rec = load_recognizer("openai/whisper-tiny.en", engine="ct2")                     # doctest: +SKIP
    >>> rec = load_recognizer("runs/acc", RecognizerOptions(bias_terms=["Dedalus"]))      # doctest: +SKIP

    ``bias_terms`` (a terms file, or a list of terms) biases Whisper decoding towards them (hf
    engine) or becomes CTC beam-search hotwords; ``features`` is ``hf`` (the audio zero-padded
    to 30 s, as asrtune trains; the default) or ``faster-whisper`` (reproduces faster-whisper
    token for token on single clips, but stops early on some long-form segments).
    """
    opts = recognizer_options(options, **overrides)
    terms = load_terms_arg(opts.bias_terms)
    export = _export_folder_info(model, opts.engine)
    if opts.engine in EXPORT_ENGINES:
        return _load_export_engine(model, export, opts)
    resolved = resolve_model(model)
    check_model_options(opts, resolved)
    if resolved.family == "ctc":
        from asrtune.inference.ctc import CTCRecognizer  # heavy: torch; each engine loads only when asked for

        return CTCRecognizer(resolved, device=opts.device, batch_size=opts.batch_size, lm=opts.lm, terms=terms,
                             beam_size=opts.beam_size, word_timestamps=opts.word_timestamps)
    common = dict(device=opts.device, batch_size=opts.batch_size, terms=terms, prompt=opts.prompt, language=opts.language,
                  beam_size=opts.beam_size, features=opts.features, word_timestamps=opts.word_timestamps,
                  no_speech_threshold=opts.no_speech_threshold, log_prob_threshold=opts.log_prob_threshold,
                  compression_ratio_threshold=opts.compression_ratio_threshold)
    if opts.engine == "ct2":
        # heavy: ctranslate2; each engine loads only when asked for
        from asrtune.inference.whisper_ct2 import WhisperCT2Recognizer

        return WhisperCT2Recognizer(resolved, compute_type=opts.compute_type, threads=opts.threads, **common)
    # heavy: torch + transformers; each engine loads only when asked for
    from asrtune.inference.whisper_hf import WhisperHFRecognizer

    return WhisperHFRecognizer(resolved, term_boost=opts.term_boost, **common)


#: engine -> the export format it runs
ENGINE_FORMATS = {"ct2": "ct2", "whispercpp": "ggml", "onnx": "onnx"}
FORMAT_ENGINES = {fmt: engine for engine, fmt in ENGINE_FORMATS.items()}


def _export_folder_info(model, engine: str) -> dict | None:
    """``asrtune_export.json`` of ``model`` when it is an export folder; ConfigError when that
    export is for another engine than ``engine``."""
    if not isinstance(model, (str, os.PathLike)) or not Path(model).expanduser().is_dir():
        return None
    info = read_export(Path(model).expanduser())
    if info is None or info["format"] == ENGINE_FORMATS.get(engine):
        return info
    if info["format"] == "ct2" and engine == "hf":
        return info  # a CTranslate2 folder converts back to transformers, as any faster-whisper folder does
    right = FORMAT_ENGINES.get(info["format"])
    fix = f"run it with --engine {right}" if right else f"load it with {info['runtime']}"
    raise ConfigError(f"{model}: is a {info['format']} export; {fix}")


def _load_export_engine(model, export: dict | None, opts: RecognizerOptions) -> Recognizer:
    """A whispercpp or onnx recognizer on an export folder, a ggml file, or any Whisper model
    (converted once into the cache)."""
    fmt = ENGINE_FORMATS[opts.engine]
    check_packages(fmt)
    path = Path(model).expanduser() if not hasattr(model, "path") else None
    if export is not None:
        folder, name, source = path, str(model), f"{fmt}-export"
    elif fmt == "ggml" and path is not None and path.is_file():
        folder, name, source = path, str(model), "ggml-file"
    else:
        resolved = resolve_model(model)
        if resolved.family != "whisper":
            raise ConfigError(f"--engine {opts.engine}: {resolved.name} is a {resolved.family} model; this engine runs Whisper")
        folder, name, source = cached_export(resolved, fmt), resolved.name, f"{resolved.source}+{fmt}"
    common = dict(name=name, source=source, prompt=opts.prompt, language=opts.language, threads=opts.threads,
                  no_speech_threshold=opts.no_speech_threshold, log_prob_threshold=opts.log_prob_threshold,
                  compression_ratio_threshold=opts.compression_ratio_threshold)
    if fmt == "ggml":
        from asrtune.inference.whisper_cpp import WhisperCppRecognizer  # optional extra [export] (pywhispercpp)

        model_file = folder if folder.is_file() else folder / MODEL_FILE
        # the export's description, already read for a folder; None for a ggml file from elsewhere (list unknown)
        info = export if export is not None else read_export(model_file.parent)
        suppress = info.get("suppress_tokens") if info is not None and info["format"] == "ggml" else None
        return WhisperCppRecognizer(model_file, flash_attention=opts.flash_attention, suppress_tokens=suppress, **common)
    from asrtune.inference.whisper_onnx import WhisperOnnxRecognizer  # optional extra [export] (onnxruntime)

    return WhisperOnnxRecognizer(folder, batch_size=opts.batch_size, features=opts.features, **common)
