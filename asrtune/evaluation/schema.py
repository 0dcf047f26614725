"""The evaluation report as typed records: what report.json holds.

:func:`asrtune.evaluation.evaluate` returns an :class:`EvalReport`; ``asrtune eval`` writes
report.json from it and :meth:`EvalReport.from_json` reads one back. Field names are the JSON
keys, so ``report.normalized.wer`` is ``report["normalized"]["wer"]`` in the file. WER and CER
are fractions (0.027 = 2.7 %); a rate is None where it is undefined (no reference words).

>>> report = EvalReport.from_json("reports/base/report.json")        # doctest: +SKIP
>>> report.normalized.wer, report.confidence_interval.normalized.high  # doctest: +SKIP
(0.0267, 0.0401)

``schema_version`` counts changes to this layout that an older reader cannot follow. A file
without one is version 1; a file from a newer asrtune is refused with one error that says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from asrtune.errors import AsrtuneError
from asrtune.evaluation.bootstrap import ConfidenceInterval, PairedResult
from asrtune.evaluation.records import Record, optional

SCHEMA_VERSION = 1
ORTHOGRAPHIC_DESCRIPTION = "raw reference and hypothesis strings, whitespace collapsed only (case and punctuation count)"
WER_UNIT = "fraction (0.027 = 2.7 %)"
DIFFERENCE_IS = "this - other (negative = this system makes fewer errors)"


def check_schema_version(data: Any, where: str = "") -> None:
    """Raise one AsrtuneError when report.json's object ``data`` comes from a newer layout."""
    version = data.get("schema_version", 1) if isinstance(data, dict) else 1
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise AsrtuneError(f"{where + ': ' if where else ''}schema_version {version!r} is newer than this asrtune "
                           f"reads ({SCHEMA_VERSION}); upgrade asrtune to read this report")


@dataclass(frozen=True)
class CharCounts(Record):
    """Character edit counts behind a CER."""

    hits: int
    substitutions: int
    insertions: int
    deletions: int
    ref_chars: int


@dataclass(frozen=True)
class WerScore(Record):
    """One scoring view (orthographic or normalised) of a set: WER and CER with the counts behind them.

    >>> s = WerScore(wer=0.25, cer=0.1, hits=3, substitutions=1, insertions=0, deletions=0, errors=1,
    ...              ref_words=4, hyp_words=4, utterances=2, chars=CharCounts(18, 1, 0, 1, 20))
    >>> s.errors / s.ref_words == s.wer
    True
    """

    wer: float | None
    cer: float | None
    hits: int
    substitutions: int
    insertions: int
    deletions: int
    errors: int
    ref_words: int
    hyp_words: int
    utterances: int
    chars: CharCounts


@dataclass(frozen=True)
class Intervals(Record):
    """The bootstrap interval of each view's corpus WER."""

    normalized: ConfidenceInterval
    orthographic: ConfidenceInterval


@dataclass(frozen=True)
class SetScores(Record):
    """Both views and their intervals for a set of utterances (one manifest of several)."""

    n_utterances: int
    orthographic: WerScore
    normalized: WerScore
    confidence_interval: Intervals


@dataclass(frozen=True)
class NormalizerInfo(Record):
    """The normaliser of the normalised view: two reports compare only when both agree.

    >>> from asrtune.text import get_normalizer
    >>> NormalizerInfo(**get_normalizer("basic").describe()).name
    'basic'
    """

    name: str
    version: str
    description: str


_MODEL_FIELDS = ("name", "engine", "source", "family", "requested", "label", "beam_size", "batch_size", "term_biasing", "decoding")


@dataclass(frozen=True)
class ModelInfo(Record):
    """What made the hypotheses and how it decoded: ``decoding`` holds the options asked for
    (:class:`asrtune.inference.RecognizerOptions` as a dict, None for an already-loaded
    recogniser), ``settings`` what the engine reports beyond the named fields (compute type,
    language, prompt, thresholds, LM, ...). In JSON the settings sit beside the named fields.

    >>> m = ModelInfo.from_dict({"name": "runs/acc", "engine": "ct2", "compute_type": "int8"})
    >>> m.engine, m.settings, m.to_dict()["compute_type"]
    ('ct2', {'compute_type': 'int8'}, 'int8')
    """

    name: str | None = optional()
    engine: str | None = optional()
    source: str | None = optional()
    family: str | None = optional()
    requested: str | None = optional()
    label: str | None = optional()
    beam_size: int | None = optional()
    batch_size: int | None = optional()
    term_biasing: bool | None = optional()
    decoding: dict[str, Any] | None = optional()
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(out.pop("settings"))
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> "ModelInfo":
        if not isinstance(data, dict):
            raise AsrtuneError(f"{where or cls.__name__}: expected an object, got {data!r:.60}")
        named = {k: v for k, v in data.items() if k in _MODEL_FIELDS and v is not None}
        settings = {k: v for k, v in data.items() if k not in _MODEL_FIELDS and k != "settings"}
        return super().from_dict(named | {"settings": settings}, where)

    @property
    def title(self) -> str:
        """What a report calls the system: its ``--name`` label, else the model name.

        >>> ModelInfo("runs/acc", label="tuned").title, ModelInfo("runs/acc").title, ModelInfo().title
        ('tuned (runs/acc)', 'runs/acc', '(hypotheses scored directly)')
        """
        name = self.name or "(hypotheses scored directly)"
        return f"{self.label} ({name})" if self.label and self.label != name else name


@dataclass(frozen=True)
class ManifestCount(Record):
    """A manifest of the evaluation and how many of its utterances were scored."""

    path: str
    utterances: int


@dataclass(frozen=True)
class FieldRow(Record):
    """Normalised WER of the utterances whose manifest field has one value (``--by``).

    >>> row = FieldRow.from_dict({"value": "f", "utterances": 12, "wer": 0.1, "cer": 0.04, "wer_ci": [0.06, 0.15],
    ...                           "orthographic_wer": 0.2, "substitutions": 8, "insertions": 1, "deletions": 3, "ref_words": 120})
    >>> row.wer_ci, row.to_dict()["wer_ci"]
    ((0.06, 0.15), [0.06, 0.15])
    """

    value: str
    utterances: int
    wer: float | None
    cer: float | None
    wer_ci: tuple[float | None, ...]  # (low, high)
    orthographic_wer: float | None
    substitutions: int
    insertions: int
    deletions: int
    ref_words: int


@dataclass(frozen=True)
class TermCounts(Record):
    """Term occurrences in the references and hypotheses, and how many were found.

    >>> TermCounts(ref=10, hyp=9, found=8, recall=0.8, precision=8 / 9).recall
    0.8
    """

    ref: int
    hyp: int
    found: int
    recall: float | None
    precision: float | None


@dataclass(frozen=True)
class TermRow(Record):
    """One domain term's counts (``normalized``: the term as matched)."""

    term: str
    normalized: str
    ref: int
    hyp: int
    found: int
    recall: float | None
    precision: float | None


@dataclass(frozen=True)
class TermReport(Record):
    """Domain-term recall and precision (``--terms``), overall and per term."""

    method: str
    n_terms: int
    overall: TermCounts
    per_term: tuple[TermRow, ...]
    file: str | None = optional()


@dataclass(frozen=True)
class FlaggedUtterance(Record):
    """An utterance with failure flags, each with its evidence."""

    id: str
    flags: dict[str, dict[str, Any]]
    ref: str
    hyp: str


@dataclass(frozen=True)
class FlagReport(Record):
    """Failure flags: definitions, counts, and the first ``listed`` flagged utterances."""

    definitions: dict[str, str]
    counts: dict[str, int]
    flagged_utterances: int
    utterances: tuple[FlaggedUtterance, ...]
    listed: int


@dataclass(frozen=True)
class Speed(Record):
    """Where the time of a decoding run went. Seconds throughout; ``rtf`` is decoding time per
    second of audio (0.05: 20 times faster than real time).

    >>> Speed(audio_s=100.0, decode_s=5.0, rtf=0.05).rtf
    0.05
    """

    audio_s: float
    decode_s: float
    utterances_decoded: int | None = optional(omit=False)
    long_form_recordings: int | None = optional(omit=False)
    audio_hours: float | None = optional(omit=False)
    audio_wait_s: float | None = optional(omit=False)
    model_load_s: float | None = optional(omit=False)
    rtf: float | None = optional(omit=False)
    utterances_per_s: float | None = optional(omit=False)
    batch_size: int | None = optional(omit=False)
    device: str | None = optional(omit=False)
    wall_s: float | None = optional(omit=False)


@dataclass(frozen=True)
class Failure(Record):
    """A file that could not be loaded or decoded (skipped, not scored).

    >>> Failure("a.flac", "/data/a.flac", "not audio", manifest="test.jsonl", line=3).to_dict()["line"]
    3
    """

    id: str
    audio_filepath: str
    error: str
    manifest: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Change(Record):
    """One utterance's normalised errors in both systems (``delta_errors`` = this - other)."""

    id: str
    other_errors: int
    this_errors: int
    ref_words: int
    delta_errors: int


@dataclass(frozen=True)
class Comparison(Record):
    """The paired comparison with an earlier report (``--compare``): this - other, per view."""

    other_dir: str
    other_model: ModelInfo | None
    other_normalizer: NormalizerInfo | None
    rescored_with: NormalizerInfo
    matched_utterances: int
    only_in_this: int
    only_in_other: int
    normalized: PairedResult
    orthographic: PairedResult
    improved: int
    worsened: int
    unchanged: int
    biggest_improvements: tuple[Change, ...]
    biggest_regressions: tuple[Change, ...]
    difference_is: str = DIFFERENCE_IS


@dataclass(frozen=True)
class HypothesesComparison(Record):
    """Two systems' hypotheses of the same utterances (:func:`asrtune.evaluation.scoring.compare_hypotheses`):
    each side's intervals and the paired test of this - other."""

    normalizer: NormalizerInfo
    utterances: int
    this: Intervals
    other: Intervals
    normalized: PairedResult
    orthographic: PairedResult
    improved: int
    worsened: int
    unchanged: int
    difference_is: str = DIFFERENCE_IS


@dataclass(frozen=True)
class EvalReport(Record):
    """A scored evaluation: every number of report.json (the per-utterance lines are in utterances.jsonl).

    >>> from asrtune.data import Utterance
    >>> from asrtune.evaluation import score_hypotheses
    >>> utts = [Utterance("a.wav", "IT'S FIFTY", 1.0), Utterance("b.wav", "HELLO WORLD", 1.0)]
    >>> report = score_hypotheses(utts, ["It is 50.", "hello"], n_resamples=200).summary
    >>> report.normalized.wer, report.normalized.deletions, report.n_utterances
    (0.2, 1, 2)
    >>> EvalReport.from_json(report.to_json()) == report
    True
    """

    asrtune_version: str
    created: str
    model: ModelInfo
    normalizer: NormalizerInfo
    n_utterances: int
    orthographic: WerScore
    normalized: WerScore
    confidence_interval: Intervals
    manifests: tuple[ManifestCount, ...]
    by_field: dict[str, tuple[FieldRow, ...]]
    terms: TermReport | None
    flags: FlagReport
    failed: tuple[Failure, ...] = ()
    speed: Speed | None = optional(empty=True)
    per_manifest: dict[str, SetScores] | None = optional()
    compare: Comparison | None = optional()
    orthographic_description: str = ORTHOGRAPHIC_DESCRIPTION
    wer_unit: str = WER_UNIT
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        return {"schema_version": out.pop("schema_version"), **out}  # first: a reader checks it first

    def to_json(self, indent: int | None = 2) -> str:
        """report.json's text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> "EvalReport":
        """The report a report.json object holds (a file without ``schema_version`` is version 1)."""
        check_schema_version(data, where)
        return super().from_dict(data, where)

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> "EvalReport":
        """A report from report.json's text, or from the path of a report.json or of its folder.

        >>> EvalReport.from_json('{"schema_version": 99}')
        Traceback (most recent call last):
        asrtune.errors.AsrtuneError: schema_version 99 is newer than this asrtune reads (1); upgrade asrtune to read this report
        """
        if str(source).lstrip().startswith("{"):
            return cls.from_dict(_parse(str(source)))
        path = os.path.join(source, "report.json") if os.path.isdir(source) else os.fspath(source)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise AsrtuneError(f"{path}: cannot read the report ({e.strerror})") from None
        try:
            return cls.from_dict(_parse(text))
        except AsrtuneError as e:
            raise AsrtuneError(f"{path}: {e}") from None


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AsrtuneError(f"not JSON ({e.msg}, line {e.lineno})") from None
