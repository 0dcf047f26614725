"""Append-only JSONL journals (``transcripts.jsonl``, ``errors.jsonl``) that survive ``kill -9``.

Each finished file is appended as one complete line, flushed and fsync'ed, so after a crash the
journal holds every finished file once plus, at worst, one truncated last line. Opening a journal
for resuming reads the valid lines, drops the truncated one and any duplicate, and rewrites the
file atomically before appending again, so the line a crash cut short never ends up in the middle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from asrtune.fileio import atomic_open

KEY = "file"  # every journal line is a JSON object identified by its "file" field


def read_journal(path: str | os.PathLike) -> dict[str, dict]:
    """Valid records of a journal by key, in file order (later duplicates win); {} if absent."""
    records: dict[str, dict] = {}
    path = Path(path)
    if not path.exists():
        return records
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:  # the line a kill cut short
                continue
            if isinstance(obj, dict) and isinstance(obj.get(KEY), str):
                records.pop(obj[KEY], None)
                records[obj[KEY]] = obj
    return records


def write_journal(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Replace the journal atomically with ``records`` (one JSON line each)."""
    with atomic_open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


class Journal:
    """An append-only JSONL file of records keyed by ``"file"``.

    ``resume=False`` starts it empty; ``resume=True`` keeps its valid records (see :attr:`records`).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.jsonl")
    >>> with Journal(path) as j:
    ...     j.append({"file": "a.wav", "text": "hi"})
    >>> sorted(Journal(path, resume=True).records)
    ['a.wav']
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False):
        self.path = Path(path)
        self.records: dict[str, dict] = read_journal(self.path) if resume else {}
        write_journal(self.path, self.records.values())
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        """Add one complete line and force it to disk before returning."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[record[KEY]] = record

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
