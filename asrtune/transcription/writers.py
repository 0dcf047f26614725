"""Per-file transcript formats: plain text, SRT and WebVTT subtitles, JSON.

A transcript record (also one line of ``transcripts.jsonl``) looks like::

    {"file": "/data/talk.flac", "duration": 299.01, "text": "He hoped ...",
     "segments": [{"start": 0.38, "end": 29.03, "text": "He hoped ..."}, ...]}

With word times (``--word-timestamps``) each segment also carries ``words``
(``[{"text", "start", "end", "probability"}]``, file time) and subtitle cues are built from them
(:mod:`asrtune.transcription.subtitles`: sentence ends and pauses first, then line width, line
count and cue duration limits); without, each segment is one cue, its text wrapped to lines of
at most ``max_line_width`` characters.
"""

from __future__ import annotations

import os
from pathlib import Path

from asrtune.fileio import write_json_atomic, write_text_atomic
from asrtune.transcription.subtitles import SubtitleOptions, record_cues

#: per-file formats; "jsonl" names the combined transcripts.jsonl, which is always written
FILE_FORMATS = ("txt", "srt", "vtt", "json")
ALL_FORMATS = FILE_FORMATS + ("jsonl",)


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


def to_srt(record: dict, subtitles: SubtitleOptions | None = None) -> str:
    """SubRip subtitles: numbered cues, ``-->`` times with a comma before milliseconds.

    >>> print(to_srt({"segments": [{"start": 0.5, "end": 2.0, "text": " Hello there."}]}), end="")
    1
    00:00:00,500 --> 00:00:02,000
    Hello there.
    """
    cues = record_cues(record, subtitles)
    blocks = [f"{i}\n{format_timestamp(c.start)} --> {format_timestamp(c.end)}\n{c.text}\n" for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def to_vtt(record: dict, subtitles: SubtitleOptions | None = None) -> str:
    """WebVTT subtitles: a ``WEBVTT`` header, then cues with a dot before milliseconds.

    >>> print(to_vtt({"segments": [{"start": 0.5, "end": 2.0, "text": "Hello"}]}), end="")
    WEBVTT
    <BLANKLINE>
    00:00:00.500 --> 00:00:02.000
    Hello
    """
    cues = record_cues(record, subtitles)
    blocks = [f"{format_timestamp(c.start, '.')} --> {format_timestamp(c.end, '.')}\n{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(record: dict) -> str:
    """The whole transcript on one line (plus newline); empty for audio without speech."""
    text = record.get("text", "").strip()
    return text + "\n" if text else ""


def write_outputs(record: dict, out_dir: str | os.PathLike, stem: str, formats: tuple[str, ...],
                  subtitles: SubtitleOptions | None = None) -> list[Path]:
    """Write ``record`` as ``out_dir/stem.<format>`` for each per-file format, atomically;
    ``subtitles`` lays out SRT/VTT cues (default :class:`SubtitleOptions`)."""
    written = []
    base = Path(out_dir) / stem
    for fmt in formats:
        if fmt == "jsonl":
            continue
        path = base.with_name(base.name + "." + fmt)
        if fmt == "json":
            write_json_atomic(path, record)
        elif fmt == "txt":
            write_text_atomic(path, to_txt(record))
        else:
            write_text_atomic(path, {"srt": to_srt, "vtt": to_vtt}[fmt](record, subtitles))
        written.append(path)
    return written
