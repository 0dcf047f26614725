"""What a report reader sees of the model and the speed: labelled rows with units.

report.json keeps the raw settings (``model``, ``speed``); report.md and report.html show them
as ``label | value`` rows, each value with its unit and, where a bare number says little, what
it means (a real-time factor of 0.05 is "20x faster than real time").

>>> from asrtune.evaluation.schema import ModelInfo, Speed
>>> model_rows(ModelInfo("runs/acc", engine="ct2", beam_size=1, batch_size=16, settings={"compute_type": "int8"}))[:3]
[('Model', 'runs/acc'), ('Engine', 'ct2 (CTranslate2, int8)'), ('Search', 'greedy (beam size 1)')]
>>> dict(speed_rows(Speed(audio_s=123.4, decode_s=6.17, rtf=0.05)))["Real-time factor"]
'0.050 (20x faster than real time)'
"""

from __future__ import annotations

from typing import Any, Callable

from asrtune.evaluation.schema import ModelInfo, Speed

ENGINE_NAMES = {
    "hf": "transformers",
    "ct2": "CTranslate2",
    "whispercpp": "whisper.cpp",
    "onnx": "ONNX Runtime",
    "ctc": "wav2vec2-style CTC",
}
FEATURE_STYLES = {"hf": "hf (audio padded to 30 s, as in training)", "faster-whisper": "faster-whisper (token-exact with it)"}
SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600


def _plain(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _nats(value: Any) -> str:
    return f"{value:g} nats" if isinstance(value, (int, float)) else _plain(value)


def _threshold(what: str) -> Callable[[Any], str]:
    return lambda value: f"{value:g} ({what})" if isinstance(value, (int, float)) else _plain(value)


# Engine settings beyond the named fields (recogniser ``describe()`` keys and decoding options),
# in display order: key -> (label, formatter). A key not listed here is shown under its own name.
SETTING_LABELS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "language": ("Language", _plain),
    "prompt": ("Prompt", lambda p: f"“{p}”"),
    "features": ("Log-mel features", lambda f: FEATURE_STYLES.get(f, _plain(f))),
    "decoder": ("CTC decoder", _plain),
    "lm": ("Language model", _plain),
    "lm_weight": ("LM weight", _plain),
    "word_score": ("Word score", _nats),
    "lexicon_words": ("Lexicon", lambda n: f"{n:,} words" if isinstance(n, int) else _plain(n)),
    "hotwords": ("Hotwords", lambda n: _plain(n) if n else None),
    "hotword_boost": ("Hotword boost", _nats),
    "terms": ("Bias terms", lambda n: (f"{n} terms" if isinstance(n, int) else _plain(n)) if n else None),
    "term_boost": ("Term boost", lambda b: f"{b:g} nats per token" if isinstance(b, (int, float)) else _plain(b)),
    "threads": ("Decoder threads", _plain),
    "no_speech_threshold": ("No-speech threshold", _threshold("probability; with a low log-probability: silence")),
    "log_prob_threshold": ("Log-prob threshold", _threshold("nats, mean per token")),
    "compression_ratio_threshold": ("Compression-ratio threshold", _threshold("gzip ratio; above: decoded again")),
    "word_timestamps": ("Word timestamps", lambda on: "on" if on else "off"),
}
# Options a recogniser's describe() may not repeat (the device is in the speed table).
DECODING_ONLY = ("threads", "word_timestamps")
SHOWN_ELSEWHERE = {"compute_type", "beam_size", "batch_size", "engine", "bias_terms", "device"}


def _engine(model: ModelInfo, settings: dict[str, Any]) -> str:
    if not model.engine:
        return "-"
    detail = [ENGINE_NAMES[model.engine]] if model.engine in ENGINE_NAMES else []
    if model.engine == "ct2" and settings.get("compute_type"):
        detail.append(str(settings["compute_type"]))
    return f"{model.engine} ({', '.join(detail)})" if detail else model.engine


def _search(beam_size: int | None) -> str | None:
    if beam_size is None:
        return None
    return "greedy (beam size 1)" if beam_size == 1 else f"beam search, {beam_size} beams"


def _biasing(model: ModelInfo) -> str | None:
    if model.term_biasing is None:
        return None
    if not model.term_biasing:
        return "off"
    decoding = model.decoding or {}
    terms = decoding.get("bias_terms")
    source = f"{len(terms)} terms" if isinstance(terms, list) else str(terms)
    return f"on: {source}, +{decoding.get('term_boost', 0):g} nats per token"


def model_rows(model: ModelInfo) -> list[tuple[str, str]]:
    """The model and every decoding setting it reports, as (label, value) rows."""
    # The recogniser reports what it really uses (CTC + LM widens beam 1 to 50); of the options
    # asked for, only those it does not report are shown.
    asked = {k: v for k, v in (model.decoding or {}).items() if k in DECODING_ONLY}
    settings = asked | model.settings
    rows: list[tuple[str, str | None]] = [
        ("System", model.label if model.label and model.label != model.name else None),
        ("Model", model.name or "(hypotheses scored directly)"),
        ("Engine", _engine(model, settings)),
        ("Search", _search(model.beam_size)),
        ("Batch size", f"{model.batch_size} clips" if model.batch_size else None),
        ("Term biasing", _biasing(model)),
        ("Family", model.family),
        ("Requested as", model.requested if model.requested not in (None, model.name) else None),
        ("Source", model.source if model.source not in (None, model.name) else None),
    ]
    for key, (label, fmt) in SETTING_LABELS.items():
        value = settings.get(key)
        if value is not None and not (key == "word_timestamps" and not value):
            rows.append((label, fmt(value)))  # None: nothing worth a row (no terms, no hotwords)
    rows += [(key, _plain(v)) for key, v in settings.items() if key not in SETTING_LABELS and key not in SHOWN_ELSEWHERE
             and v is not None]
    return [(label, value) for label, value in rows if value is not None]


def seconds(value: float | None) -> str | None:
    """A duration in seconds, with minutes or hours beside it when it is long.

    >>> seconds(12.345), seconds(754.0), seconds(7200.0)
    ('12.3 s', '754.0 s (12.6 min)', '7200.0 s (2.00 h)')
    """
    if value is None:
        return None
    if value >= SECONDS_PER_HOUR:
        return f"{value:.1f} s ({value / SECONDS_PER_HOUR:.2f} h)"
    if value >= SECONDS_PER_MINUTE:
        return f"{value:.1f} s ({value / SECONDS_PER_MINUTE:.1f} min)"
    return f"{value:.1f} s"


def real_time_factor(rtf: float | None) -> str | None:
    """Decoding seconds per audio second, and how much faster (or slower) than real time that is.

    >>> real_time_factor(0.05), real_time_factor(0.638), real_time_factor(2.0)
    ('0.050 (20x faster than real time)', '0.638 (1.6x faster than real time)', '2.000 (2.0x slower than real time)')
    """
    if rtf is None:
        return None
    if rtf <= 0:
        return f"{rtf:.3f}"
    if rtf < 1:
        speedup = 1 / rtf
        return f"{rtf:.3f} ({speedup:.0f}x faster than real time)" if speedup >= 10 else f"{rtf:.3f} ({speedup:.1f}x faster than real time)"
    return f"{rtf:.3f} ({rtf:.1f}x slower than real time)"


def speed_rows(speed: Speed) -> list[tuple[str, str]]:
    """Where a decoding run's time went, as (label, value) rows."""
    decoded = None
    if speed.utterances_decoded is not None:
        long_form = f" ({speed.long_form_recordings} long-form recordings)" if speed.long_form_recordings else ""
        decoded = f"{speed.utterances_decoded}{long_form}"
    wall = seconds(speed.wall_s)
    wait = seconds(speed.audio_wait_s)
    rows: list[tuple[str, str | None]] = [
        ("Audio", seconds(speed.audio_s)),
        ("Utterances decoded", decoded),
        ("Decoding time", seconds(speed.decode_s)),
        ("Real-time factor", real_time_factor(speed.rtf)),
        ("Throughput", f"{speed.utterances_per_s:g} utterances/s" if speed.utterances_per_s is not None else None),
        ("Model load", seconds(speed.model_load_s)),
        ("Waiting for audio", f"{wait} (loading not hidden behind decoding)" if wait else None),
        ("Wall time", f"{wall} (model load, audio, decoding and scoring)" if wall else None),
        ("Device", speed.device),  # the batch size is in the model and decoding table
    ]
    return [(label, value) for label, value in rows if value is not None]
