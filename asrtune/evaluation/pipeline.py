"""``evaluate``: decode manifests with a recogniser, score, and write the report folder.

Clips of up to 30 s are decoded in batches with utterances sorted by duration (longest first:
similar lengths share a batch, so there is little padding, and an out-of-memory batch shows up
at once rather than at the end). Audio for the next batch is loaded in a background thread
while the current batch decodes. A longer recording is decoded as ``asrtune transcribe`` does
(:func:`asrtune.transcription.longform.transcribe_audio`: cut at pauses by the VAD, segments
decoded in a batch) and the whole transcript is scored against its reference; its line in
utterances.jsonl carries the segments. A file that cannot be loaded or decoded is listed under
``failed`` in the report and skipped; it never stops the run.

``score_file`` scores transcripts another system made (``asrtune eval --hypotheses``) into the
same report, without a model.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
from asrtune.data.manifest import Utterance, load_manifest
from asrtune.errors import AsrtuneError, ConfigError
from asrtune.evaluation.bootstrap import N_RESAMPLES, SEED
from asrtune.evaluation.hypotheses import describe_hypotheses, hypotheses_for
from asrtune.evaluation.report import write_report
from asrtune.evaluation.schema import EvalReport, Failure, ModelInfo, Speed
from asrtune.evaluation.scoring import Report, groupable_fields, score_hypotheses, with_wall_time
from asrtune.evaluation.terms import load_terms
from asrtune.inference import load_recognizer
from asrtune.inference.options import RecognizerOptions
from asrtune.models.whisper_spec import WINDOW_SECONDS
from asrtune.text.normalizers import get_normalizer
from asrtune.transcription.longform import transcribe_audio

MAX_CLIP_SECONDS = WINDOW_SECONDS  # longer recordings are segmented at pauses (long-form path)
LONG_VAD = "silero"  # the segmentation `asrtune transcribe` uses by default


def _load(utt: Utterance) -> np.ndarray:
    # A segment of a longer file is read by offset/duration; a whole-file utterance reads it all
    # (manifest durations are often rounded and must not clip the end).
    duration = utt.duration if utt.offset and utt.duration else None
    return load_audio(utt.audio_filepath, offset=utt.offset, duration=duration)


def is_long(audio: np.ndarray) -> bool:
    """True for audio that does not fit one recogniser window (decoded long-form).

    >>> is_long(np.zeros(30 * SAMPLE_RATE_HZ)), is_long(np.zeros(31 * SAMPLE_RATE_HZ))
    (False, True)
    """
    return len(audio) > MAX_CLIP_SECONDS * SAMPLE_RATE_HZ + 1


def _failure(utt: Utterance, manifest: str | None, error: Exception | str) -> Failure:
    return Failure(utt.id, utt.audio_filepath, str(error), manifest=manifest, line=utt.line_no)


@dataclass
class Decoded:
    """What :func:`decode_utterances` made: per utterance a hypothesis (None = failed) and, for a
    long-form recording, its segments (``Segment.to_dict()`` records; None for a clip)."""

    hyps: list[str | None]
    segments: list[list[dict] | None]
    failed: list[Failure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: {"decode_s": 0.0, "load_s": 0.0, "audio_s": 0.0})


def decode_utterances(
    recognizer,
    utterances: Sequence[Utterance],
    batch_size: int = 16,
    manifest_of: Sequence[str | None] | None = None,
    progress: bool = True,
) -> Decoded:
    """Transcribe ``utterances`` (clips batched, longer recordings long-form; see the module doc).

    Timings: ``decode_s`` (time inside the recogniser and, long-form, the VAD), ``load_s``
    (audio loading not hidden behind decoding), ``audio_s`` (seconds of audio decoded).
    """
    from tqdm.auto import tqdm  # heavy: tqdm.auto

    n = len(utterances)
    manifest_of = list(manifest_of) if manifest_of is not None else [None] * n
    order = sorted(range(n), key=lambda i: -float(utterances[i].duration or 0.0))
    batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    out = Decoded([None] * n, [None] * n)
    timings = out.timings

    def load_batch(idx: list[int]) -> list[tuple[int, np.ndarray | None, Exception | None]]:
        loaded = []
        for i in idx:
            try:
                loaded.append((i, _load(utterances[i]), None))
            except AsrtuneError as e:
                loaded.append((i, None, e))
        return loaded

    def fail(i: int, error: Exception | str) -> None:
        out.failed.append(_failure(utterances[i], manifest_of[i], error))

    def run(idx: list[int], audios: list[np.ndarray]) -> None:
        start = time.perf_counter()
        try:
            texts = recognizer.transcribe(audios)
        except (AsrtuneError, RuntimeError, ValueError) as batch_error:
            timings["decode_s"] += time.perf_counter() - start
            if len(idx) == 1:
                fail(idx[0], f"decoding failed: {batch_error}")
                return
            for i, audio in zip(idx, audios):  # find the culprit: retry one by one
                run([i], [audio])
            return
        timings["decode_s"] += time.perf_counter() - start
        for i, text, audio in zip(idx, texts, audios):
            out.hyps[i] = text if isinstance(text, str) else ""
            timings["audio_s"] += len(audio) / SAMPLE_RATE_HZ

    def run_long(i: int, audio: np.ndarray) -> None:
        start = time.perf_counter()
        try:
            segments = transcribe_audio(recognizer, audio, vad=LONG_VAD)
        except (AsrtuneError, RuntimeError, ValueError) as error:
            fail(i, f"decoding failed: {error}")
            return
        finally:
            timings["decode_s"] += time.perf_counter() - start
        out.segments[i] = [s.to_dict() for s in segments]
        out.hyps[i] = " ".join(s.text for s in segments)  # as transcripts.jsonl joins them
        timings["audio_s"] += len(audio) / SAMPLE_RATE_HZ

    bar = tqdm(total=n, desc="decoding", unit="utt", disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load_batch, batches[0]) if batches else None
        for b in range(len(batches)):
            wait_start = time.perf_counter()
            loaded = pending.result()
            timings["load_s"] += time.perf_counter() - wait_start
            pending = pool.submit(load_batch, batches[b + 1]) if b + 1 < len(batches) else None
            ok_idx, ok_audio = [], []
            for i, audio, error in loaded:
                if error is not None:
                    fail(i, error)
                elif is_long(audio):
                    run_long(i, audio)
                else:
                    ok_idx.append(i)
                    ok_audio.append(audio)
            if ok_idx:
                run(ok_idx, ok_audio)
            bar.update(len(batches[b]))
    bar.close()
    return out


def _load_manifests(manifests: Sequence[str | os.PathLike], limit: int | None) -> tuple[list[Utterance], list[str]]:
    utterances, manifest_of = [], []
    for path in manifests:
        utts = load_manifest(path)
        if limit is not None:
            utts = utts[:limit]
        utterances += utts
        manifest_of += [os.fspath(path)] * len(utts)
    if not utterances:
        raise AsrtuneError(f"--manifest: no utterances in {', '.join(map(os.fspath, manifests))}")
    return utterances, manifest_of


def _check_inputs(
    manifests: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    normalizer: str,
    terms: str | os.PathLike | Sequence[str] | None,
    compare: str | os.PathLike | None,
    limit: int | None,
) -> tuple[list[str], list[str] | None]:
    """Every check that needs no model, so a typo costs a second: (manifest paths, term list)."""
    manifests = [os.fspath(manifests)] if isinstance(manifests, (str, os.PathLike)) else [os.fspath(m) for m in manifests]
    if not manifests:
        raise ConfigError("--manifest: give at least one manifest")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    get_normalizer(normalizer)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out {os.fspath(out_dir)}: is a file; give a folder for the report")
    term_list = None
    if terms is not None:
        term_list = load_terms(terms) if isinstance(terms, (str, os.PathLike)) else list(terms)
    if compare is not None and not os.path.isfile(os.path.join(compare, "report.json")):
        raise AsrtuneError(f"--compare {compare}: no report.json there (give the --out folder of an earlier asrtune eval)")
    return manifests, term_list


def evaluate(
    model,
    manifests: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: RecognizerOptions | None = None,
    *,
    normalizer: str = "whisper-en",
    terms: str | os.PathLike | Sequence[str] | None = None,
    compare: str | os.PathLike | None = None,
    limit: int | None = None,
    by_fields: Sequence[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    progress: bool = True,
    name: str | None = None,
) -> EvalReport:
    """Decode ``manifests`` with ``model``, score, write the report into ``out_dir``; return the report.

    ``model`` is anything :func:`asrtune.models.resolve_model` accepts (hub id, local folder,
    training run) or an already-loaded :class:`asrtune.inference.Recognizer`; ``options`` say how
    to decode (engine, beam, prompt, ``bias_terms``, ...) and are recorded in the report's model
    description. ``terms`` (a file or a list) are only scored (recall/precision per term): they
    never change decoding, so the recall measures the model, not a bias towards the list.
    ``limit`` keeps the first N utterances of each manifest; ``name`` labels the system in the
    report (``model.label``). Recordings longer than 30 s are decoded long-form (module doc).

    >>> report = evaluate("openai/whisper-tiny.en", "data/test.jsonl", "reports/base")  # doctest: +SKIP
    >>> report.normalized.wer, report.confidence_interval.normalized.high, report.speed.rtf  # doctest: +SKIP
    (0.027, 0.035, 0.021)
    """
    wall_start = time.perf_counter()
    options = (options or RecognizerOptions()).validate()
    manifests, term_list = _check_inputs(manifests, out_dir, normalizer, terms, compare, limit)
    if isinstance(options.bias_terms, (str, os.PathLike)):
        load_terms(options.bias_terms, "--bias-terms")  # missing or empty: say so before the model loads
    utterances, manifest_of = _load_manifests(manifests, limit)
    groupable_fields(utterances, by_fields)  # an unknown --by field, too

    if hasattr(model, "transcribe"):
        recognizer, decoding = model, None  # decodes as it was built; only batch_size applies
    else:
        recognizer, decoding = load_recognizer(model, options), options.to_dict()
    batch_size = options.batch_size
    load_s = time.perf_counter() - wall_start
    model_info = dict(recognizer.describe())
    model_info.setdefault("requested", model if isinstance(model, str) else str(getattr(model, "name", model)))
    # The recogniser knows the beam it really uses (CTC + LM widens beam_size=1 to its default beam).
    model_info.setdefault("beam_size", options.beam_size)
    model_info.update({"batch_size": batch_size, "term_biasing": bool(decoding and decoding["bias_terms"])})
    if decoding is not None:
        model_info["decoding"] = decoding
    if name:
        model_info["label"] = name

    decoded = decode_utterances(recognizer, utterances, batch_size, manifest_of, progress)
    keep = [i for i, h in enumerate(decoded.hyps) if h is not None]
    failed, timings = decoded.failed, decoded.timings
    if not keep:
        raise AsrtuneError(f"every utterance failed to decode; first error: {failed[0].audio_filepath}: {failed[0].error}")
    audio_s = timings["audio_s"]
    speed = Speed(
        utterances_decoded=len(keep),
        long_form_recordings=sum(1 for i in keep if decoded.segments[i] is not None),
        audio_s=round(audio_s, 3),
        audio_hours=round(audio_s / 3600, 5),
        decode_s=round(timings["decode_s"], 3),
        audio_wait_s=round(timings["load_s"], 3),
        model_load_s=round(load_s, 3),
        rtf=round(timings["decode_s"] / audio_s, 5) if audio_s else None,
        utterances_per_s=round(len(keep) / timings["decode_s"], 3) if timings["decode_s"] else None,
        batch_size=batch_size,
        device=options.device,
    )
    report: Report = score_hypotheses(
        [utterances[i] for i in keep],
        [decoded.hyps[i] for i in keep],
        normalizer=normalizer,
        terms=terms if isinstance(terms, (str, os.PathLike)) else term_list,
        by_fields=by_fields,
        compare=compare,
        manifests=manifests,
        manifest_of=[manifest_of[i] for i in keep],
        model=ModelInfo.from_dict(model_info, "model"),
        speed=speed,
        failed=failed,
        n_resamples=n_resamples,
        seed=seed,
        segments=[decoded.segments[i] for i in keep],
    )
    report = with_wall_time(report, time.perf_counter() - wall_start)  # model load + audio + decode + scoring
    write_report(report, out_dir)
    return report.summary


def score_file(
    hypotheses: str | os.PathLike,
    manifests: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    name: str | None = None,
    normalizer: str = "whisper-en",
    terms: str | os.PathLike | Sequence[str] | None = None,
    compare: str | os.PathLike | None = None,
    limit: int | None = None,
    by_fields: Sequence[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> EvalReport:
    """Score a hypotheses file from any system against ``manifests``; the same report as :func:`evaluate`.

    ``hypotheses`` is JSONL in any shape :mod:`asrtune.evaluation.hypotheses` reads (an
    ``utterances.jsonl`` of a report, ``transcripts.jsonl`` of ``asrtune transcribe``, or
    ``{"id"|"audio_filepath", "text"}`` lines); every manifest utterance (after ``limit``) needs
    exactly one. ``name`` labels the system (``model.label``, default the file name).

    >>> score_file("other_system.jsonl", "data/test.jsonl", "reports/other", name="vendor-x")  # doctest: +SKIP
    """
    manifests, term_list = _check_inputs(manifests, out_dir, normalizer, terms, compare, limit)
    utterances, manifest_of = _load_manifests(manifests, limit)
    hyps = hypotheses_for(utterances, hypotheses)
    model_info = describe_hypotheses(hypotheses) | {"label": name or os.path.basename(os.fspath(hypotheses))}
    report = score_hypotheses(
        utterances,
        hyps,
        normalizer=normalizer,
        terms=terms if isinstance(terms, (str, os.PathLike)) else term_list,
        by_fields=by_fields,
        compare=compare,
        manifests=manifests,
        manifest_of=manifest_of,
        model=model_info,
        n_resamples=n_resamples,
        seed=seed,
    )
    write_report(report, out_dir)
    return report.summary


def evaluate_hypotheses(
    utterances: Sequence[Utterance],
    hypotheses: Sequence[str],
    out_dir: str | os.PathLike,
    **kwargs: Any,
) -> EvalReport:
    """Score hypotheses made elsewhere (trainer, demo) and write the same report folder as
    :func:`evaluate`; ``kwargs`` go to :func:`asrtune.evaluation.scoring.score_hypotheses`.

    >>> evaluate_hypotheses(dev_utts, dev_hyps, "runs/acc/dev_report", model={"name": "runs/acc/best"})  # doctest: +SKIP
    """
    report = score_hypotheses(utterances, hypotheses, **kwargs)
    write_report(report, out_dir)
    return report.summary
