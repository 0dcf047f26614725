"""Score hypotheses you already have: counts, CIs, breakdowns, terms, flags, comparison.

This is the part of ``asrtune eval`` that does not decode, so the trainer and the demo can
build the same report from transcripts they made themselves::

    report = score_hypotheses(utterances, hypotheses, normalizer="whisper-en")
    write_report(report, "reports/dev")      # asrtune.evaluation.report

Every utterance is scored twice: *orthographic* (the raw strings with whitespace collapsed
only, so case and punctuation count) and *normalised* (both sides through the named
normaliser). WER and CER values in the report are fractions (0.027 = 2.7 %).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from asrtune import __version__
from asrtune.data.manifest import Utterance
from asrtune.errors import AsrtuneError
from asrtune.evaluation import flags as flag_rules
from asrtune.evaluation.bootstrap import N_RESAMPLES, SEED, ConfidenceInterval, PairedResult, bootstrap_ci, paired_bootstrap
from asrtune.evaluation.hypotheses import canonical_key
from asrtune.evaluation.metrics import ErrorCounts, align_chars_batch, align_words_batch
from asrtune.evaluation.schema import (
    Change, CharCounts, Comparison, EvalReport, Failure, FieldRow, FlagReport, HypothesesComparison, Intervals,
    ManifestCount, ModelInfo, NormalizerInfo, SetScores, Speed, TermReport, WerScore, check_schema_version,
)
from asrtune.evaluation.terms import load_terms, term_stats
from asrtune.text.normalizers import Normalizer, collapse_whitespace, get_normalizer

MAX_FIELD_VALUES = 50  # a manifest field with more distinct values is an id, not a grouping
MAX_LISTED_FLAGS = 200  # report.json lists at most this many flagged utterances (all are in utterances.jsonl)
TOP_CHANGES = 10  # biggest per-utterance improvements/regressions listed in report.json


@dataclass
class Report:
    """A scored evaluation: ``summary`` becomes report.json, ``utterances`` utterances.jsonl."""

    summary: EvalReport
    utterances: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Scores:
    """Per-utterance counts for one view (orthographic or normalised)."""

    words: list[ErrorCounts]
    chars: list[ErrorCounts]
    alignments: list  # word Alignment objects


def _score_view(refs: list[str], hyps: list[str]) -> _Scores:
    word_al = align_words_batch(refs, hyps)
    char_al = align_chars_batch(refs, hyps)
    return _Scores([a.counts for a in word_al], [a.counts for a in char_al], word_al)


def _finite(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _block(scores: _Scores, idx: Sequence[int]) -> WerScore:
    words, chars = ErrorCounts(), ErrorCounts()
    for i in idx:
        words = words + scores.words[i]
        chars = chars + scores.chars[i]
    return WerScore(
        wer=_finite(words.wer),
        cer=_finite(chars.wer),
        hits=words.hits,
        substitutions=words.substitutions,
        insertions=words.insertions,
        deletions=words.deletions,
        errors=words.errors,
        ref_words=words.ref_words,
        hyp_words=words.hyp_words,
        utterances=len(idx),
        chars=CharCounts(chars.hits, chars.substitutions, chars.insertions, chars.deletions, ref_chars=chars.ref_words),
    )


def _ci(scores: _Scores, idx: Sequence[int], n_resamples: int, seed: int) -> ConfidenceInterval:
    errors = np.array([scores.words[i].errors for i in idx], dtype=np.int64)
    refs = np.array([scores.words[i].ref_words for i in idx], dtype=np.int64)
    return bootstrap_ci(errors, refs, n_resamples=n_resamples, seed=seed)


def _intervals(orth: _Scores, norm: _Scores, idx: Sequence[int], n_resamples: int, seed: int) -> Intervals:
    return Intervals(normalized=_ci(norm, idx, n_resamples, seed), orthographic=_ci(orth, idx, n_resamples, seed))


def _summary_for(orth: _Scores, norm: _Scores, idx: Sequence[int], n_resamples: int, seed: int) -> SetScores:
    return SetScores(len(idx), _block(orth, idx), _block(norm, idx), _intervals(orth, norm, idx, n_resamples, seed))


def groupable_fields(utterances: Sequence[Utterance], requested: Sequence[str] | None = None) -> list[str]:
    """Manifest fields worth a breakdown: ``requested`` ones, plus any extra field with scalar
    values taking 2..``MAX_FIELD_VALUES`` distinct values and at most one per two utterances."""
    n = len(utterances)
    values: dict[str, set] = {}
    unhashable: set[str] = set()
    for utt in utterances:
        for key, value in utt.extra.items():
            if isinstance(value, (dict, list)):
                unhashable.add(key)  # nested values are not categories
                continue
            values.setdefault(key, set()).add(value)
    auto = [
        key
        for key, vals in values.items()
        if key not in unhashable and 2 <= len(vals) <= MAX_FIELD_VALUES and len(vals) <= max(2, n // 2)
    ]
    out = list(requested or [])
    for key in requested or []:
        if key not in values:
            raise AsrtuneError(f"--by {key}: no utterance has a field {key!r} (have: {', '.join(sorted(values)) or 'none'})")
    return out + [k for k in sorted(auto) if k not in out]


def _group_key(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def _by_field(utterances, fields, orth, norm, n_resamples, seed) -> dict[str, tuple[FieldRow, ...]]:
    out: dict[str, tuple[FieldRow, ...]] = {}
    for key in fields:
        groups: dict[str, list[int]] = {}
        for i, utt in enumerate(utterances):
            groups.setdefault(_group_key(utt.extra.get(key)), []).append(i)
        rows = []
        for value, idx in groups.items():
            nb, ob = _block(norm, idx), _block(orth, idx)
            ci = _ci(norm, idx, n_resamples, seed)
            rows.append(FieldRow(value, len(idx), nb.wer, nb.cer, (ci.low, ci.high), ob.wer,
                                 nb.substitutions, nb.insertions, nb.deletions, nb.ref_words))

        # Numbers sort as numbers (ages), everything else as text.
        def sort_key(row: FieldRow) -> tuple[int, float, str]:
            try:
                return (0, float(row.value), "")
            except ValueError:
                return (1, 0.0, row.value)

        out[key] = tuple(sorted(rows, key=sort_key))
    return out


def _unique_ids(utterances: Sequence[Utterance]) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for utt in utterances:
        base = utt.id
        k = seen.get(base, 0)
        seen[base] = k + 1
        ids.append(base if k == 0 else f"{base}#{k}")
    return ids


def load_report_dir(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """Read an earlier report's report.json (as a dict: a report of any earlier version) and
    utterances.jsonl (for ``--compare``)."""
    path = Path(path)
    summary_path, utts_path = path / "report.json", path / "utterances.jsonl"
    for p in (summary_path, utts_path):
        if not p.is_file():
            raise AsrtuneError(f"--compare {path}: {p.name} not found (give the --out folder of an earlier asrtune eval)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        records = [json.loads(line) for line in utts_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise AsrtuneError(f"--compare {path}: not a valid asrtune report ({e.msg})") from None
    check_schema_version(summary, f"--compare {summary_path}")
    return summary, records


def _compare(
    this_ids: list[str],
    refs: list[str],
    norm: _Scores,
    orth: _Scores,
    normalizer: Normalizer,
    other_dir: str | os.PathLike,
    n_resamples: int,
    seed: int,
) -> tuple[Comparison, dict[int, dict]]:
    """Paired comparison with an earlier report. The other system's raw hypotheses are re-scored
    here with this report's normaliser and references, so both sides are measured alike."""
    other_summary, other_records = load_report_dir(other_dir)
    # Ids are audio paths: match the same file however each report reached it (symlinks, ..).
    other_by_id = {canonical_key(r["id"]): r for r in other_records if "id" in r and r.get("hyp") is not None}
    this_keys = [canonical_key(uid) for uid in this_ids]
    matched = [i for i, key in enumerate(this_keys) if key in other_by_id]
    if not matched:
        raise AsrtuneError(f"--compare {other_dir}: no utterance ids in common with this evaluation")
    other_hyps = [other_by_id[this_keys[i]]["hyp"] for i in matched]
    m_refs = [refs[i] for i in matched]
    other_orth = _score_view([collapse_whitespace(r) for r in m_refs], [collapse_whitespace(h) for h in other_hyps])
    other_norm = _score_view([normalizer(r) for r in m_refs], [normalizer(h) for h in other_hyps])

    def paired(this: _Scores, other: _Scores) -> PairedResult:
        return _paired(this, matched, other, n_resamples, seed)

    per_utt: dict[int, dict] = {}
    changes = []
    for j, i in enumerate(matched):
        before, after = other_norm.words[j], norm.words[i]
        per_utt[i] = {
            "other_hyp": other_hyps[j],
            "other_errors": before.errors,
            "other_wer": _finite(before.wer),
            "delta_errors": after.errors - before.errors,
        }
        changes.append((after.errors - before.errors, this_ids[i], before.errors, after.errors, before.ref_words))
    deltas = np.array([c[0] for c in changes])
    changes.sort(key=lambda c: c[0])
    as_rows = lambda rows: tuple(Change(uid, b, a, n, d) for d, uid, b, a, n in rows)  # noqa: E731
    other_model, other_norm_info = other_summary.get("model"), other_summary.get("normalizer")
    result = Comparison(
        other_dir=str(other_dir),
        other_model=ModelInfo.from_dict(other_model, "model") if isinstance(other_model, Mapping) else None,
        other_normalizer=NormalizerInfo.from_dict(other_norm_info, "normalizer") if isinstance(other_norm_info, Mapping) else None,
        rescored_with=NormalizerInfo(**normalizer.describe()),
        matched_utterances=len(matched),
        only_in_this=len(this_ids) - len(matched),
        only_in_other=len(set(other_by_id) - set(this_keys)),
        normalized=paired(norm, other_norm),
        orthographic=paired(orth, other_orth),
        improved=int(np.count_nonzero(deltas < 0)),
        worsened=int(np.count_nonzero(deltas > 0)),
        unchanged=int(np.count_nonzero(deltas == 0)),
        biggest_improvements=as_rows([c for c in changes if c[0] < 0][:TOP_CHANGES]),
        biggest_regressions=as_rows([c for c in reversed(changes) if c[0] > 0][:TOP_CHANGES]),
    )
    return result, per_utt


def _paired(this: _Scores, matched: Sequence[int], other: _Scores, n_resamples: int, seed: int) -> PairedResult:
    """Paired bootstrap of this - other: ``this``'s utterances ``matched`` against ``other``'s, in order."""
    e_a = np.array([this.words[i].errors for i in matched])
    r_a = np.array([this.words[i].ref_words for i in matched])
    e_b = np.array([c.errors for c in other.words])
    r_b = np.array([c.ref_words for c in other.words])
    return paired_bootstrap(e_a, r_a, e_b, r_b, n_resamples=n_resamples, seed=seed)


def compare_hypotheses(
    references: Sequence[str],
    hypotheses: Sequence[str],
    other_hypotheses: Sequence[str],
    normalizer: str | Normalizer = "whisper-en",
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> HypothesesComparison:
    """Two systems' hypotheses of the same utterances, scored as ``asrtune eval --compare`` scores
    them: each side's corpus WER with its bootstrap interval (``this``, ``other``: the report's
    ``confidence_interval``) and the paired bootstrap of this - other (``normalized``,
    ``orthographic``: the report's ``compare``), with the per-utterance tally.

    >>> r = compare_hypotheses(["a b", "c d"], ["a b", "c d"], ["a x", "c d"], n_resamples=200)
    >>> r.this.normalized.estimate, r.other.normalized.estimate, r.improved, r.unchanged
    (0.0, 0.25, 1, 1)
    >>> r.normalized.difference, r.normalized.p_value > 0.05
    (-0.25, True)
    """
    if not len(references) == len(hypotheses) == len(other_hypotheses):
        raise ValueError(f"got {len(references)} references, {len(hypotheses)} and {len(other_hypotheses)} hypotheses")
    norm_fn = get_normalizer(normalizer)
    refs = list(references)
    views = {}
    for name, hyps in (("this", hypotheses), ("other", other_hypotheses)):
        hyps = [h if isinstance(h, str) else "" for h in hyps]
        views[name] = (_score_view([norm_fn(r) for r in refs], [norm_fn(h) for h in hyps]),
                       _score_view([collapse_whitespace(r) for r in refs], [collapse_whitespace(h) for h in hyps]))
    idx = list(range(len(refs)))
    (norm, orth), (other_norm, other_orth) = views["this"], views["other"]
    deltas = np.array([a.errors - b.errors for a, b in zip(norm.words, other_norm.words)])
    return HypothesesComparison(
        normalizer=NormalizerInfo(**norm_fn.describe()),
        utterances=len(refs),
        this=_intervals(orth, norm, idx, n_resamples, seed),
        other=_intervals(other_orth, other_norm, idx, n_resamples, seed),
        normalized=_paired(norm, idx, other_norm, n_resamples, seed),
        orthographic=_paired(orth, idx, other_orth, n_resamples, seed),
        improved=int(np.count_nonzero(deltas < 0)),
        worsened=int(np.count_nonzero(deltas > 0)),
        unchanged=int(np.count_nonzero(deltas == 0)),
    )


def score_hypotheses(
    utterances: Sequence[Utterance],
    hypotheses: Sequence[str],
    normalizer: str | Normalizer = "whisper-en",
    terms: Sequence[str] | str | os.PathLike | None = None,
    by_fields: Sequence[str] | None = None,
    compare: str | os.PathLike | None = None,
    manifests: Sequence[str] | None = None,
    manifest_of: Sequence[str] | None = None,
    model: ModelInfo | Mapping[str, Any] | None = None,
    speed: Speed | None = None,
    failed: Sequence[Failure] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    segments: Sequence[list[dict] | None] | None = None,
) -> Report:
    """Score ``hypotheses`` against ``utterances`` (same order) and build the full report.

    ``terms`` is a list of terms or a terms file; ``compare`` an earlier report folder;
    ``manifest_of`` gives each utterance's manifest (enables ``per_manifest`` when several);
    ``model`` (a :class:`ModelInfo` or its dict), ``speed`` and ``failed`` are recorded as given; ``segments`` (per utterance, None
    for a clip) are the timed segments of long-form recordings, kept in utterances.jsonl.

    >>> from asrtune.data import Utterance
    >>> utts = [Utterance("a.wav", "IT'S FIFTY", 1.0), Utterance("b.wav", "HELLO WORLD", 1.0)]
    >>> r = score_hypotheses(utts, ["It is 50.", "hello"], n_resamples=200)
    >>> r.summary.normalized.wer, r.summary.orthographic.wer
    (0.2, 1.25)
    """
    if len(utterances) != len(hypotheses):
        raise ValueError(f"got {len(utterances)} utterances but {len(hypotheses)} hypotheses")
    norm_fn = get_normalizer(normalizer)
    utterances = list(utterances)
    hyps = [h if isinstance(h, str) else "" for h in hypotheses]
    refs = [u.text for u in utterances]
    ids = _unique_ids(utterances)
    n = len(utterances)
    all_idx = list(range(n))

    orth = _score_view([collapse_whitespace(r) for r in refs], [collapse_whitespace(h) for h in hyps])
    norm_refs = [norm_fn(r) for r in refs]
    norm_hyps = [norm_fn(h) for h in hyps]
    norm = _score_view(norm_refs, norm_hyps)

    overall = _summary_for(orth, norm, all_idx, n_resamples, seed)

    # Manifests: per manifest and pooled (the top level) when there are several.
    manifest_of = list(manifest_of) if manifest_of is not None else [None] * n
    listed = list(manifests) if manifests is not None else sorted({m for m in manifest_of if m})
    per_manifest = None
    if len(listed) > 1:
        per_manifest = {
            m: _summary_for(orth, norm, [i for i in all_idx if manifest_of[i] == m], n_resamples, seed) for m in listed
        }

    by_field = _by_field(utterances, groupable_fields(utterances, by_fields), orth, norm, n_resamples, seed)

    # Domain terms.
    term_list = None
    if terms is not None:
        term_list = load_terms(terms) if isinstance(terms, (str, os.PathLike)) else list(terms)
    tstats = term_stats(term_list, norm_refs, norm_hyps, norm_fn) if term_list else None
    term_report = None
    if tstats is not None:
        file = os.fspath(terms) if isinstance(terms, (str, os.PathLike)) else None
        term_report = TermReport.from_dict({k: v for k, v in tstats.items() if k != "per_utterance"} | {"file": file}, "terms")

    # Failure flags.
    utt_flags = [flag_rules.utterance_flags(r, h) for r, h in zip(norm_refs, norm_hyps)]
    flagged = [i for i in all_idx if utt_flags[i]]
    flag_report = FlagReport.from_dict({
        "definitions": flag_rules.DEFINITIONS,
        "counts": {name: sum(1 for f in utt_flags if name in f) for name in flag_rules.FLAG_NAMES},
        "flagged_utterances": len(flagged),
        "utterances": [
            {"id": ids[i], "flags": utt_flags[i], "ref": refs[i], "hyp": hyps[i]} for i in flagged[:MAX_LISTED_FLAGS]
        ],
        "listed": min(len(flagged), MAX_LISTED_FLAGS),
    }, "flags")

    comparison, compare_per_utt = None, {}
    if compare is not None:
        comparison, compare_per_utt = _compare(ids, refs, norm, orth, norm_fn, compare, n_resamples, seed)

    summary = EvalReport(
        asrtune_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=model if isinstance(model, ModelInfo) else ModelInfo.from_dict(dict(model or {}), "model"),
        normalizer=NormalizerInfo(**norm_fn.describe()),
        n_utterances=overall.n_utterances,
        orthographic=overall.orthographic,
        normalized=overall.normalized,
        confidence_interval=overall.confidence_interval,
        manifests=tuple(ManifestCount(m, sum(1 for x in manifest_of if x == m)) for m in listed),
        per_manifest=per_manifest,
        by_field=by_field,
        terms=term_report,
        flags=flag_report,
        speed=speed,
        failed=tuple(failed or ()),
        compare=comparison,
    )

    records = []
    for i, utt in enumerate(utterances):
        nw, ow = norm.words[i], orth.words[i]
        rec: dict[str, Any] = {
            "id": ids[i],
            "audio_filepath": utt.audio_filepath,
            "offset": utt.offset,
            "duration": utt.duration,
            "manifest": manifest_of[i],
            "fields": utt.extra,
            "ref": refs[i],
            "hyp": hyps[i],
            "ref_normalized": norm_refs[i],
            "hyp_normalized": norm_hyps[i],
            "normalized": {**nw.to_dict(), "wer": _finite(nw.wer), "cer": _finite(norm.chars[i].wer)},
            "orthographic": {**ow.to_dict(), "wer": _finite(ow.wer), "cer": _finite(orth.chars[i].wer)},
            "alignment": norm.alignments[i].visual(),
            "ops": norm.alignments[i].ops_string(),
            "flags": utt_flags[i],
        }
        if tstats is not None:
            rec["terms"] = tstats["per_utterance"][i]
        if i in compare_per_utt:
            rec["compare"] = compare_per_utt[i]
        if segments is not None and segments[i] is not None:
            rec["segments"] = segments[i]
        records.append(rec)
    return Report(summary, records)


def with_wall_time(report: Report, wall_s: float) -> Report:
    """``report`` with the run's wall time (model load + audio + decoding + scoring) in its speed."""
    speed = report.summary.speed
    return replace(report, summary=replace(report.summary, speed=replace(speed, wall_s=round(wall_s, 3)))) if speed else report
