"""``asrtune demo``: the whole job, end to end, on an embedded default or on your data.

1. **data** - by default the shipped clinic-dictation corpus (``manifests/clinic``) is spoken by
   eSpeak NG (:mod:`asrtune.synth`): training sentences in five training voices, packed into
   ~25 s clips (cheap to cache, see :class:`~asrtune.synth.SynthConfig`); a small dev set of
   training sentences in two *other* voices (for choosing the best checkpoint); and the
   held-out sentences - the same terms in new sentences - in three *further* voices, one
   sentence per file. Nothing the test set contains (sentence or voice) is trained on or used
   for model selection. With ``--manifest/--dev/--test`` your own manifests are used instead.
2. **zero-shot** - the pretrained model (Whisper tiny.en, resolved offline from its weights
   package) is evaluated on the test set (``OUT/zero_shot/report.html``).
3. **fine-tune** - encoder frozen, decoder trained for ``--max-train-minutes`` from cached
   encoder outputs (``OUT/run/``, learning curve in ``OUT/run/learning_curve.png``).
4. **tuned** - the best checkpoint is evaluated on the same test set and compared with the
   zero-shot report (``OUT/tuned/report.html``, paired bootstrap on the difference).
5. **summary** - ``OUT/summary.md``, ``OUT/summary.json`` and ``OUT/report.html`` (before/after
   WER, term recall, learning curve); the table is printed.

Term biasing is off in both evaluations, so the gain shown is fine-tuning's alone.

>>> result = run_demo(DemoConfig(out="demo_output"))       # doctest: +SKIP
>>> result.summary["tuned"]["wer"] < result.summary["zero_shot"]["wer"]   # doctest: +SKIP
True
"""

from __future__ import annotations

import html
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from asrtune.errors import ConfigError
from asrtune.evaluation import evaluate
from asrtune.evaluation.schema import EvalReport
from asrtune.fileio import write_json_atomic, write_text_atomic
from asrtune.models import resolve_model
from asrtune.options import option, option_like
from asrtune.synth import SynthConfig, read_sentences, synthesize_corpus
from asrtune.training import TrainConfig, train

DEFAULT_MODEL = "openai/whisper-tiny.en"
DEFAULT_CORPUS = "clinic"
#: Training voices are the synth defaults; dev and test voices share neither language nor
#: timbre variant with them (nor with each other), so the test measures unseen speakers.
TRAIN_VOICES = ("en-us", "en-us+f3", "en-gb+m3", "en-gb-x-rp+f2", "en-029+m1")
DEV_VOICES = ("en-gb-x-gbcwmd+m6", "en-gb-x-gbcwmd+f5")
TEST_VOICES = ("en-gb-scotland+m2", "en-us-nyc+f1", "en-gb-x-gbclan+f4")
DEV_SENTENCES = 24  # training sentences re-spoken by the dev voices (model selection only)
PACK_SECONDS = 25.0  # training clips: several sentences of one voice, < Whisper's 30 s window
PACK_MAX_SENTENCES = 10
# Training recipe for a few minutes on 2 CPU cores: the decoder of tiny.en learns the domain
# vocabulary fast at a learning rate well above the fine-tuning default (1e-5, made for hours);
# constant after warm-up, because a time limit, not a step count, ends the run, and the dev set
# picks the best checkpoint.
DEMO_LR = 1e-4
DEMO_BATCH = 8
DEMO_WARMUP = 10
DEMO_EVAL_EVERY = 40


@dataclass
class DemoConfig:
    """Options of ``asrtune demo`` (see ``asrtune demo --help`` or docs/options.md). The options
    the demo hands on to training are :class:`~asrtune.training.TrainConfig`'s, with the demo's
    defaults.

    >>> DemoConfig().model, DemoConfig().max_train_minutes, DemoConfig().lr
    ('openai/whisper-tiny.en', 6.0, 0.0001)
    """

    out: str = option("demo_output", metavar="DIR", help="output folder")
    model: str = option(DEFAULT_MODEL, help="Whisper model: hub id, local folder or run dir")
    # Your own data instead of the synthesised corpus: all three, or none.
    manifest: str | None = option(None, metavar="JSONL",
                                  help="your training manifest (with --dev and --test) instead of the synthesised corpus")
    dev: str | None = option_like(TrainConfig, "dev")
    test: str | None = option(None, metavar="JSONL", help="your test manifest (zero-shot vs tuned)")
    corpus: str | None = option(None, metavar="DIR",
                                help="folder with train.txt, heldout.txt, terms.txt to synthesise (none = the shipped manifests/clinic)")
    terms: str | None = option(None, metavar="FILE",
                               help="term list for term recall (none = the corpus's terms.txt; with --manifest, no term recall)")
    max_train_minutes: float = option_like(TrainConfig, "max_train_minutes", 6.0)
    max_steps: int | None = option_like(TrainConfig, "max_steps")
    lr: float = option_like(TrainConfig, "lr", DEMO_LR)
    batch_size: int = option_like(TrainConfig, "batch_size", DEMO_BATCH)
    eval_every: int = option_like(TrainConfig, "eval_every", DEMO_EVAL_EVERY)
    variants_per_sentence: int = option(3, help="training renderings of each sentence")
    max_sentences: int | None = option(None, help="use only the first N training and held-out sentences (quick trials)")
    threads: int | None = option_like(TrainConfig, "threads")
    seed: int = option_like(TrainConfig, "seed")
    progress: bool = option_like(TrainConfig, "progress")

    def check(self) -> "DemoConfig":
        given = [x is not None for x in (self.manifest, self.dev, self.test)]
        if any(given) and not all(given):
            raise ConfigError("--manifest, --dev and --test go together (your train, dev and test manifests); give all three or none")
        if self.manifest and self.corpus:
            raise ConfigError("--corpus (text to synthesise) and --manifest (your own audio) exclude each other")
        for option, path in (("--manifest", self.manifest), ("--dev", self.dev), ("--test", self.test), ("--terms", self.terms)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{option} {path}: file not found")
        if self.max_train_minutes <= 0:
            raise ConfigError(f"--max-train-minutes must be positive, got {self.max_train_minutes}")
        if self.max_sentences is not None and self.max_sentences < 2:
            raise ConfigError(f"--max-sentences must be >= 2, got {self.max_sentences}")
        if self.variants_per_sentence < 1:
            raise ConfigError(f"--variants-per-sentence must be >= 1, got {self.variants_per_sentence}")
        return self


@dataclass
class DemoResult:
    """Where everything went, and the before/after numbers (``summary`` = summary.json)."""

    out: str
    summary: dict[str, Any]
    table: str
    paths: dict[str, str] = field(default_factory=dict)


def shipped_corpus(name: str = DEFAULT_CORPUS) -> Path:
    """The corpus folder in a source checkout (``<repo>/manifests/<name>``)."""
    return Path(__file__).resolve().parent.parent / "manifests" / name


def corpus_files(folder: str | os.PathLike | None) -> dict[str, Path]:
    """train.txt / heldout.txt / terms.txt of a corpus folder; ConfigError naming what is missing."""
    root = Path(folder) if folder else shipped_corpus()
    files = {name: root / f"{name}.txt" for name in ("train", "heldout", "terms")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        hint = "" if folder else " (the demo corpus ships with a source checkout of asrtune; pass --corpus DIR or --manifest/--dev/--test)"
        raise ConfigError(f"--corpus: missing {', '.join(missing)}{hint}")
    return files


def synthesize_demo_data(config: DemoConfig, data_dir: Path, say: Callable[[str], None]) -> dict[str, str]:
    """Speak the corpus into ``data_dir/{train,dev,test}/manifest.jsonl``; returns the three paths."""
    files = corpus_files(config.corpus)
    training = read_sentences(files["train"])
    heldout = read_sentences(files["heldout"])
    if config.max_sentences:
        training, heldout = training[: config.max_sentences], heldout[: config.max_sentences]
    # Dev sentences: an even spread of training sentences (new voices, same text).
    stride = max(1, len(training) // DEV_SENTENCES)
    dev = training[::stride][:DEV_SENTENCES]
    sets = {
        "train": (training, SynthConfig(voices=TRAIN_VOICES, variants_per_sentence=config.variants_per_sentence,
                                     pack_seconds=PACK_SECONDS, pack_max_sentences=PACK_MAX_SENTENCES, seed=config.seed)),
        "dev": (dev, SynthConfig(voices=DEV_VOICES, variants_per_sentence=1, seed=config.seed + 1)),
        "test": (heldout, SynthConfig(voices=TEST_VOICES, variants_per_sentence=1, seed=config.seed + 2)),
    }  # fmt: skip
    paths = {}
    for name, (sentences, synth_config) in sets.items():
        start = time.time()
        utts = synthesize_corpus(sentences, data_dir / name, synth_config, progress=config.progress)
        minutes = sum(u.duration for u in utts) / 60
        say(f"synth {name}: {len(sentences)} sentences -> {len(utts)} files, {minutes:.1f} min of audio "
            f"(voices {', '.join(synth_config.voices)}) in {time.time() - start:.0f} s")  # fmt: skip
        paths[name] = str(data_dir / name / "manifest.jsonl")
    return paths


def _metrics(report: EvalReport) -> dict[str, Any]:
    """The numbers the summary shows, from an evaluation's report."""
    ci = report.confidence_interval.normalized
    terms = report.terms.overall if report.terms else None
    return {
        "wer": report.normalized.wer,
        "wer_ci95": [ci.low, ci.high],
        "orthographic_wer": report.orthographic.wer,
        "term_recall": terms.recall if terms else None,
        "term_precision": terms.precision if terms else None,
        "terms_found": terms.found if terms else None,
        "terms_in_reference": terms.ref if terms else None,
        "utterances": report.n_utterances,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_summary_table(summary: dict[str, Any]) -> str:
    """The before/after table printed at the end and written to summary.md."""
    z, t = summary["zero_shot"], summary["tuned"]
    rows = [
        ("", "WER (normalised)", "term recall"),
        (f"zero-shot  {summary['model']}", _pct(z["wer"]), _pct(z["term_recall"])),
        ("fine-tuned (encoder frozen)", _pct(t["wer"]), _pct(t["term_recall"])),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width[i]) if i == 0 else cell.rjust(width[i]) for i, cell in enumerate(r)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    rel = summary.get("relative_wer_reduction")
    if rel is not None:
        lines.append(f"relative WER reduction: {100 * rel:.1f} %  (test: {summary['test_description']})")
    return "\n".join(lines)


def _summary_markdown(summary: dict[str, Any], table: str) -> str:
    lines = [
        "# asrtune demo",
        "",
        f"Model `{summary['model']}` fine-tuned with the encoder frozen on {summary['train_description']}, "
        f"tested on {summary['test_description']}.",
        "",
        "```",
        table,
        "```",
        "",
        f"- training: {summary['training']['steps']} steps, {summary['training']['minutes']:.1f} min, stopped by "
        f"{summary['training']['stopped']}; best dev WER {_pct(summary['training']['best_dev_wer'])} at step {summary['training']['best_step']}",
        "- reports: `zero_shot/report.html`, `tuned/report.html` (with the paired comparison), learning curve `learning_curve.png`",
        f"- total time {summary['timings_s']['total'] / 60:.1f} min: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["timings_s"].items() if k != "total"),
        "",
    ]
    per_term = summary.get("terms_changed") or []
    if per_term:
        lines += ["| term | zero-shot found | tuned found | in reference |", "|---|---|---|---|"]
        lines += [f"| {r['term']} | {r['zero_shot']} | {r['tuned']} | {r['ref']} |" for r in per_term]
        lines.append("")
    return "\n".join(lines)


def _summary_html(summary: dict[str, Any], table: str, curve: str | None) -> str:
    esc = html.escape
    img = f'<h2>Learning curve</h2><img src="{esc(curve)}" alt="learning curve" style="max-width:100%">' if curve else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>asrtune demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}pre{{background:#f4f4f4;padding:1em}}</style>
</head><body>
<h1>asrtune demo</h1>
<p>Model <code>{esc(summary['model'])}</code> fine-tuned with the encoder frozen on {esc(summary['train_description'])};
tested on {esc(summary['test_description'])}.</p>
<pre>{esc(table)}</pre>
<p>Full reports: <a href="zero_shot/report.html">zero-shot</a> and <a href="tuned/report.html">fine-tuned (compared with zero-shot)</a>.</p>
{img}
</body></html>
"""


def _terms_changed(zero: EvalReport, tuned: EvalReport) -> list[dict[str, Any]]:
    """Per-term found counts before and after, for terms whose count changed."""
    before = {r.normalized: r for r in (zero.terms.per_term if zero.terms else ())}
    rows = []
    for r in tuned.terms.per_term if tuned.terms else ():
        b = before.get(r.normalized)
        if b is not None and b.found != r.found:
            rows.append({"term": r.term, "zero_shot": b.found, "tuned": r.found, "ref": r.ref})
    return sorted(rows, key=lambda r: r["zero_shot"] - r["tuned"])


def run_demo(config: DemoConfig, say: Callable[[str], None] | None = None) -> DemoResult:
    """Run the demo (see the module docstring); returns the summary and the paths written."""
    config.check()  # before torch loads: a bad option fails in a blink
    import torch  # heavy: torch

    say = say or (lambda message: print(f"[demo] {message}", flush=True))
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.time()

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.time() - since, 1)
        return time.time()

    t = time.time()
    resolved = resolve_model(config.model)
    say(f"model {config.model}: {resolved.family} from {resolved.source} ({resolved.path})")
    if resolved.family != "whisper":
        raise ConfigError(f"--model {config.model}: the demo fine-tunes Whisper with a frozen encoder; this is a {resolved.family} model")
    t = lap("model", t)

    if config.manifest:
        manifests = {"train": config.manifest, "dev": config.dev, "test": config.test}
        terms = config.terms
        train_description = f"{config.manifest}"
        test_description = f"{config.test}"
    else:
        manifests = synthesize_demo_data(config, out / "data", say)
        terms = config.terms or str(corpus_files(config.corpus)["terms"])
        train_description = (
            f"synthesised clinic dictation ({len(TRAIN_VOICES)} eSpeak voices x {config.variants_per_sentence} renderings per sentence)"
        )
        test_description = f"held-out sentences in {len(TEST_VOICES)} unseen voices"
    t = lap("synth", t)

    say(f"zero-shot evaluation of {config.model} on {manifests['test']}")
    zero = evaluate(resolved, manifests["test"], out / "zero_shot", terms=terms, progress=config.progress)
    say(f"zero-shot WER {_pct(zero.normalized.wer)}")
    t = lap("zero_shot_eval", t)

    run_dir = out / "run"
    # The demo's encoder cache lives in OUT, not the shared user cache: the audio is
    # re-synthesised on every run (so old entries would only pile up), and a private folder
    # never waits on another run's cache lock.
    cache_dir = out / "encoder_cache"
    for stale in (run_dir, cache_dir):
        if stale.exists():
            shutil.rmtree(stale)  # a demo is a fresh run every time
    train_config = TrainConfig(
        model=config.model, train=[manifests["train"]], dev=manifests["dev"], out=str(run_dir), freeze="encoder",
        max_train_minutes=config.max_train_minutes, max_steps=config.max_steps, epochs=None if config.max_steps else 1000,
        lr=config.lr, lr_schedule="constant", batch_size=config.batch_size, warmup_steps=DEMO_WARMUP, eval_every=config.eval_every,
        save_every=10_000, log_every=5, cache_dir=str(cache_dir), threads=config.threads, seed=config.seed, progress=config.progress,
    )  # fmt: skip
    say(f"fine-tuning for up to {config.max_train_minutes:g} min (encoder frozen, lr {config.lr:g}, batch {config.batch_size})")
    result = train(train_config)
    # 1 MB per clip of cache and the optimiser state (resume only) are useless once trained.
    shutil.rmtree(cache_dir, ignore_errors=True)
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    t = lap("train", t)

    say("evaluating the fine-tuned model on the same test set")
    tuned = evaluate(str(run_dir), manifests["test"], out / "tuned", terms=terms, compare=str(out / "zero_shot"),
                     progress=config.progress)  # fmt: skip
    t = lap("tuned_eval", t)
    timings["total"] = round(time.time() - start, 1)

    before, after = _metrics(zero), _metrics(tuned)
    rel = None
    if before["wer"]:
        rel = (before["wer"] - after["wer"]) / before["wer"]
    curve = run_dir / "learning_curve.png"
    curve_copy = None
    if curve.exists():
        shutil.copyfile(curve, out / "learning_curve.png")
        curve_copy = "learning_curve.png"
    summary = {
        "model": config.model,
        "model_source": resolved.source,
        "train_description": train_description,
        "test_description": test_description,
        "manifests": manifests,
        "terms": terms,
        "zero_shot": before,
        "tuned": after,
        "relative_wer_reduction": rel,
        "compare": tuned.compare.to_dict() if tuned.compare else None,
        "terms_changed": _terms_changed(zero, tuned) if terms else [],
        "training": {
            "run_dir": str(run_dir), "steps": result.steps, "epochs": result.epochs, "stopped": result.stopped,
            "best_dev_wer": result.best_dev_wer, "best_step": result.best_step, "minutes": timings["train"] / 60,
            "trainable_parameters": result.trainable_parameters, "total_parameters": result.total_parameters,
        },  # fmt: skip
        "config": asdict(config),
        "timings_s": timings,
        "threads": torch.get_num_threads(),
    }
    table = format_summary_table(summary)
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "summary.md", _summary_markdown(summary, table))
    write_text_atomic(out / "report.html", _summary_html(summary, table, curve_copy))
    paths = {
        "summary_md": str(out / "summary.md"), "summary_json": str(out / "summary.json"), "report_html": str(out / "report.html"),
        "zero_shot_report": str(out / "zero_shot" / "report.html"), "tuned_report": str(out / "tuned" / "report.html"),
        "run_dir": str(run_dir),
    }  # fmt: skip
    return DemoResult(out=str(out), summary=summary, table=table, paths=paths)
