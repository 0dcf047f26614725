"""``asrtune manifest align``: long recordings + full transcripts -> a segment manifest.

For each recording the driver

1. decodes the audio with word times, **in windows**: ``window_s`` (10 min) of audio is read
   from the file at a time (``load_audio(path, offset, duration)``) plus ``overlap_s`` (30 s)
   of the next window, and handed to
   :func:`asrtune.transcription.longform.transcribe_audio` (VAD segments of <= 30 s, Whisper
   cross-attention or CTC forced-alignment word times). A word is kept from the window whose
   middle it falls in (more than ``overlap_s / 2`` from that window's cut), so a word is never
   lost or doubled at a window edge. Peak memory is one window of audio plus the model, whatever
   the length of the file; only the words (a few hundred kB an hour) accumulate;
2. aligns the transcript to the recognised words (:func:`~asrtune.alignment.text_align.align_text`);
3. cuts segments and rejects mismatched stretches
   (:func:`~asrtune.alignment.segmenter.segment_alignment`);
4. asks the model for a second opinion on rejected stretches that have recognised speech: a
   transcript it finds nearly as likely as its own hypothesis there was misheard, not wrong,
   and is kept (:func:`~asrtune.alignment.verify.rescue_stretches`).

Outputs: the segment manifest (``offset``/``duration`` into the original file, or, with
``cut_dir``, one FLAC per segment), and ``rejected.jsonl`` beside it (one line per rejected
stretch, with ``source``, times, reason, the transcript words and what was heard).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

from asrtune.alignment.words import Word
from asrtune.alignment.limits import TokenCounter, whisper_token_counter
from asrtune.alignment.segmenter import AlignedSegment, RejectedStretch, SegmentRules, segment_alignment, segment_parts
from asrtune.alignment.text_align import align_text, word_key
from asrtune.alignment.verify import rescue_stretches
from asrtune.data.audio import AUDIO_EXTENSIONS, SAMPLE_RATE_HZ, audio_info, load_audio, write_flac
from asrtune.data.manifest import Utterance, read_manifest, write_manifest
from asrtune.data.textfile import JSON_LINES_SUFFIXES, is_json_lines, read_text
from asrtune.errors import AsrtuneError, ConfigError
from asrtune.fileio import atomic_open
from asrtune.transcription.longform import transcribe_audio

WINDOW_S = 600.0  # s of audio decoded at once: bounds memory on multi-hour files
OVERLAP_S = 30.0  # s both neighbouring windows decode; words are taken > 15 s from a window's cut
REJECTED_NAME = "rejected.jsonl"
OVERLAP_TOLERANCE_S = 0.01  # s two segment lines of one recording may share (rounded offsets and durations)
# fields an earlier alignment wrote on its segments: they describe those segments, not the recording
ALIGN_FIELDS = ("segments", "align_score", "logprob_gap", "source", "source_start")

Transcriber = Callable[..., list]  # transcribe_audio(recognizer, audio, *, word_timestamps=True) -> list[Segment]


@dataclass(frozen=True)
class Recording:
    """A long audio file and its full transcript."""

    audio: str
    transcript: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlignSummary:
    """What one ``manifest align`` run did."""

    recordings: int = 0
    segments: int = 0
    rejected: int = 0
    audio_s: float = 0.0
    kept_s: float = 0.0
    words: int = 0
    kept_words: int = 0

    def line(self) -> str:
        kept = 100 * self.kept_s / self.audio_s if self.audio_s else 0.0
        return (f"{self.recordings} recording(s), {self.audio_s / 60:.1f} min: {self.segments} segments "
                f"({self.kept_s / 60:.1f} min, {kept:.1f} % of the audio; {self.kept_words}/{self.words} transcript words), "
                f"{self.rejected} rejected stretch(es)")


def window_starts(duration: float, window_s: float = WINDOW_S) -> list[float]:
    """Where each decoding window begins.

    >>> window_starts(1500.0)
    [0.0, 600.0, 1200.0]
    """
    if not window_s > 0:
        raise ConfigError(f"--window must be > 0 seconds, got {window_s}")
    n = max(1, int(-(-duration // window_s)))
    return [k * window_s for k in range(n)]


def hypothesis_words(
    recognizer,
    audio_path: str,
    window_s: float = WINDOW_S,
    overlap_s: float = OVERLAP_S,
    vad: str = "silero",
    transcriber: Transcriber | None = None,
    progress: bool = False,
) -> list[Word]:
    """Recognised words with times in seconds from the start of ``audio_path``, decoded window by window."""
    transcribe = transcriber or transcribe_audio
    duration = audio_info(audio_path)[0]
    starts = window_starts(duration, window_s)
    words: list[Word] = []
    for k, start in enumerate(_progress(starts, progress and len(starts) > 1, f"decode {Path(audio_path).name}", "window")):
        audio = load_audio(audio_path, offset=start, duration=min(window_s + overlap_s, duration - start))
        keep_from = start + (overlap_s / 2 if k else 0.0)
        keep_to = start + window_s + overlap_s / 2 if k + 1 < len(starts) else float("inf")
        for segment in transcribe(recognizer, audio, vad=vad, word_timestamps=True):
            for w in segment.words:
                if keep_from <= start + w.start < keep_to:
                    words.append(Word(w.text, round(start + w.start, 3), round(start + w.end, 3), w.probability))
        del audio
    return words


def align_recording(
    recognizer,
    recording: Recording,
    rules: SegmentRules = SegmentRules(),
    count_tokens: TokenCounter | None = None,
    window_s: float = WINDOW_S,
    vad: str = "silero",
    transcriber: Transcriber | None = None,
    progress: bool = False,
) -> tuple[list[AlignedSegment], list[RejectedStretch], float]:
    """Segments, rejected stretches and the audio's duration for one recording."""
    duration = audio_info(recording.audio)[0]
    words = hypothesis_words(recognizer, recording.audio, window_s, vad=vad, transcriber=transcriber, progress=progress)
    alignment = align_text(recording.transcript, words)
    count_tokens = count_tokens or whisper_token_counter()
    segments, rejected = segment_alignment(alignment, recording.audio, rules, count_tokens, duration)
    segments, rejected = rescue_stretches(recognizer, recording.audio, alignment, segments, rejected, rules, count_tokens, duration)
    segments = [replace(s, parts=segment_parts(alignment, s)) for s in segments]
    return segments, rejected, duration


def collect_recordings(inputs: list[str]) -> list[Recording]:
    """``[AUDIO, TRANSCRIPT]``, ``[MANIFEST.jsonl]`` (one line per long file, ``text`` = its
    transcript) or ``[FOLDER]`` (audio with same-named ``.txt``) as recordings.

    TRANSCRIPT is plain text, or a JSONL manifest whose line(s) for AUDIO give the transcript
    (:func:`transcript_from_manifest`). Every transcript must hold at least one word.
    """
    if len(inputs) == 2:
        audio, text = (Path(p) for p in inputs)
        for p in (audio, text):
            if not p.is_file():
                raise ConfigError(f"{p}: file not found")
        if is_json_lines(text):
            return [transcript_from_manifest(audio, text)]
        return [Recording(str(audio.resolve()), _read_transcript(text))]
    if len(inputs) != 1:
        raise ConfigError("give AUDIO TRANSCRIPT, a MANIFEST.jsonl, or a FOLDER of audio with same-named .txt transcripts")
    src = Path(inputs[0])
    if src.is_dir():
        found = [Recording(str(a.resolve()), _read_transcript(a.with_suffix(".txt")))
                 for a in sorted(src.rglob("*")) if a.suffix.lower() in AUDIO_EXTENSIONS and a.with_suffix(".txt").is_file()]
        if not found:
            raise ConfigError(f"{src}: no audio file with a same-named .txt transcript")
        return found
    if src.suffix.lower() in JSON_LINES_SUFFIXES and src.is_file():
        recordings = []
        for utt in read_manifest(src):
            if utt.offset:
                raise ConfigError(f"{src}:{utt.line_no}: align takes whole recordings; this line has an offset")
            check_has_words(utt.text, f"{src}:{utt.line_no}")
            recordings.append(Recording(utt.audio_filepath, utt.text, dict(utt.extra)))
        return recordings
    raise ConfigError(f"{src}: not a manifest (.jsonl) or a folder; for one recording give AUDIO TRANSCRIPT")


def transcript_from_manifest(audio: Path, manifest: Path) -> Recording:
    """AUDIO's transcript from a JSONL manifest given as TRANSCRIPT.

    The lines whose ``audio_filepath`` (relative paths resolved against the manifest's folder,
    as every manifest reader does) is AUDIO give it: one line's ``text``, or, for a manifest of
    segments of the recording, their texts joined in ``offset`` order. Fields that every such
    line shares (``speaker``, ...) carry over to the segments. No line for AUDIO, or lines that
    overlap in time, is a :class:`ConfigError` saying so.
    """
    target = audio.resolve()
    lines = list(read_manifest(manifest))
    utts = [u for u in lines if Path(u.audio_filepath).resolve() == target]
    if not utts:
        raise ConfigError(f"{manifest}: a JSONL manifest, and none of its {len(lines)} line(s) is for {audio} "
                          f"(audio_filepath resolves against the manifest's folder: line {lines[0].line_no} names "
                          f"{lines[0].audio_filepath}); give the recording's manifest, a plain-text transcript, or "
                          "the manifest alone to align every recording it lists")
    utts.sort(key=lambda u: (u.offset, u.line_no or 0))
    for a, b in zip(utts, utts[1:]):
        if b.offset < a.offset + max(a.duration, 0.0) - OVERLAP_TOLERANCE_S or b.offset == a.offset:
            raise ConfigError(f"{manifest}: lines {a.line_no} and {b.line_no} overlap on {audio} (from {a.offset:g} s and "
                              f"{b.offset:g} s); a transcript takes one line per stretch of the recording")
    text = " ".join(" ".join(u.text.split()) for u in utts)
    where = f"{manifest}:{utts[0].line_no}" if len(utts) == 1 else f"{manifest} (lines for {audio.name})"
    check_has_words(text, where)
    shared = {k: v for k, v in utts[0].extra.items() if k not in ALIGN_FIELDS and all(u.extra.get(k) == v for u in utts)}
    return Recording(str(target), text, shared)


def check_has_words(transcript: str, where: str) -> None:
    """A :class:`ConfigError` naming ``where`` for a transcript with nothing to align (no letter
    or digit: empty, ``...``, ``!!!``)."""
    if not any(word_key(token) for token in transcript.split()):
        shown = " ".join(transcript.split())
        shown = repr(shown if len(shown) <= 40 else shown[:40] + "...") if shown else "empty"
        raise ConfigError(f"{where}: the transcript has no words to align ({shown}); nothing was written")


def _read_transcript(path: Path) -> str:
    try:
        raw = read_text(path)
    except OSError as e:
        raise AsrtuneError(f"{path}: cannot read the transcript ({e.strerror or e})") from None
    if raw.lstrip().startswith(("{", "[")) and _is_json(raw):  # e.g. a pretty-printed JSON file
        raise ConfigError(f"{path}: a JSON document, not a transcript; give plain text, or a JSONL manifest "
                          "(one object per line with audio_filepath and text)")
    text = " ".join(raw.split())
    check_has_words(text, str(path))
    return text


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def align_to_manifest(
    recognizer,
    recordings: Iterable[Recording],
    out: str | os.PathLike,
    cut_dir: str | os.PathLike | None = None,
    rules: SegmentRules = SegmentRules(),
    count_tokens: TokenCounter | None = None,
    window_s: float = WINDOW_S,
    vad: str = "silero",
    transcriber: Transcriber | None = None,
    progress: bool = False,
) -> AlignSummary:
    """Align every recording; write the segment manifest ``out`` and ``rejected.jsonl`` beside it.

    A recording whose transcript has no words is a :class:`ConfigError` before anything is
    decoded or written."""
    out = Path(out)
    if out.suffix not in (".jsonl", ".json"):
        raise ConfigError(f"--out {out}: the output is a JSONL manifest; give a .jsonl path")
    rules.check()
    recordings = list(recordings)
    for recording in recordings:
        check_has_words(recording.transcript, recording.audio)
    summary = AlignSummary()
    utterances: list[Utterance] = []
    rejected_lines: list[dict] = []
    stems = [Path(r.audio).stem for r in recordings]
    if cut_dir is not None and len(set(stems)) < len(stems):
        twice = next(s for s in stems if stems.count(s) > 1)
        raise ConfigError(f"--cut {cut_dir}: two recordings are named {twice!r}; their segment files would collide")
    for recording in _progress(recordings, progress and len(recordings) > 1, "align", "recording"):
        segments, rejected, duration = align_recording(recognizer, recording, rules, count_tokens, window_s, vad, transcriber, progress)
        utterances += list(_utterances(recording, segments, cut_dir))
        rejected_lines += [r.to_dict() for r in rejected]
        summary.recordings += 1
        summary.segments += len(segments)
        summary.rejected += len(rejected)
        summary.audio_s += duration
        summary.kept_s += sum(s.end - s.start for s in segments)
        summary.words += len(recording.transcript.split())
        summary.kept_words += sum(s.last_word - s.first_word for s in segments)
    write_manifest(out, utterances)
    with atomic_open(out.with_name(REJECTED_NAME)) as f:
        for line in rejected_lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return summary


def _progress(items: list, enabled: bool, desc: str, unit: str):
    if not enabled:
        return items

    return tqdm(items, desc=desc, unit=unit, disable=None, leave=False)


def _utterances(recording: Recording, segments: list[AlignedSegment], cut_dir: str | os.PathLike | None) -> Iterator[Utterance]:
    for n, seg in enumerate(segments):
        extra = {**recording.extra, "align_score": seg.score}
        if seg.logprob_gap is not None:
            extra["logprob_gap"] = seg.logprob_gap
        if len(seg.parts) > 1:  # Whisper's timestamp targets use these (asrtune.training.targets)
            extra["segments"] = [{"start": a, "end": b, "text": t} for a, b, t in seg.parts]
        if cut_dir is None:
            yield Utterance(recording.audio, seg.text, seg.end - seg.start, seg.start, extra)
            continue
        path = Path(cut_dir) / f"{Path(recording.audio).stem}-{n:05d}.flac"
        write_flac(path, load_audio(recording.audio, offset=seg.start, duration=seg.end - seg.start))
        yield Utterance(str(path.resolve()), seg.text, seg.end - seg.start, 0.0, {**extra, "source": recording.audio, "source_start": seg.start})


__all__ = ["AlignSummary", "Recording", "align_recording", "align_to_manifest", "check_has_words", "collect_recordings",
           "hypothesis_words", "transcript_from_manifest", "window_starts"]
