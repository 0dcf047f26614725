"""The five OpenAI response formats of ``/v1/audio/transcriptions``: json, text, srt, vtt, verbose_json.

>>> record = {"duration": 2.0, "text": "Hello there.", "segments": [{"start": 0.5, "end": 2.0, "text": "Hello there."}]}
>>> render(record, "text", ("segment",), "en").body
b'Hello there.\\n'
>>> import json
>>> json.loads(render(record, "verbose_json", ("segment",), "en").body)["segments"][0]["end"]
2.0
"""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse, PlainTextResponse, Response
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from asrtune.serving.errors import APIError
from asrtune.transcription.writers import to_srt, to_vtt

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")


def check_format(response_format: str, granularities: tuple[str, ...]) -> None:
    """Raise a 400 APIError for an unknown format or granularity, as the OpenAI API does."""
    if response_format not in RESPONSE_FORMATS:
        raise APIError(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}; got {response_format!r}",
                       param="response_format", code="invalid_value")
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad:
        raise APIError(400, f"timestamp_granularities[] must be segment or word; got {bad[0]!r}",
                       param="timestamp_granularities", code="invalid_value")
    if "word" in granularities and response_format != "verbose_json":
        raise APIError(400, "word timestamps need response_format=verbose_json", param="timestamp_granularities",
                       code="invalid_value")


def render(record: dict, response_format: str, granularities: tuple[str, ...], language: str | None) -> Response:
    """The HTTP response for ``record`` in ``response_format``."""
    if response_format == "text":
        return PlainTextResponse(record["text"] + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(record), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(record), media_type="text/vtt")
    usage = {"type": "duration", "seconds": math.ceil(record["duration"])}
    if response_format == "json":
        return JSONResponse({"text": record["text"], "usage": usage})
    return JSONResponse(verbose(record, granularities, language) | {"usage": usage})


def verbose(record: dict, granularities: tuple[str, ...], language: str | None) -> dict:
    """OpenAI's ``verbose_json`` body: language name, duration, text, segments and/or words."""
    body: dict = {"task": "transcribe", "language": language_name(language), "duration": record["duration"],
                  "text": record["text"]}
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": i, "seek": 0, "start": s["start"], "end": s["end"], "text": s["text"], "tokens": [],
             "temperature": s.get("temperature", 0.0), "avg_logprob": s.get("avg_logprob"),
             "compression_ratio": s.get("compression_ratio"), "no_speech_prob": s.get("no_speech_prob")}
            for i, s in enumerate(record["segments"])
        ]
    if "word" in granularities:
        body["words"] = [{"word": w["word"], "start": w["start"], "end": w["end"]}
                         for s in record["segments"] for w in s.get("words", [])]
    return body


def language_name(code: str | None) -> str:
    """``"en"`` -> ``"english"`` (the OpenAI API names the language in full).

    >>> language_name("de"), language_name(None)
    ('german', 'english')
    """
    code = (code or "en").lower()
    return LANGUAGES.get(code, code)
