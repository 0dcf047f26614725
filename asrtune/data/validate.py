"""Check every line of a manifest and report every problem at once, in constant memory.

``read_manifest`` stops at the first bad line; this module is what a user runs before training
to see all of them::

    report = validate_manifests(["data/train.jsonl"], on_problem=print)
    report.ok, report.utterances, report.hours, report.by_kind

Each line is checked for: valid JSON object, required fields (``audio_filepath``, ``text``,
``duration``), the file existing and decoding (fully by default, so a truncated FLAC whose header
still announces the full length is caught; ``quick=True`` reads headers only), a positive
duration that agrees with the file within a tolerance, ``offset + duration`` inside the file,
non-empty text, and duplicates (same ``audio_filepath`` and ``offset``).

Memory stays flat for million-line manifests: lines stream through, problems go to a callback
rather than a list, duplicates are tracked as 8-byte hashes in a sorted array, and per-file audio checks
are cached in a bounded LRU (segments of one long recording share one decode).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter, OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from asrtune.data.audio import audio_info, count_decodable_frames
from asrtune.data.manifest import iter_manifest_lines, utterance_from_object
from asrtune.errors import AudioError, ConfigError, ManifestError
from asrtune.fileio import atomic_open, check_file_output

DEFAULT_DURATION_TOLERANCE = 0.1  # s: stated vs measured duration; covers MP3 encoder padding
AUDIO_CACHE_FILES = 4096  # per-file check results kept (bounded, so memory stays flat)
CHUNK_LINES = 32  # lines per task handed to a decode thread

#: Problem kinds, in the order the summary lists them.
PROBLEM_KINDS = (
    "not_json",
    "missing_field",
    "bad_field",
    "missing_file",
    "unreadable_audio",
    "empty_audio",
    "truncated_audio",
    "bad_duration",
    "duration_mismatch",
    "past_end",
    "empty_text",
    "duplicate",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one manifest line.

    >>> Problem("train.jsonl", 7, "missing_file", "file not found", "audio/a.flac").format()
    'train.jsonl:7: missing_file: file not found [audio/a.flac]'
    """

    manifest: str
    line_no: int
    kind: str
    message: str
    audio_filepath: str | None = None

    def format(self) -> str:
        where = f" [{self.audio_filepath}]" if self.audio_filepath else ""
        return f"{self.manifest}:{self.line_no}: {self.kind}: {self.message}{where}"


@dataclass
class ValidationReport:
    """Counts only (no per-line lists), so it stays small for any manifest size."""

    manifests: list[str] = field(default_factory=list)
    lines: int = 0
    utterances: int = 0  # lines with no problem
    seconds: float = 0.0  # audio in the good lines
    bad_lines: int = 0
    by_kind: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    def summary(self) -> str:
        """A few human lines: totals, then problems by kind."""
        head = (
            f"{self.lines} lines in {len(self.manifests)} manifest(s): {self.utterances} good utterances, "
            f"{self.hours:.3f} h; {self.bad_lines} bad line(s)"
        )
        if not self.by_kind:
            return head + " - OK"
        kinds = ", ".join(f"{k}={self.by_kind[k]}" for k in PROBLEM_KINDS if self.by_kind.get(k))
        return f"{head}\nproblems by kind: {kinds}"

    def to_dict(self) -> dict:
        return {
            "manifests": self.manifests,
            "lines": self.lines,
            "utterances": self.utterances,
            "hours": round(self.hours, 6),
            "bad_lines": self.bad_lines,
            "problems_by_kind": {k: self.by_kind[k] for k in PROBLEM_KINDS if self.by_kind.get(k)},
            "ok": self.ok,
        }


@dataclass(frozen=True)
class _AudioCheck:
    """What one file looks like: its measured duration, or the problem that stops it being usable."""

    duration: float | None = None
    kind: str | None = None
    message: str | None = None


def check_audio_file(path: str, quick: bool = False, tolerance: float = DEFAULT_DURATION_TOLERANCE) -> _AudioCheck:
    """Check one audio file: exists, readable, non-empty and (unless ``quick``) fully decodable."""
    if not os.path.exists(path):
        return _AudioCheck(kind="missing_file", message="file not found")
    if os.path.isdir(path):
        return _AudioCheck(kind="missing_file", message="is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        return _AudioCheck(kind="empty_audio", message="file is empty (0 bytes)")
    if not quick:
        try:  # one open: header and full decode together
            decoded, header_frames, rate = count_decodable_frames(path)
        except AudioError as e:
            if _soundfile_can_open(path):  # opened, then failed part way: truncated or corrupt
                return _AudioCheck(kind="truncated_audio", message=e.reason)
            decoded = None  # not a libsndfile format: fall back to the header check below
    if quick or decoded is None:
        try:
            duration, _, _ = audio_info(path)  # libsndfile header, else librosa/audioread
        except AudioError as e:
            kind = "empty_audio" if "empty" in e.reason else "unreadable_audio"
            return _AudioCheck(kind=kind, message=e.reason)
        return _AudioCheck(duration=duration)
    if decoded == 0:  # (a header may announce 0 frames for a streamed FLAC that still decodes)
        return _AudioCheck(kind="empty_audio", message="audio file is empty (0 samples)")
    # MP3 headers estimate the length (encoder delay/padding), hence a tolerance, not equality.
    if decoded < header_frames - tolerance * rate:
        return _AudioCheck(
            kind="truncated_audio",
            message=f"header says {header_frames / rate:.2f}s but only {decoded / rate:.2f}s decode",
        )
    return _AudioCheck(duration=decoded / rate)


def _soundfile_can_open(path: str) -> bool:
    import soundfile as sf  # heavy: soundfile

    try:
        sf.info(path)
        return True
    except Exception:
        return False


class _AudioCache:
    """A bounded LRU of per-file checks, so a long file cut into many segments is decoded once."""

    def __init__(self, quick: bool, tolerance: float, size: int = AUDIO_CACHE_FILES):
        self.quick, self.tolerance, self.size = quick, tolerance, size
        self._items: OrderedDict[str, _AudioCheck] = OrderedDict()

    def get(self, path: str) -> _AudioCheck:
        hit = self._items.get(path)
        if hit is not None:
            self._items.move_to_end(path)
            return hit
        result = check_audio_file(path, self.quick, self.tolerance)
        self._items[path] = result
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return result


@dataclass
class _Line:
    manifest: str
    line_no: int
    raw: str
    problems: list[Problem]
    audio: str | None = None
    stated_duration: float | None = None
    offset: float | None = None  # None: no offset field (the utterance is the whole file)
    text: str | None = None


def _parse(manifest: str, line_no: int, raw: str) -> _Line:
    """Field-level checks that need no audio."""
    line = _Line(manifest, line_no, raw, [])

    def problem(kind: str, message: str) -> _Line:
        line.problems.append(Problem(manifest, line_no, kind, message, line.audio))
        return line

    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        return problem("not_json", f"not valid JSON ({e.msg} at column {e.colno})")
    if not isinstance(obj, dict):
        return problem("not_json", f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("audio_filepath", "text", "duration") if k not in obj]
    if missing:
        if isinstance(obj.get("audio_filepath"), str):
            line.audio = obj["audio_filepath"]
        return problem("missing_field", f"missing field(s) {', '.join(missing)} (have: {', '.join(obj) or 'none'})")
    try:
        utt = utterance_from_object(obj, manifest, line_no)
    except ManifestError as e:
        return problem("bad_field", e.reason)
    line.audio, line.text = utt.audio_filepath, utt.text
    if isinstance(obj["duration"], bool) or not isinstance(obj["duration"], (int, float)):
        return problem("bad_field", f"duration must be a number of seconds, got {obj['duration']!r}")
    line.stated_duration = float(obj["duration"])
    line.offset = utt.offset if "offset" in obj else None
    if line.offset is not None and line.offset < 0:
        problem("bad_field", f"offset must be >= 0, got {line.offset}")
    if line.stated_duration <= 0:
        problem("bad_duration", f"duration must be > 0, got {line.stated_duration}")
    if not utt.text.strip():
        problem("empty_text", "text is empty")
    return line


def _audio_problems(line: _Line, check: _AudioCheck, tolerance: float) -> None:
    def problem(kind: str, message: str) -> None:
        line.problems.append(Problem(line.manifest, line.line_no, kind, message, line.audio))

    if check.kind:
        problem(check.kind, check.message or check.kind)
        return
    measured = check.duration or 0.0
    stated = line.stated_duration
    if stated is None or stated <= 0:
        return
    if line.offset is None:  # a whole file: the stated duration should be the file's
        if abs(stated - measured) > tolerance:
            problem("duration_mismatch", f"duration {stated:.3f}s but the file is {measured:.3f}s")
    elif line.offset + stated > measured + tolerance:
        problem("past_end", f"offset {line.offset:.3f}s + duration {stated:.3f}s is past the end of the file ({measured:.3f}s)")


def _key_hash(audio: str, offset: float | None) -> int:
    """A 64-bit key per utterance for duplicate detection (collision odds ~3e-8 at a million lines)."""
    return int.from_bytes(hashlib.blake2b(f"{audio}\0{offset or 0.0!r}".encode(), digest_size=8).digest(), "little")


class _SeenKeys:
    """A set of 64-bit keys in ~8 bytes each (a Python set of ints costs ~75).

    New keys collect in a small Python set; every ``FLUSH_KEYS`` they are merged into one sorted
    uint64 array searched with :func:`numpy.searchsorted`, so a million-line manifest needs ~8 MB.
    """

    FLUSH_KEYS = 65_536

    def __init__(self) -> None:
        self._np = np
        self._recent: set[int] = set()
        self._sorted = np.empty(0, dtype=np.uint64)

    def add(self, key: int) -> bool:
        """Record ``key``; False when it was already there."""
        if key in self._recent:
            return False
        if self._sorted.size:
            k = self._np.uint64(key)
            i = int(self._np.searchsorted(self._sorted, k))
            if i < self._sorted.size and self._sorted[i] == k:
                return False
        self._recent.add(key)
        if len(self._recent) >= self.FLUSH_KEYS:
            fresh = self._np.fromiter(self._recent, dtype=self._np.uint64, count=len(self._recent))
            self._sorted = self._np.sort(self._np.concatenate([self._sorted, fresh]))
            self._recent.clear()
        return True


def _checked_lines(manifests: list[str], cache: _AudioCache, tolerance: float, jobs: int) -> Iterator[_Line]:
    """Stream parsed lines with audio checked on ``jobs`` threads (libsndfile releases the GIL).

    Lines go to the threads in chunks (per-line tasks would cost more than a cached check), at
    most ``2 * jobs`` chunks in flight, and come back in manifest order.
    """

    def check(line: _Line) -> _Line:
        if line.audio is not None and not any(p.kind in ("not_json", "missing_field", "bad_field") for p in line.problems):
            _audio_problems(line, cache.get(line.audio), tolerance)
        return line

    def lines() -> Iterator[_Line]:
        for manifest in manifests:
            for line_no, raw in iter_manifest_lines(manifest):
                yield _parse(manifest, line_no, raw)

    if jobs <= 1:
        yield from map(check, lines())
        return

    def check_chunk(chunk: list[_Line]) -> list[_Line]:
        return [check(line) for line in chunk]

    # Threads share one cache; a race only means a file is occasionally checked twice.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: deque = deque()
        chunk: list[_Line] = []
        for line in lines():
            chunk.append(line)
            if len(chunk) >= CHUNK_LINES:
                pending.append(pool.submit(check_chunk, chunk))
                chunk = []
                if len(pending) >= 2 * jobs:
                    yield from pending.popleft().result()
        if chunk:
            pending.append(pool.submit(check_chunk, chunk))
        while pending:
            yield from pending.popleft().result()


def validate_manifests(
    manifests: Iterable[str | os.PathLike],
    fix_out: str | os.PathLike | None = None,
    duration_tolerance: float = DEFAULT_DURATION_TOLERANCE,
    quick: bool = False,
    jobs: int | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Check every line of ``manifests``; call ``on_problem`` for each problem; return the counts.

    With ``fix_out``, the good lines are written unchanged to ``fix_out`` and the bad ones to
    ``rejected.jsonl`` beside it, each with its reasons (both atomically). Relative audio paths in
    good lines are rewritten relative to ``fix_out``'s folder so they still resolve.
    """
    manifests = [os.fspath(m) for m in manifests]
    if not manifests:
        raise ConfigError("give at least one manifest to validate")
    if duration_tolerance < 0:
        raise ConfigError(f"--duration-tolerance must be >= 0, got {duration_tolerance}")
    for m in manifests:
        if not Path(m).is_file():
            raise ManifestError(m, None, "manifest not found" if not Path(m).exists() else "not a file")
    jobs = jobs if jobs is not None else min(4, os.cpu_count() or 1)
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if fix_out is not None:
        check_file_output(fix_out, "--fix")
    report = ValidationReport(manifests=manifests)
    cache = _AudioCache(quick, duration_tolerance)
    seen = _SeenKeys()

    with contextlib.ExitStack() as stack:
        good_f = bad_f = None
        if fix_out is not None:
            fix_out = Path(fix_out)
            good_f = stack.enter_context(atomic_open(fix_out, "w"))
            bad_f = stack.enter_context(atomic_open(fix_out.parent / "rejected.jsonl", "w"))
        bar = None
        if progress:
            bar = stack.enter_context(tqdm(desc="validate", unit=" lines", disable=None))
        for line in _checked_lines(manifests, cache, duration_tolerance, jobs):
            report.lines += 1
            if bar is not None:
                bar.update(1)
            if line.audio is not None and not line.problems:
                if not seen.add(_key_hash(line.audio, line.offset)):
                    line.problems.append(
                        Problem(line.manifest, line.line_no, "duplicate", "same audio_filepath and offset as an earlier line", line.audio)
                    )
            if line.problems:
                report.bad_lines += 1
                for p in line.problems:
                    report.by_kind[p.kind] += 1
                    if on_problem is not None:
                        on_problem(p)
                if bad_f is not None:
                    reasons = [f"{p.kind}: {p.message}" for p in line.problems]
                    bad_f.write(json.dumps({"manifest": line.manifest, "line_no": line.line_no, "reasons": reasons, "line": line.raw.rstrip("\n")}, ensure_ascii=False) + "\n")
            else:
                report.utterances += 1
                report.seconds += line.stated_duration or 0.0
                if good_f is not None:
                    good_f.write(_relocated(line, fix_out) + "\n")
    return report


def _relocated(line: _Line, fix_out: Path) -> str:
    """The original line, with a relative ``audio_filepath`` re-pointed from the new manifest's folder."""
    obj = json.loads(line.raw)
    if not os.path.isabs(obj["audio_filepath"]) and "://" not in obj["audio_filepath"]:
        try:
            obj["audio_filepath"] = os.path.relpath(line.audio, fix_out.parent.resolve())
        except ValueError:
            obj["audio_filepath"] = line.audio
    return json.dumps(obj, ensure_ascii=False)


__all__ = ["DEFAULT_DURATION_TOLERANCE", "PROBLEM_KINDS", "Problem", "ValidationReport", "check_audio_file", "validate_manifests"]
