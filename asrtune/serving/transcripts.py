"""One request's audio -> a transcript record, through the same long-form path as ``asrtune transcribe``.

The record has the shape of a ``transcripts.jsonl`` line (``duration``, ``text``, ``segments``
with ``start``/``end``/``text`` and, with word timestamps, ``words``), built the way the batch
runner builds it, so the server and ``asrtune transcribe`` give the same transcript for a file.
"""

from __future__ import annotations

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.inference.whisper_common import compression_ratio
from asrtune.transcription.longform import transcribe_audio
from asrtune.transcription.vad import MAX_SEGMENT_S


def transcript_record(recognizer, audio: np.ndarray, *, word_timestamps: bool = False, vad: str = "silero",
                      max_segment_s: float = MAX_SEGMENT_S) -> dict:
    """Segment ``audio`` at pauses, decode each segment with ``recognizer``, and return the record.

    Blocking (the model calls wait for the batcher): call it from a worker thread.
    """
    duration = len(audio) / SAMPLE_RATE_HZ
    segments = transcribe_audio(recognizer, audio, vad=vad, max_segment_s=max_segment_s, word_timestamps=word_timestamps)
    out = []
    for seg in segments:
        text = str(seg.text).strip()
        if not text:
            continue
        item = {"start": round(float(seg.start), 3), "end": round(min(float(seg.end), duration), 3), "text": text}
        for name in ("avg_logprob", "no_speech_prob"):
            if getattr(seg, name, None) is not None:
                item[name] = float(getattr(seg, name))
        item["temperature"] = float(seg.temperature)
        item["compression_ratio"] = round(compression_ratio(text), 3)
        if word_timestamps:
            item["words"] = [_word(w) for w in (seg.words or [])]
        out.append(item)
    return {"duration": round(duration, 3), "text": " ".join(s["text"] for s in out), "segments": out}


def _word(word) -> dict:
    return {"word": str(word.text).strip(), "start": round(float(word.start), 3), "end": round(float(word.end), 3),
            "probability": round(float(word.probability), 4)}
