"""Long recordings with SRT/VTT captions become training utterances (``offset``/``duration``).

``asrtune manifest import subtitles DIR_OR_CSV`` pairs each audio file with a same-named
``.srt`` or ``.vtt`` (or reads a CSV of ``audio,subtitle`` pairs), reads the cues and merges
consecutive cues into segments Whisper can train on:

- a segment lasts at most 30 s and its text has at most 443 Whisper tokens (448 decoder
  positions less the special tokens; counted with the real ``openai/whisper-tiny.en``
  tokenizer, see :mod:`asrtune.alignment.limits`);
- segments are cut only at cue boundaries, and always where the pause between two cues exceeds
  ``max_gap_s`` (2 s) or where a cue held nothing but cleaned-away text (``[music]``), so no
  segment spans untranscribed sound.

Parsing is pysubs2's (cue structure, markup, VTT settings, notes and styles). Only the timing
lines are read here first: pysubs2 1.8 takes an SRT time without hours (``00:01.000``) for cue
text and truncates hours above 99, so each ``-->`` line is parsed with :func:`parse_timestamp`
and handed to pysubs2 as a placeholder time that carries the cue's number.

Cleaning (``--clean``, comma-separated rules, default all three; ``none`` keeps the text as
captioned):

- ``markup``: formatting tags (``<i>``, ``<b>``, ``<font ...>``, ``{\\an8}`` and other override
  tags) and line breaks;
- ``speakers``: speaker labels at the start of a line: ``>>``, a dialogue dash ``- ``, and one
  to three capitalised words before a colon (``JOHN:``, ``Dr. Smith:``). WebVTT voice tags
  (``<v John>``) are dropped by pysubs2 whatever the rule;
- ``sound-tags``: bracketed and parenthesised descriptions (``[music]``, ``(laughs)``) and
  music notes (``♪``).

A cue that is zero-length or ends before it starts, begins before the previous cue (out of
order), overlaps the previous cue, or ends past the end of the audio is reported as
``file:cue N: reason`` (N counts cues from 1 in file order) and skipped.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from asrtune.alignment.limits import MAX_SEGMENT_S, MAX_TEXT_TOKENS, whisper_token_counter
from asrtune.data.audio import AUDIO_EXTENSIONS, audio_info
from asrtune.data.manifest import Utterance
from asrtune.data.pack import MAX_WINDOW_S
from asrtune.data.textfile import pick_column
from asrtune.errors import AsrtuneError, ConfigError, ManifestError

SUBTITLE_EXTENSIONS = (".srt", ".vtt")
CLEAN_RULES = ("markup", "speakers", "sound-tags")
MAX_GAP_S = 2.0  # s: a longer pause between cues always ends a segment
PAST_END_TOLERANCE_S = 0.25  # s: captions may end a little after the audio (rounding, fades)
SUBTITLE_COLUMN_CANDIDATES = ("subtitle", "subtitles", "captions", "caption", "srt", "vtt")
AUDIO_COLUMN_CANDIDATES = ("audio", "audio_filepath", "path", "file", "filename", "file_name", "wav")

_TIMING_LINE = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(.*)$")
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})$")
_TAG = re.compile(r"<[^>]*>|\{[^}]*\}")
_SPEAKER = re.compile(r"^\s*(?:>>+\s*|-\s+)?(?:[A-Z][\w'.\-]*(?: [A-Z][\w'.\-]*){0,2}:\s+)?")
_SOUND = re.compile(r"\[[^\]]*\]|\([^)]*\)|[♪♫]")


@dataclass(frozen=True)
class Cue:
    """One caption: its number in the file (from 1), times in seconds, cleaned text."""

    number: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class CueProblem:
    """A cue that was skipped, and why.

    >>> CueProblem("ep1.srt", 7, "overlaps cue 6").format()
    'ep1.srt:cue 7: overlaps cue 6'
    """

    path: str
    cue: int
    reason: str

    def format(self) -> str:
        return f"{self.path}:cue {self.cue}: {self.reason}"


def parse_timestamp(text: str) -> float:
    """Seconds of an SRT/VTT timestamp; hours optional and unbounded.

    >>> parse_timestamp("01:02:03,500"), parse_timestamp("02:03.5"), parse_timestamp("123:00:00.000")
    (3723.5, 123.5, 442800.0)
    """
    m = _TIMESTAMP.match(text.strip())
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    hours, minutes, seconds, fraction = m.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def parse_clean(rules: str | Iterable[str] | None) -> tuple[str, ...]:
    """The cleaning rules named by ``--clean`` (``"all"``/None = every rule, ``"none"`` = none).

    >>> parse_clean("markup, sound-tags"), parse_clean("none"), parse_clean(None) == CLEAN_RULES
    (('markup', 'sound-tags'), (), True)
    """
    if rules is None:
        return CLEAN_RULES
    names = [r.strip() for r in (rules.split(",") if isinstance(rules, str) else rules) if r.strip()]
    if names in (["all"], []):
        return CLEAN_RULES if names else ()
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in CLEAN_RULES]
    if bad:
        raise ConfigError(f"--clean: unknown rule(s) {', '.join(bad)}; choose from {', '.join(CLEAN_RULES)}, all or none")
    return tuple(names)


def clean_text(text: str, rules: tuple[str, ...] = CLEAN_RULES) -> str:
    """Apply the cleaning rules to one cue's text (lines separated by newlines).

    >>> clean_text("<i>JOHN: Hello</i>\\n>> [music] there (laughs)")
    'Hello there'
    >>> clean_text("JOHN: Hello [music]", ("markup",))
    'JOHN: Hello [music]'
    """
    lines = text.split("\n")
    if "markup" in rules:
        lines = [_TAG.sub("", line) for line in lines]
    if "speakers" in rules:
        lines = [_SPEAKER.sub("", line) for line in lines]
    if "sound-tags" in rules:
        lines = [_SOUND.sub(" ", line) for line in lines]
    return " ".join(" ".join(lines).split())


def read_cues(path: str | os.PathLike, rules: tuple[str, ...] = CLEAN_RULES, audio_duration: float | None = None) -> tuple[list[Cue], list[CueProblem]]:
    """The usable cues of an SRT/VTT file in time order (cleaned; a cue cleaned to nothing has
    text ``""``), and the skipped ones as problems."""
    import pysubs2  # heavy: pysubs2

    path = Path(path)
    fmt = {".srt": "srt", ".vtt": "vtt"}.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: not a subtitle file (expected {', '.join(SUBTITLE_EXTENSIONS)})")
    try:
        raw = path.read_text(encoding="utf-8-sig")  # strips a BOM; universal newlines turn CRLF into \n
    except (OSError, UnicodeDecodeError) as e:
        raise AsrtuneError(f"{path}: cannot read subtitles ({e})") from None
    text, times = _placeholder_times(raw, fmt)
    problems: list[CueProblem] = []
    try:
        events = pysubs2.SSAFile.from_string(text, format_=fmt)
    except Exception as e:  # pysubs2 raises several types for malformed files
        raise AsrtuneError(f"{path}: not a valid {fmt.upper()} file ({e})") from None
    cues: list[Cue] = []
    for event in events:
        number = round(event.start / 1000)
        start, end = times[number]
        body = event.plaintext if "markup" in rules else event.text.replace("\\N", "\n")
        problem = _check(number, start, end, cues, audio_duration)
        if problem:
            problems.append(CueProblem(str(path), number, problem))
            continue
        cues.append(Cue(number, start, end, clean_text(body, rules)))
    problems.sort(key=lambda p: p.cue)
    return cues, problems


def _placeholder_times(raw: str, fmt: str) -> tuple[str, dict[int, tuple[float, float]]]:
    """Replace each timing line by ``N s --> N s + 0.5 s`` (N = cue number) and keep the real times."""
    out: list[str] = []
    times: dict[int, tuple[float, float]] = {}
    sep = "," if fmt == "srt" else "."
    for line in raw.split("\n"):
        m = _TIMING_LINE.match(line)
        if m is None:
            out.append(line)
            continue
        number = len(times) + 1
        try:
            times[number] = (parse_timestamp(m.group(1)), parse_timestamp(m.group(2)))
        except ValueError:
            times[number] = (float("nan"), float("nan"))  # reported as unreadable when the cue is checked
        h, rem = divmod(number, 3600)
        out.append(f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}{sep}000 --> {h:02d}:{rem // 60:02d}:{rem % 60:02d}{sep}500{m.group(3)}")
    return "\n".join(out), times


def _check(number: int, start: float, end: float, accepted: list[Cue], audio_duration: float | None) -> str | None:
    """Why cue ``number`` cannot be used after the ``accepted`` ones (None when it can)."""
    if start != start or end != end:  # NaN: the timing line did not parse
        return "unreadable timestamp"
    if end < start:
        return f"ends ({end:.3f}s) before it starts ({start:.3f}s)"
    if end == start:
        return f"zero length (at {start:.3f}s)"
    if accepted and start < accepted[-1].start:
        return f"out of order: starts at {start:.3f}s, before cue {accepted[-1].number} ({accepted[-1].start:.3f}s)"
    if accepted and start < accepted[-1].end:
        return f"overlaps cue {accepted[-1].number} (starts at {start:.3f}s, cue {accepted[-1].number} ends at {accepted[-1].end:.3f}s)"
    if audio_duration is not None and end > audio_duration + PAST_END_TOLERANCE_S:
        return f"past the end of the audio (ends at {end:.3f}s, audio lasts {audio_duration:.3f}s)"
    return None


def merge_cues(
    cues: list[Cue],
    count_tokens: Callable[[str], int],
    max_duration_s: float = MAX_WINDOW_S,
    max_tokens: int = 443,  # 448 decoder positions less 5 special tokens (asrtune.alignment.limits.MAX_TEXT_TOKENS)
    max_gap_s: float = MAX_GAP_S,
) -> tuple[list[list[Cue]], list[Cue]]:
    """Group consecutive cues into segments within the limits; also return cues too long alone.

    A segment ends before a cue that would take it past ``max_duration_s`` or ``max_tokens``,
    that follows a pause longer than ``max_gap_s``, or after a cue whose text was cleaned away.

    >>> cues = [Cue(1, 0, 10, "a"), Cue(2, 10.5, 20, "b"), Cue(3, 21, 31, "c"), Cue(4, 35, 36, "d")]
    >>> groups, too_long = merge_cues(cues, lambda t: len(t.split()))
    >>> [[c.number for c in g] for g in groups]
    [[1, 2], [3], [4]]
    """
    groups: list[list[Cue]] = []
    too_long: list[Cue] = []
    current: list[Cue] = []
    for cue in cues:
        if not cue.text:  # a barrier: [music] or similar, nothing to train on
            current = _close(current, groups)
            continue
        if cue.end - cue.start > max_duration_s or count_tokens(cue.text) > max_tokens:
            current = _close(current, groups)
            too_long.append(cue)
            continue
        if current and (
            cue.start - current[-1].end > max_gap_s
            or cue.end - current[0].start > max_duration_s
            or count_tokens(" ".join(c.text for c in [*current, cue])) > max_tokens
        ):
            current = _close(current, groups)
        current.append(cue)
    _close(current, groups)
    return groups, too_long


def _close(current: list[Cue], groups: list[list[Cue]]) -> list[Cue]:
    if current:
        groups.append(current)
    return []


def iter_subtitles(
    src: str | os.PathLike,
    clean: str | Iterable[str] | None = None,
    max_gap: float | None = None,
    on_problem: Callable[[CueProblem], None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> Iterator[Utterance]:
    """Utterances (offset/duration into the long file) from audio + subtitle pairs.

    ``src`` is a folder (searched recursively: each audio file with a same-named ``.srt`` or
    ``.vtt``) or a CSV with an audio and a subtitle column (relative paths resolve against the
    CSV's folder). Skipped cues go to ``on_problem`` (default: one line each on stderr).
    """
    rules = parse_clean(clean)
    gap = MAX_GAP_S if max_gap is None else float(max_gap)
    if not gap >= 0:
        raise ConfigError(f"--max-gap must be >= 0 seconds, got {max_gap}")
    report = on_problem or (lambda p: print(p.format(), file=sys.stderr))
    count = count_tokens or whisper_token_counter()
    for audio, subtitle in _pairs(Path(src)):
        duration = audio_info(audio)[0]
        cues, problems = read_cues(subtitle, rules, duration)
        groups, too_long = merge_cues(cues, count, MAX_SEGMENT_S, MAX_TEXT_TOKENS, gap)
        problems += [CueProblem(str(subtitle), c.number, f"longer than {MAX_SEGMENT_S:g} s or {MAX_TEXT_TOKENS} tokens on its own") for c in too_long]
        for p in sorted(problems, key=lambda p: p.cue):
            report(p)
        for group in groups:
            start, end = group[0].start, group[-1].end
            cue_range = f"{group[0].number}-{group[-1].number}" if len(group) > 1 else str(group[0].number)
            yield Utterance(str(audio), " ".join(c.text for c in group), round(end - start, 3), start, {"cues": cue_range})


def _pairs(src: Path) -> list[tuple[Path, Path]]:
    """(audio, subtitle) pairs from a folder or a CSV."""
    if src.is_dir():
        pairs, unpaired = [], 0
        for audio in sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS):
            subtitle = next((audio.with_suffix(ext) for ext in SUBTITLE_EXTENSIONS if audio.with_suffix(ext).is_file()), None)
            if subtitle is None:
                unpaired += 1
            else:
                pairs.append((audio, subtitle))
        if unpaired:
            print(f"asrtune manifest import: skipped {unpaired} audio file(s) without a .srt or .vtt", file=sys.stderr)
        if not pairs:
            raise ConfigError(f"{src}: no audio file with a same-named {' or '.join(SUBTITLE_EXTENSIONS)} subtitle file")
        return pairs
    if src.is_file():
        return _csv_pairs(src)
    raise ConfigError(f"{src}: not found (subtitles import needs a folder or a CSV of audio,subtitle pairs)")


def _csv_pairs(src: Path) -> list[tuple[Path, Path]]:
    with open(src, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if src.suffix.lower() in (".tsv", ".tab") else ",")
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        audio_col = pick_column(columns, None, AUDIO_COLUMN_CANDIDATES, "audio", str(src), "an 'audio' header")
        sub_col = pick_column(columns, None, SUBTITLE_COLUMN_CANDIDATES, "subtitle", str(src), "a 'subtitle' header")
        pairs = []
        for row in reader:
            audio, subtitle = (row.get(audio_col) or "").strip(), (row.get(sub_col) or "").strip()
            if not audio or not subtitle:
                raise ManifestError(str(src), reader.line_num, f"empty {audio_col if not audio else sub_col!r} cell")
            audio_path, sub_path = (Path(p) if os.path.isabs(p) else src.parent / p for p in (audio, subtitle))
            if not sub_path.is_file():
                raise ManifestError(str(src), reader.line_num, f"subtitle file {sub_path} not found")
            pairs.append((audio_path, sub_path))
    return pairs


__all__ = ["CLEAN_RULES", "Cue", "CueProblem", "clean_text", "iter_subtitles", "merge_cues", "parse_clean", "parse_timestamp", "read_cues"]
