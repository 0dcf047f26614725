"""What to transcribe: files, folders, manifests or a list on stdin, as :class:`AudioSource` items.

Every source gets a unique ``key`` (its id in ``transcripts.jsonl``; the absolute path, plus
``@offset`` for a stretch of a longer file) and a unique output ``stem`` (the per-file outputs'
path relative to the output folder, without extension). Files found in a folder keep their path
below that folder, so the outputs mirror the input tree; other files use their name. Stems are
fixed before any work is shared out, so workers and resumed runs agree on them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Iterable

from asrtune.data.audio import AUDIO_EXTENSIONS
from asrtune.data.manifest import read_manifest
from asrtune.errors import ConfigError

MANIFEST_EXTENSIONS = (".jsonl", ".json")


@dataclass(frozen=True)
class AudioSource:
    """One recording (or one stretch of a recording) to transcribe.

    >>> AudioSource(path="/data/a.flac", key="/data/a.flac", stem="a").offset
    0.0
    """

    path: str
    key: str
    stem: str
    offset: float = 0.0
    #: seconds to read from ``offset``; None = to the end of the file
    duration: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def collect_sources(inputs: Iterable[str], stdin: IO[str] | None = None) -> list[AudioSource]:
    """Expand command-line inputs into a de-duplicated, ordered list of sources.

    ``inputs`` holds audio files, folders (searched recursively for
    :data:`asrtune.data.audio.AUDIO_EXTENSIONS`), JSONL manifests (each utterance's audio, offset
    and duration) or ``-`` (one such input per line read from ``stdin``). A missing path raises
    :class:`ConfigError` naming it; unreadable audio is found later and reported per file.
    """
    found: list[tuple[str, str, float, float | None]] = []  # (path, preferred stem, offset, duration)
    for item in _expand_stdin(inputs, stdin):
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            for f in files:
                found.append((str(f.resolve()), str(f.relative_to(path).with_suffix("")), 0.0, None))
        elif path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
            for utt in read_manifest(path):
                stem = Path(utt.audio_filepath).stem + (f"@{utt.offset:.3f}" if utt.offset else "")
                duration = utt.duration if (utt.offset or utt.duration) and utt.duration > 0 else None
                found.append((os.path.abspath(utt.audio_filepath), stem, float(utt.offset), duration))
        elif path.exists():
            found.append((str(path.resolve()), path.stem, 0.0, None))
        else:
            raise ConfigError(f"input {item}: no such file or folder")
    return _unique(found)


def _expand_stdin(inputs: Iterable[str], stdin: IO[str] | None) -> list[str]:
    out: list[str] = []
    for item in inputs:
        if item == "-":
            stream = stdin if stdin is not None else sys.stdin
            out.extend(line.strip() for line in stream if line.strip() and line.strip() != "-")
        else:
            out.append(item)
    return out


def _unique(found: list[tuple[str, str, float, float | None]]) -> list[AudioSource]:
    """Drop repeated keys; make stems unique (case-insensitively, for macOS/Windows file systems)."""
    sources: list[AudioSource] = []
    keys: set[str] = set()
    stems: set[str] = set()
    for path, stem, offset, duration in found:
        key = path if not offset else f"{path}@{offset:.3f}"
        if key in keys:
            continue
        keys.add(key)
        candidate = stem
        if candidate.lower() in stems:  # a.wav beside a.flac, or two folders with the same layout
            candidate = f"{stem}{Path(path).suffix}"
        n = 2
        base = candidate
        while candidate.lower() in stems:
            candidate = f"{base}-{n}"
            n += 1
        stems.add(candidate.lower())
        sources.append(AudioSource(path=path, key=key, stem=candidate, offset=offset, duration=duration))
    return sources
