"""Per-file transcript formats: plain text, SRT and WebVTT subtitles, JSON.

A transcript record (also one line of ``transcripts.jsonl``) looks like::

    {"file": "/data/talk.flac", "duration": 299.01, "text": "He hoped ...",
     "segments": [{"start": 0.38, "end": 29.03, "text": "He hoped ..."}, ...]}

Each segment becomes one subtitle cue, its text wrapped to lines of at most
``MAX_LINE_CHARS`` characters (the usual broadcast subtitle width).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from asrtune.fileio import write_json_atomic, write_text_atomic

#: per-file formats; "jsonl" names the combined transcripts.jsonl, which is always written
FILE_FORMATS = ("txt", "srt", "vtt", "json")
ALL_FORMATS = FILE_FORMATS + ("jsonl",)
MAX_LINE_CHARS = 42  # characters per subtitle line


def format_timestamp(seconds: float, decimal_marker: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal_marker="."``, ``HH:MM:SS.mmm`` (WebVTT).

    >>> format_timestamp(3725.4567)
    '01:02:05,457'
    >>> format_timestamp(0.0, ".")
    '00:00:00.000'
    """
    if seconds < 0:
        raise ValueError(f"negative timestamp {seconds}")
    ms = int(round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def _cues(record: dict) -> list[tuple[float, float, str]]:
    cues = []
    for seg in record.get("segments", []):
        text = seg["text"].strip()
        if text:
            cues.append((float(seg["start"]), float(seg["end"]), "\n".join(textwrap.wrap(text, MAX_LINE_CHARS)) or text))
    return cues


def to_srt(record: dict) -> str:
    """SubRip subtitles: numbered cues, ``-->`` times with a comma before milliseconds.

    >>> print(to_srt({"segments": [{"start": 0.5, "end": 2.0, "text": " Hello there."}]}), end="")
    1
    00:00:00,500 --> 00:00:02,000
    Hello there.
    """
    blocks = [f"{i}\n{format_timestamp(s)} --> {format_timestamp(e)}\n{text}\n" for i, (s, e, text) in enumerate(_cues(record), 1)]
    return "\n".join(blocks)


def to_vtt(record: dict) -> str:
    """WebVTT subtitles: a ``WEBVTT`` header, then cues with a dot before milliseconds.

    >>> print(to_vtt({"segments": [{"start": 0.5, "end": 2.0, "text": "Hello"}]}), end="")
    WEBVTT
    <BLANKLINE>
    00:00:00.500 --> 00:00:02.000
    Hello
    """
    blocks = [f"{format_timestamp(s, '.')} --> {format_timestamp(e, '.')}\n{text}\n" for s, e, text in _cues(record)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(record: dict) -> str:
    """The whole transcript on one line (plus newline); empty for audio without speech."""
    text = record.get("text", "").strip()
    return text + "\n" if text else ""


def write_outputs(record: dict, out_dir: str | os.PathLike, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Write ``record`` as ``out_dir/stem.<format>`` for each per-file format, atomically."""
    written = []
    base = Path(out_dir) / stem
    for fmt in formats:
        if fmt == "jsonl":
            continue
        path = base.with_name(base.name + "." + fmt)
        if fmt == "json":
            write_json_atomic(path, record)
        else:
            write_text_atomic(path, {"txt": to_txt, "srt": to_srt, "vtt": to_vtt}[fmt](record))
        written.append(path)
    return written
