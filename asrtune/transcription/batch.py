"""``transcribe(inputs, model, out_dir)``: resumable batch transcription of files, folders, manifests.

Output folder layout::

    out_dir/
      transcripts.jsonl     one line per finished file: file, duration, text, segments [{start, end, text}]
      errors.jsonl          one line per failed file: file, path, error
      summary.json          counts, audio hours, wall time, real-time factor, model
      <stem>.txt|.srt|.vtt|.json   per-file outputs (stems mirror input folders; see inputs.py)

``transcripts.jsonl`` doubles as the done-marker journal: a file counts as done when its line is
there, which happens only after its per-file outputs were written atomically. ``resume=True``
skips those files (a line cut short by a kill is dropped and that file redone), so after any
number of kills and resumes each file is in ``transcripts.jsonl`` exactly once. At the end the
journal is rewritten atomically in input order.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from asrtune.data.terms import load_terms
from asrtune.errors import ConfigError
from asrtune.fileio import write_json_atomic
from asrtune.inference import load_recognizer
from asrtune.inference.options import RecognizerOptions
from asrtune.transcription import parallel
from asrtune.transcription.inputs import collect_sources
from asrtune.transcription.journal import Journal, read_journal, write_journal
from asrtune.transcription.runner import FileOutcome, transcribe_sources
from asrtune.transcription.subtitles import SubtitleOptions
from asrtune.transcription.vad import MAX_SEGMENT_S, VAD_METHODS
from asrtune.transcription.writers import ALL_FORMATS, write_outputs

TRANSCRIPTS = "transcripts.jsonl"
ERRORS = "errors.jsonl"
SUMMARY = "summary.json"
DEFAULT_FORMATS = ("txt", "srt", "jsonl")


@dataclass
class TranscriptionSummary:
    """What a run did. ``rtf`` = processing wall time / audio duration (lower is faster).

    >>> TranscriptionSummary(out_dir="t", files=3, transcribed=2, failed=1).ok
    False
    """

    out_dir: str
    files: int = 0
    transcribed: int = 0
    skipped: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    rtf: float | None = None
    model: dict = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"txt,srt"`` or ``["txt", "srt"]`` -> validated tuple; raises ConfigError naming the bad one.

    >>> parse_formats("srt, jsonl")
    ('srt', 'jsonl')
    """
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    bad = [f for f in items if f not in ALL_FORMATS]
    if bad or not items:
        raise ConfigError(f"--format: unknown format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(ALL_FORMATS)}")
    return tuple(dict.fromkeys(items))


def transcribe(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    model,
    out_dir: str | os.PathLike,
    options: RecognizerOptions | None = None,
    *,
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    workers: int = 1,
    resume: bool = False,
    use_ray: bool = False,
    ray_address: str | None = None,
    max_segment_s: float = MAX_SEGMENT_S,
    vad: str = "silero",
    subtitles: SubtitleOptions | None = None,
    progress: bool = True,
    stdin: IO[str] | None = None,
) -> TranscriptionSummary:
    """Transcribe every audio file in ``inputs`` into ``out_dir`` (see the module docstring).

    >>> s = transcribe(["recordings/"], "runs/acc/best", "transcripts", formats="txt,srt")  # doctest: +SKIP
    >>> s.failed, round(s.rtf, 3)                                                              # doctest: +SKIP
    (0, 0.041)

    ``model`` is a model name/folder, loaded with :func:`asrtune.inference.load_recognizer` and
    ``options`` (engine, batch size, beam, prompt, ``bias_terms``, ...), or an already loaded
    :class:`~asrtune.inference.Recognizer` (single process only; then only ``options.batch_size``
    applies). ``options.word_timestamps`` adds each segment's words to the json/jsonl records
    and builds SRT/VTT cues from them, laid out by ``subtitles``.
    """
    fmts = parse_formats(formats)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"--out {out_dir}: is a file; give a folder for the transcripts")
    options = (options or RecognizerOptions()).validate()
    subtitles = (subtitles or SubtitleOptions()).validate()
    _check_options(workers, max_segment_s, vad, model, use_ray)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    sources = collect_sources([os.fspath(i) for i in inputs], stdin=stdin)
    if not sources:
        raise ConfigError(f"no audio found in {', '.join(map(str, inputs))} (extensions: see asrtune.data.audio.AUDIO_EXTENSIONS)")

    decoding = options.to_dict()  # for summary.json: a terms file is recorded by its path
    if options.bias_terms is not None and not isinstance(options.bias_terms, list):
        # Read the terms file here, once, before --out exists: workers on other machines need not see it.

        options = options.replace(bias_terms=load_terms(options.bias_terms, "--bias-terms"))

    with _removed_on_failure(Path(out_dir)) as out:
        transcripts = Journal(out / TRANSCRIPTS, resume=resume)
        errors = Journal(out / ERRORS, resume=False)  # failed files are retried on resume
        done = set(transcripts.records)
        todo = [s for s in sources if s.key not in done]
        summary = TranscriptionSummary(out_dir=str(out), files=len(sources), skipped=len(sources) - len(todo))

        segmenting = dict(max_segment_s=max_segment_s, vad=vad, word_timestamps=options.word_timestamps)
        start = time.perf_counter()
        try:
            if todo:
                outcomes, summary.model = _outcomes(model, options, todo, workers, segmenting, use_ray, ray_address)
                if not _is_recognizer(model):
                    summary.model["decoding"] = decoding
                start = time.perf_counter()  # the real-time factor counts transcription, not model loading
                _consume(outcomes, len(todo), out, fmts, transcripts, errors, summary, start, progress, subtitles)
        finally:
            transcripts.close()
            errors.close()
        summary.wall_s = round(time.perf_counter() - start, 3)
        summary.rtf = round(summary.wall_s / summary.audio_s, 4) if summary.audio_s else None
        summary.errors = list(errors.records.values())

        # Input order reads better than completion order; records of earlier runs' other inputs stay.
        order = {s.key: i for i, s in enumerate(sources)}
        records = sorted(transcripts.records.values(), key=lambda r: order.get(r["file"], len(order)))
        write_journal(out / TRANSCRIPTS, records)
        info = asdict(summary) | {"formats": list(fmts), "workers": workers, "ray": use_ray, "host": _host()}
        write_json_atomic(out / SUMMARY, info)
        return summary


@contextmanager
def _removed_on_failure(out: Path) -> Iterator[Path]:
    """Create ``out``; if this run created it and fails before finishing any file (model not
    found, corrupt weights, Ctrl-C while loading), remove it again: no empty journals left behind."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if created and not (read_journal(out / TRANSCRIPTS) or read_journal(out / ERRORS)):
            if {p.name for p in out.iterdir()} <= {TRANSCRIPTS, ERRORS}:
                shutil.rmtree(out, ignore_errors=True)
        raise


def _check_options(workers: int, max_segment_s: float, vad: str, model, use_ray: bool) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if not 1.0 <= max_segment_s <= MAX_SEGMENT_S:
        raise ConfigError(f"--max-segment-s must be between 1 and {MAX_SEGMENT_S:.0f} seconds, got {max_segment_s}")
    if vad not in VAD_METHODS:
        raise ConfigError(f"--vad must be one of {', '.join(VAD_METHODS)}, got {vad!r}")
    if _is_recognizer(model) and (workers > 1 or use_ray):
        raise ConfigError("pass a model name, not a loaded recogniser, to run with several workers or Ray")
    if use_ray:
        parallel.check_ray()


def _is_recognizer(model) -> bool:
    return callable(getattr(model, "transcribe", None))


def _outcomes(model, options: RecognizerOptions, todo, workers, segmenting, use_ray, ray_address) -> tuple[Iterator[FileOutcome], dict]:
    """The stream of outcomes for the chosen mode, and the model's description for the summary."""
    batch_size = options.batch_size
    if use_ray or workers > 1:
        # Workers rebuild the recogniser from a picklable recipe: the model name and the options as a dict.
        recipe = {"model": model, "options": options.to_dict()}
        run = parallel.run_ray if use_ray else parallel.run_workers
        extra = {"address": ray_address} if use_ray else {}
        return run(recipe, todo, workers, batch_size, segmenting, **extra), {"name": str(model)}
    if _is_recognizer(model):
        recognizer = model
    else:
        recognizer = load_recognizer(model, options)
    describe = dict(recognizer.describe()) if hasattr(recognizer, "describe") else {"name": str(model)}
    return transcribe_sources(recognizer, todo, batch_size=batch_size, **segmenting), describe


def _consume(outcomes, total, out, fmts, transcripts, errors, summary, start, progress, subtitles=None) -> None:
    from tqdm.auto import tqdm  # heavy: tqdm.auto

    with tqdm(total=total, unit="file", desc="transcribe", disable=not progress, dynamic_ncols=True) as bar:
        for outcome in outcomes:
            if outcome.ok:
                try:
                    write_outputs(outcome.record, out, outcome.source.stem, fmts, subtitles)
                except OSError as e:
                    outcome = FileOutcome(outcome.source, error=f"cannot write outputs: {e}")
            if outcome.ok:
                transcripts.append(outcome.record)  # the done-marker: only after its outputs exist
                summary.transcribed += 1
                summary.audio_s += outcome.duration
            else:
                errors.append({"file": outcome.source.key, "path": outcome.source.path, "error": outcome.error})
                summary.failed += 1
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(
                f"audio={summary.audio_s / 3600:.2f}h RTF={elapsed / summary.audio_s:.3f} failed={summary.failed}"
                if summary.audio_s else f"failed={summary.failed}",
                refresh=False,
            )
            bar.update(1)


def _host() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}
