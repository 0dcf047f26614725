"""Dev WER and the forgetting check, decoded by the recognisers ``asrtune eval`` uses.

Training never decodes with code of its own: dev WER wraps the live model in the family's
recogniser (``adapter.recognizer``: ``WhisperHFRecognizer`` with its prompt and suppress list,
or the greedy ``CTCRecognizer``), and :func:`compare_base_and_tuned` loads the base model and
``best/`` through :func:`asrtune.inference.load_recognizer`, as ``asrtune eval`` does. The
normaliser fits the language (:func:`asrtune.text.normalizers.normalizer_for_language`).

After training, ``--eval-sets a.jsonl,b.jsonl`` scores each set (and the dev set) with the base
model and with ``best/`` and writes ``RUN_DIR/eval_results.json``: both WERs with their
bootstrap intervals and the paired test of the change, the numbers ``asrtune eval --compare``
gives (:func:`asrtune.evaluation.scoring.compare_hypotheses`). A fine-tune that helps the domain
but hurts general English shows up as a positive change on the general sets.

The comparison decodes the way the run's dev evaluation does, and only what the run does not
have yet (:class:`RunDecoding`):

- the base model's hypotheses of dev and guard clips come from the run's step 0, and those of a
  set an earlier comparison or run decoded with the same base, settings and audio from the
  step-0 cache (:mod:`asrtune.training.untuned_eval`);
- with the encoder frozen (and not split), base and ``best/`` share the encoder: clips decode
  from the run's encoder-output cache, and an eval set is encoded once into it, so each clip
  costs one encoder pass for both models (and none in later runs);
- otherwise audio is read batch by batch (never a whole set in memory) and decoded in the
  run's eval batches.

Each phase says what it will do and reports progress: a tqdm bar on a terminal, else a line
with the set, the clips done, the rate and the time left at least every 30 s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from asrtune.data.audio import load_audio
from asrtune.data.manifest import Utterance, load_manifest
from asrtune.evaluation.metrics import corpus_wer
from asrtune.evaluation.report import fmt_p
from asrtune.evaluation.scoring import compare_hypotheses
from asrtune.fileio import write_json_atomic
from asrtune.inference import load_recognizer
from asrtune.models import resolve_model
from asrtune.text.normalizers import normalizer_for_language
from asrtune.training.adapters.base import module_digest
from asrtune.training.progress import HEARTBEAT_SECONDS, Progress, format_seconds
from asrtune.training.untuned_eval import StartingHypotheses, decoding_settings, hypotheses_key

RESULTS_FILE = "eval_results.json"  # in the run dir


def score(refs: list[str], hyps: list[str], language: str | None) -> float:
    """Corpus WER with the normaliser that fits ``language``.

    >>> score(["Hello, world."], ["hello world"], None), score(["a b"], ["a c"], "de")
    (0.0, 0.5)
    """
    return float(corpus_wer(refs, hyps, normalizer=normalizer_for_language(language)))


def utterance_audio(utt: Utterance) -> np.ndarray:
    """The utterance's clip, 16 kHz mono float32."""
    return load_audio(utt.audio_filepath, offset=utt.offset, duration=utt.duration or None)


@dataclass
class RunDecoding:
    """What a finished run lends its comparison, so nothing it has is decoded or encoded again.

    ``starting``: the step-0 hypotheses (this run's, and where earlier runs' are kept).
    ``cache``/``encode``: an encoder-output cache valid for both the base and ``best/`` (the
    encoder stayed frozen and unsplit), and the encoder that fills it; None decodes from audio.
    ``map_fn`` loads a batch's audio (the run's data-loading threads)."""

    starting: StartingHypotheses = field(default_factory=lambda: StartingHypotheses(root=None))
    cache: Any = None
    encode: Callable[[list[np.ndarray]], np.ndarray] | None = None
    map_fn: Callable = map


@dataclass
class _Set:
    """One set of the comparison and where each model's hypotheses come from."""

    path: str
    utts: list[Utterance]
    base: list[str | None]  # known base hypotheses (None: to decode)
    base_from: dict[str, int] = field(default_factory=dict)  # "step 0" / "kept" / "decoded" -> clips
    key: str | None = None  # the step-0 cache key of the base's hypotheses of this set
    tuned: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return set_label(self.path)


def set_label(path: str) -> str:
    """``folder/name`` of a manifest path.

    >>> set_label("/data/librispeech-test-clean-40/manifest.jsonl")
    'librispeech-test-clean-40/manifest.jsonl'
    """
    return Path(path).parent.name + "/" + Path(path).name


def compare_base_and_tuned(base: Any, tuned: Path, sets: list[str], config: Any, device: str,
                           say: Callable[[str], None], run: RunDecoding | None = None, *,
                           heartbeat_s: float = HEARTBEAT_SECONDS) -> list[dict[str, Any]]:
    """Rows ``{set, utterances, base_wer, tuned_wer, delta, ...}`` (with confidence intervals and
    the paired test) for each manifest in ``sets``; printed through ``say`` and written to
    ``tuned``'s run dir as ``eval_results.json``. ``base`` is the base model (a ResolvedModel or
    name), ``tuned`` the ``best/`` folder; ``run`` what the run already has (see module docstring)."""
    run = run or RunDecoding()
    start = time.monotonic()
    resolved = resolve_model(base) if isinstance(base, (str, Path)) else base
    cache = run.cache if run.encode is not None else None
    settings = decoding_settings(resolved.family, config.language, _device_type(device), resolved.path,
                                 config.eval_batch_size, cache.fingerprint if cache is not None else None)
    todo = [_Set(path, load_manifest(path), []) for path in sets]
    recognizers = _Recognizers(resolved, tuned, config, device)
    _known_base(todo, run.starting, settings, recognizers)
    base_decodes = sum(s.base.count(None) for s in todo)
    utterances = sum(len(s.utts) for s in todo)
    reused = utterances - base_decodes
    say(f"comparing base and tuned on {len(todo)} set{'s' if len(todo) != 1 else ''}, {2 * utterances:,} decodes: "
        + (f"{reused:,} base hypotheses the run already has ({_sources(todo)}), " if reused else "")
        + f"{base_decodes + utterances:,} to decode"
        + (" from the run's encoder-output cache" if cache is not None else " from audio, batch by batch"))
    if cache is not None:
        _fill_cache(cache, run, [u for s in todo for u in s.utts], config, say, heartbeat_s)
    progress = Progress("comparing", base_decodes + utterances, "utt", say, config.progress, heartbeat_s=heartbeat_s)
    with progress.keepalive():
        timings = _decode_sets(todo, recognizers, cache, run, config.eval_batch_size, progress)
    progress.close()
    rows = [_row(s, config.language) for s in todo]
    write_json_atomic(Path(tuned).parent / RESULTS_FILE, rows)
    say(format_table(rows))
    say(_timing(timings, time.monotonic() - start, Path(tuned).parent, config))
    return rows


def _decode_sets(todo: list[_Set], recognizers: "_Recognizers", cache: Any, run: RunDecoding, batch: int,
                 progress: Progress) -> list[tuple[str, str, int, float]]:
    """Decode what each set lacks, the base model first, then ``best/`` (one model in memory at a
    time); newly decoded base hypotheses are kept under the set's step-0 key. Returns
    ``(model, set, clips, seconds)`` per decoding, model loading not included."""
    timings = []
    for model in ("base", "tuned"):
        for s in todo:
            missing = [i for i, h in enumerate(s.base) if h is None] if model == "base" else list(range(len(s.utts)))
            if not missing:
                continue
            recognizer = recognizers.get(model)
            start = time.monotonic()
            hyps = _decode(recognizer, [s.utts[i] for i in missing], cache, run.map_fn, batch, progress,
                           {"set": s.label, "model": model})
            timings.append((model, s.label, len(missing), time.monotonic() - start))
            if model == "tuned":
                s.tuned = hyps
                continue
            for i, h in zip(missing, hyps):
                s.base[i] = h
            s.base_from["decoded"] = len(missing)
            if s.key is not None:
                run.starting.save(s.key, list(s.base))
        recognizers.drop(model)
    return timings


class _Recognizers:
    """The base and tuned recognisers, loaded when first needed, as ``asrtune eval`` loads them."""

    def __init__(self, base: Any, tuned: Path, config: Any, device: str):
        self.models = {"base": base, "tuned": str(tuned)}
        self.config, self.device = config, device
        self.loaded: dict[str, Any] = {}

    def get(self, model: str) -> Any:
        if model not in self.loaded:
            self.loaded[model] = load_recognizer(self.models[model], engine="hf", device=self.device,
                                                 batch_size=self.config.eval_batch_size, language=self.config.language)
        return self.loaded[model]

    def drop(self, model: str) -> None:
        self.loaded.pop(model, None)


def _known_base(todo: list[_Set], starting: StartingHypotheses, settings: dict[str, Any],
                recognizers: _Recognizers) -> None:
    """Fill each set's base hypotheses the run has: its own step 0 clip by clip, else the kept
    hypotheses of the whole set under the step-0 key."""
    for s in todo:
        s.base = starting.recall(s.utts)
        if None not in s.base:
            s.base_from["step 0"] = len(s.utts)
            continue
        if starting.root is None:  # --cache off: nothing kept is read
            continue
        if starting.weights is None:  # no step-0 evaluation in this process: digest the base itself

            starting.weights = module_digest(recognizers.get("base").model)
        s.key = hypotheses_key(starting.weights, s.utts, settings)
        kept = starting.load(s.key, len(s.utts))
        if kept is not None:
            s.base, s.base_from = list(kept), {"kept": len(kept)}
        else:
            done = len(s.utts) - s.base.count(None)
            s.base_from = {"step 0": done} if done else {}


def _sources(todo: list[_Set]) -> str:
    """``120 from step 0, 40 kept from an earlier run``."""
    step0 = sum(s.base_from.get("step 0", 0) for s in todo)
    kept = sum(s.base_from.get("kept", 0) for s in todo)
    return ", ".join(part for part in (f"{step0:,} from step 0" if step0 else "",
                                       f"{kept:,} kept from an earlier run" if kept else "") if part)


def _fill_cache(cache: Any, run: RunDecoding, utts: list[Utterance], config: Any, say: Callable[[str], None],
                heartbeat_s: float) -> None:
    """Encode the sets' clips the encoder cache lacks (once, for both models and later runs)."""
    missing = cache.missing(utts)
    if not missing:
        return
    size_gb = cache.nbytes(len(missing)) / 1e9
    say(f"comparison: encoding {len(missing):,} clips once into the encoder cache ({size_gb:.2f} GB, "
        "shared by base and tuned)")
    progress = Progress("encoder cache", len(missing), "utt", say, config.progress, heartbeat_s=heartbeat_s)
    with progress.keepalive():
        cache.build(missing, run.encode, utterance_audio, batch_size=config.eval_batch_size, progress=progress,
                    map_fn=run.map_fn)


def _decode(recognizer: Any, utts: Sequence[Utterance], cache: Any, map_fn: Callable, batch: int,
            progress: Progress, postfix: dict[str, Any]) -> list[str]:
    """Hypotheses of ``utts`` in eval batches: from cached encoder outputs, or from audio loaded
    one batch at a time."""
    hyps: list[str] = []
    progress.update(0, **postfix)  # a heartbeat within the first batch names the set
    for start in range(0, len(utts), batch):
        chunk = utts[start:start + batch]
        if cache is not None:
            hyps += recognizer.transcribe_encoded(np.stack([cache.get(u) for u in chunk]))
        else:
            hyps += recognizer.transcribe(list(map_fn(utterance_audio, chunk)))
        progress.update(len(chunk), **postfix)
    return hyps


def _row(s: _Set, language: str | None) -> dict[str, Any]:
    """One set's result: WERs, their intervals, the paired test of tuned - base, where the base's
    hypotheses came from."""
    refs = [u.text for u in s.utts]
    base_wer, tuned_wer = score(refs, s.base, language), score(refs, s.tuned, language)
    cmp = compare_hypotheses(refs, s.tuned, s.base, normalizer_for_language(language))
    paired, base_ci, tuned_ci = cmp.normalized, cmp.other.normalized, cmp.this.normalized
    return {
        "set": s.path, "utterances": len(s.utts), "base_wer": base_wer, "tuned_wer": tuned_wer,
        "delta": tuned_wer - base_wer,
        "base_ci": [base_ci.low, base_ci.high], "tuned_ci": [tuned_ci.low, tuned_ci.high],
        "delta_ci": [paired.low, paired.high], "p_value": paired.p_value,
        "improved": cmp.improved, "worsened": cmp.worsened, "unchanged": cmp.unchanged,
        "confidence": paired.confidence, "n_resamples": paired.n_resamples, "seed": paired.seed,
        "normalizer": cmp.normalizer.to_dict(), "paired": {"normalized": paired.to_dict(), "orthographic": cmp.orthographic.to_dict()},
        "base_hypotheses": dict(s.base_from),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a fixed-width text table (one line per set): WERs in %, the change and
    its 95 % interval in points, the paired test's p-value."""
    lines = [f"{'set':<40} {'utts':>5} {'base WER':>9} {'tuned WER':>10} {'change':>8} {'95% CI of change':>18} {'p':>8}"]
    for r in rows:
        ci = r.get("delta_ci")
        ci_text = f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else ""
        p = "" if r.get("p_value") is None else fmt_p(r["p_value"], r.get("n_resamples", 1000))
        lines.append(f"{set_label(r['set']):<40} {r['utterances']:>5} {100 * r['base_wer']:>8.2f}% "
                     f"{100 * r['tuned_wer']:>9.2f}% {100 * r['delta']:>+7.2f} {ci_text:>18} {p:>8}")
    return "\n".join(lines)


def _device_type(device: str) -> str:
    """``cuda:1`` -> ``cuda`` (the step-0 key names the device type)."""
    return str(device).split(":")[0]


def _timing(timings: list[tuple[str, str, int, float]], total_s: float, run_dir: Path, config: Any) -> str:
    """The comparison's time per decoded clip (in all, and per model and set) beside the run's dev
    evaluations' time per clip."""
    clips, seconds = sum(t[2] for t in timings), sum(t[3] for t in timings)
    text = f"comparison: {clips:,} clips decoded in {format_seconds(seconds)}"
    if clips:
        text += (f" ({seconds / clips:.3f} s per clip; {format_seconds(total_s)} with encoding, loading and scoring: "
                 + ", ".join(f"{model} on {label} {s / n:.3f}" for model, label, n, s in timings) + " s per clip)")
    dev = dev_seconds_per_clip(run_dir / "metrics.jsonl", config)
    return text + (f"; the run's dev evaluations: {dev:.3f} s per clip" if dev is not None else "")


def dev_seconds_per_clip(metrics_path: Path, config: Any) -> float | None:
    """Seconds per clip of the run's dev (and guard) evaluations after step 0, from
    ``metrics.jsonl`` (``eval_s``); evaluations that saved ``best/`` are left out when others
    exist, as their time includes the save."""
    try:
        records = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    evals = [r for r in records if r.get("step", 0) > 0 and "eval_s" in r and r.get("dev_wer") is not None]
    plain = [r for r in evals if r.get("best_dev_wer") != r["dev_wer"]]
    evals = plain or evals
    if not evals or not config.dev:
        return None
    n_dev = len(load_manifest(config.dev))
    n_guard = len(load_manifest(config.guard_dev)) if getattr(config, "guard_dev", None) else 0
    clips = sum(n_dev + (n_guard if r.get("guard_wer") is not None else 0) for r in evals)
    return sum(r["eval_s"] for r in evals) / clips if clips else None
