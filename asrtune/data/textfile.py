r"""Strict reading of the user's text files (manifests, term lists, domain text, CSV, Kaldi tables).

Text must be UTF-8; a byte-order mark (as Windows editors write) is dropped. A UTF-16 file or
binary data is refused with one :class:`ManifestError` naming the file and line, instead of
being read as mojibake ("not valid JSON", an LM trained on garbage).

>>> import tempfile
>>> with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
...     _ = f.write(codecs.BOM_UTF8 + b"first\n\nsecond\n")
>>> list(iter_text_lines(f.name))
[(1, 'first\n'), (2, '\n'), (3, 'second\n')]
>>> os.remove(f.name)
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any, Iterator

from asrtune.errors import ConfigError, ManifestError

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # also prefix the UTF-32 LE/BE marks
JSON_LINES_SUFFIXES = (".jsonl", ".json")


def iter_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_no, line)`` (1-based, line ending kept) of a UTF-8 text file, streaming.

    The caller checks that ``path`` is a file (and words its own "not found" error).
    """
    path = Path(path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and (raw.startswith(UTF16_BOMS) or b"\0" in raw):
                raise ManifestError(str(path), 1, "UTF-16/32 or binary data, not UTF-8 text; save the file as UTF-8")
            try:
                yield line_no, raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ManifestError(
                    str(path), line_no, f"not UTF-8 text (byte {e.start + 1} of the line); save the file as UTF-8"
                ) from None


def parse_json_line(line: str, path: str | os.PathLike, line_no: int) -> Any:
    """One JSONL line as a JSON value, or :class:`ManifestError` naming the file, line and column."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(str(path), line_no, f"not valid JSON ({e.msg} at column {e.colno})") from None


def iter_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_no, value)`` for every non-blank line of a JSONL file, streaming; one error
    naming the line for text that is not UTF-8 or not JSON."""
    for line_no, line in iter_text_lines(path):
        if line.strip():
            yield line_no, parse_json_line(line, path, line_no)


def is_json_lines(path: str | os.PathLike) -> bool:
    """Whether a text file holds JSON Lines: it is named ``.jsonl``/``.json``, or its first
    non-blank line is a JSON object (a manifest saved under another name). Callers that take
    plain text use this to refuse, or read properly, a manifest given in its place."""
    if Path(path).suffix.lower() in JSON_LINES_SUFFIXES:
        return True
    for _, line in iter_text_lines(path):
        if not line.strip():
            continue
        try:
            return isinstance(json.loads(line), dict)
        except json.JSONDecodeError:
            return False
    return False


def read_text(path: str | os.PathLike) -> str:
    """The whole of a UTF-8 text file (see :func:`iter_text_lines`)."""
    return "".join(line for _, line in iter_text_lines(path))


def pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], role: str, source: str, option: str) -> str:
    """The column to use for ``role``: the one asked for, else the first known name present."""
    if wanted is not None:
        if wanted not in columns:
            raise ConfigError(f"{source}: no {role} column {wanted!r} ({option}); columns found: {', '.join(columns) or 'none'}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise ConfigError(
        f"{source}: no {role} column (looked for {', '.join(candidates)}); columns found: "
        f"{', '.join(columns) or 'none'}; name it with {option}"
    )
