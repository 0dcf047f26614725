"""The data model: utterances and lazy NeMo-style JSONL manifests.

A manifest is a JSONL file, one utterance per line::

    {"audio_filepath": "audio/a.flac", "text": "HELLO WORLD", "duration": 1.92, "speaker": "s1"}

``audio_filepath`` may be relative: it resolves against the manifest's own folder. Any field
beyond the standard ones (speaker, age, gender, ...) is kept in :attr:`Utterance.extra` and
written back unchanged. Reading streams line by line, so a million-line manifest costs
constant memory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from asrtune.data.textfile import iter_text_lines, parse_json_line
from asrtune.errors import ManifestError
from asrtune.fileio import atomic_open

STANDARD_FIELDS = ("audio_filepath", "text", "duration", "offset")


@dataclass
class Utterance:
    """One stretch of audio and its transcript.

    >>> u = Utterance(audio_filepath="/data/a.flac", text="HELLO", duration=1.5, extra={"speaker": "s1"})
    >>> u.id
    '/data/a.flac'
    >>> Utterance("/data/long.flac", "HI", 2.0, offset=30.0).id
    '/data/long.flac@30.000'
    """

    audio_filepath: str
    text: str
    duration: float
    offset: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: 1-based line number in the manifest this came from (None when built in code).
    line_no: int | None = None

    @property
    def id(self) -> str:
        """A stable key: the file path, plus the offset for segments of a longer file."""
        return self.audio_filepath if not self.offset else f"{self.audio_filepath}@{self.offset:.3f}"

    @property
    def speaker(self) -> str | None:
        value = self.extra.get("speaker")
        return None if value is None else str(value)

    def to_dict(self, relative_to: str | os.PathLike | None = None) -> dict[str, Any]:
        """The JSONL object; ``relative_to`` makes ``audio_filepath`` relative to that folder."""
        path = self.audio_filepath
        if relative_to is not None:
            try:
                path = os.path.relpath(path, relative_to)
            except ValueError:  # another drive on Windows
                pass
        out: dict[str, Any] = {"audio_filepath": path, "text": self.text, "duration": round(self.duration, 4)}
        if self.offset:
            out["offset"] = round(self.offset, 4)
        out.update(self.extra)
        return out


def parse_manifest_line(line: str, manifest_path: str | os.PathLike, line_no: int) -> Utterance:
    """Turn one JSONL line into an :class:`Utterance`, or raise :class:`ManifestError` naming the line."""
    return utterance_from_object(parse_json_line(line, manifest_path, line_no), manifest_path, line_no)


def utterance_from_object(obj: Any, manifest_path: str | os.PathLike, line_no: int) -> Utterance:
    """Build an :class:`Utterance` from an already-decoded JSON value (see :func:`parse_manifest_line`)."""
    where = str(manifest_path)
    if not isinstance(obj, dict):
        raise ManifestError(where, line_no, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("audio_filepath", "text") if k not in obj]
    if missing:
        raise ManifestError(where, line_no, f"missing field(s) {', '.join(missing)} (have: {', '.join(obj) or 'none'})")
    if not isinstance(obj["audio_filepath"], str) or not obj["audio_filepath"]:
        raise ManifestError(where, line_no, "audio_filepath must be a non-empty string")
    if not isinstance(obj["text"], str):
        raise ManifestError(where, line_no, f"text must be a string, got {type(obj['text']).__name__}")
    try:
        duration = float(obj.get("duration", 0.0) or 0.0)
        offset = float(obj.get("offset", 0.0) or 0.0)
    except (TypeError, ValueError):
        raise ManifestError(where, line_no, "duration and offset must be numbers (seconds)") from None
    for name, value in (("duration", duration), ("offset", offset)):
        if not math.isfinite(value) or value < 0:
            raise ManifestError(where, line_no, f"{name} must be a number of seconds >= 0, got {obj[name]!r}")
    audio = obj["audio_filepath"]
    if not os.path.isabs(audio) and "://" not in audio:
        audio = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(where)), audio))
    extra = {k: v for k, v in obj.items() if k not in STANDARD_FIELDS}
    return Utterance(audio, obj["text"], duration, offset, extra, line_no)


def iter_manifest_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    r"""Yield ``(line_no, line)`` for the non-blank lines of a manifest, streaming.

    The file must be UTF-8 (a byte-order mark, as some Windows editors write, is allowed). A
    missing or non-UTF-8 file, or one with no line at all, raises :class:`ManifestError`.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
    ...     _ = f.write(b'\xef\xbb\xbf{"audio_filepath": "a.wav", "text": "HI"}\n\n')
    >>> list(iter_manifest_lines(f.name))
    [(1, '{"audio_filepath": "a.wav", "text": "HI"}\n')]
    >>> os.remove(f.name)
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(str(path), None, "manifest not found" if not path.exists() else "not a file")
    empty = True
    for line_no, line in iter_text_lines(path):
        if line.strip():
            empty = False
            yield line_no, line
    if empty:
        raise ManifestError(str(path), None, "empty manifest: no utterances")


def read_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    """Stream the utterances of a JSONL manifest; the first bad line raises :class:`ManifestError`.

    Use ``asrtune manifest validate`` (``asrtune.data.validate``) to see every problem at once.
    """
    for line_no, line in iter_manifest_lines(path):
        yield parse_manifest_line(line, path, line_no)


def load_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a whole manifest into memory (training and evaluation sets)."""
    return list(read_manifest(path))


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance], relative: bool = True) -> int:
    """Write utterances as JSONL atomically; returns the count.

    With ``relative`` (default), audio paths are written relative to the manifest's folder so
    the folder can be moved as a whole.
    """
    path = Path(path)
    base = path.parent.resolve() if relative else None
    n = 0
    with atomic_open(path, "w") as f:
        for utt in utterances:
            f.write(json.dumps(utt.to_dict(base), ensure_ascii=False) + "\n")
            n += 1
    return n
