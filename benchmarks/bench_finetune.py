#!/usr/bin/env python
"""Benchmark table: fine-tune Whisper on accented speech (speechocean762), one row at a time.

Rows (``--row NAME``; see :data:`ROWS`):

=============  ==================  ===========================================  ==================
row            model               what trains                                  train data
=============  ==================  ===========================================  ==================
tiny-decoder   whisper-tiny.en     decoder                                      train
tiny-enctop2   whisper-tiny.en     decoder + top 2 encoder layers (cached below) train + train-extra
base-decoder   whisper-base        decoder                                      train + train-extra
base-enctop    whisper-base        decoder + top 2 encoder layers                train + train-extra
=============  ==================  ===========================================  ==================

Text-only adaptation on real speech (``asrtune synth``: eSpeak NG speaks the transcripts; one
rendering per sentence, the voices cycled):

=====================  ==========================================================================
tiny-synth-only        tiny.en decoder on the 1,200 train *sentences* spoken by eSpeak, no real
                       audio at all (best/ picked on eSpeak renderings of the dev sentences)
tiny-real+synth-new    real train audio + eSpeak renderings of train-extra's 1,100 new sentences
=====================  ==========================================================================

A row runs ``asrtune train`` (its own process; dev picks ``best/``; ``--guard-dev`` with a
general-English DEV set, librivox-cmu-11 + spontaneous-mfa-12, keeps ``best/`` within 0.5 WER points of the base
there), then scores base and ``best/`` on speechocean762 test (normalised WER with a 95 %
bootstrap CI) and on each forgetting TEST set (librispeech-test-clean-40, ljspeech-32 - never
trained on, never used for selection), then times the Hugging Face recipe (``Seq2SeqTrainer``,
features precomputed, same model, same trainable parameters, same batch) for the speed ratio.
The row's numbers are appended, with when and on what hardware, to
``benchmarks/results/finetune.json``; ``python -m benchmarks.tables`` (or ``--table``) rebuilds
the tables made from it.

Usage::

    python -m benchmarks.bench_finetune --row tiny-enctop2 --max-train-minutes 15
    python -m benchmarks.bench_finetune --row tiny-enctop2 --reuse-run   # score/time an already trained run
    python -m benchmarks.bench_finetune --score-final tiny-enctop2   # score final/ of a run whose guard refused it
    python -m benchmarks.bench_finetune --table

When the guard refused ``final/`` the row also scores it (``final_refused_by_guard``: what the
guard kept users from); when it refused every checkpoint, ``best/`` is the untuned model and its
scores are the base's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, WORK, append_record, data_root, describe_hardware, parser, run_child, utc_now
from benchmarks.harness import FORGETTING_SETS, GUARD_SETS, guard_manifest, scored_manifests, write_result_raw
from benchmarks.tables import merge_table, regenerate

TABLE_JSON = RESULTS / "finetune.json"
GUARD_MARGIN = 0.005  # passed as --guard-margin (0.5 points, its default) to every row's training


@dataclass(frozen=True)
class Row:
    """One benchmark configuration."""

    model: str
    train: tuple[str, ...]  # speechocean762 manifests
    encoder_top: int = 0  # --train-encoder-top
    adapter: str = "none"
    lr: float = 4e-5
    synth: tuple[str, ...] = ()  # speechocean762 manifests whose *texts* eSpeak speaks (asrtune synth) for training
    synth_dev: bool = False  # pick best/ on eSpeak renderings of the dev texts: a text-only user has no real dev audio


ROWS = {
    "tiny-decoder": Row("openai/whisper-tiny.en", ("train.jsonl",)),
    "tiny-enctop2": Row("openai/whisper-tiny.en", ("train.jsonl", "train-extra.jsonl"), encoder_top=2),
    "base-decoder": Row("openai/whisper-base", ("train.jsonl", "train-extra.jsonl"), lr=2e-5),
    "base-enctop": Row("openai/whisper-base", ("train.jsonl", "train-extra.jsonl"), encoder_top=2, lr=2e-5),
    # text-only adaptation measured on real speech: the same 1,200 train sentences as tiny-decoder, spoken by eSpeak
    "tiny-synth-only": Row("openai/whisper-tiny.en", (), synth=("train.jsonl",), synth_dev=True),
    # real train audio plus eSpeak renderings of 1,100 new sentences (train-extra's texts, not its audio)
    "tiny-real+synth-new": Row("openai/whisper-tiny.en", ("train.jsonl",), synth=("train-extra.jsonl",)),
}
SYNTH_VARIANTS = 1  # renderings per sentence: one clip per sentence, as many as the real-audio rows have


# --- the baseline (runs in its own process) ---------------------------------------------------------


def baseline_main(args: argparse.Namespace) -> None:
    """The HF recipe for ``--baseline-steps`` steps; writes {utts_per_s, steps, ...} to --baseline-json."""
    import torch

    torch.set_num_threads(args.threads)
    from dataclasses import dataclass

    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest
    from asrtune.models import load_whisper, resolve_model

    model, processor = load_whisper(resolve_model(args.model))
    model.float()
    # The recipe's model.freeze_encoder(), then the row's trainable set, as asrtune trains it:
    # the top K encoder layers + final norm, and the (output-tied) token embeddings fixed.
    model.freeze_encoder()
    encoder = model.model.encoder
    if args.encoder_top:
        for module in [*encoder.layers[-args.encoder_top :], encoder.layer_norm]:
            module.requires_grad_(True)
    model.model.decoder.embed_tokens.requires_grad_(False)
    if args.adapter == "lora":
        raise SystemExit("the HF-recipe baseline has no LoRA variant yet; time the full row instead")
    if processor.tokenizer.pad_token is None:  # the hub's tokenizer pads with <|endoftext|>
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    n = args.batch_size * (args.baseline_steps + 1)
    utts = [u for name in args.train for u in load_manifest(Path(args.data) / "speechocean762" / name)][:n]

    # prepare_dataset() of the recipe: log-mel features and label ids, computed before training.
    dataset = []
    for u in utts:
        audio = load_audio(u.audio_filepath)
        feats = processor.feature_extractor(audio, sampling_rate=16000).input_features[0]
        dataset.append({"input_features": feats, "labels": processor.tokenizer(u.text).input_ids})

    @dataclass
    class DataCollatorSpeechSeq2SeqWithPadding:
        processor: object
        decoder_start_token_id: int

        def __call__(self, features):
            inputs = [{"input_features": f["input_features"]} for f in features]
            batch = self.processor.feature_extractor.pad(inputs, return_tensors="pt")
            labels_batch = self.processor.tokenizer.pad([{"input_ids": f["labels"]} for f in features], return_tensors="pt")
            labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
            if (labels[:, 0] == self.decoder_start_token_id).all().cpu().item():
                labels = labels[:, 1:]
            batch["labels"] = labels
            return batch

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, *a, **k):
            self._t = time.time()

        def on_step_end(self, *a, **k):
            self.times.append(time.time() - self._t)

    timer = StepTimer()
    training_args = Seq2SeqTrainingArguments(
        output_dir=str(Path(args.baseline_json).parent / "hf_baseline_run"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        warmup_steps=500,
        max_steps=args.baseline_steps + 1,
        gradient_checkpointing=False,
        fp16=False,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1000,
        report_to=[],
        remove_unused_columns=False,
        use_cpu=True,
        dataloader_num_workers=0,
        predict_with_generate=False,
    )
    trainer = Seq2SeqTrainer(
        args=training_args,
        model=model,
        train_dataset=dataset,
        data_collator=DataCollatorSpeechSeq2SeqWithPadding(processor, model.config.decoder_start_token_id),
        processing_class=processor.feature_extractor,
        callbacks=[timer],
    )
    trainer.train()
    steady = timer.times[1:]  # the first step pays one-off warm-up costs
    out = {
        "steps_timed": len(steady),
        "seconds_per_step": sum(steady) / len(steady),
        "utts_per_s": args.batch_size * len(steady) / sum(steady),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "step_times_s": [round(t, 3) for t in timer.times],
    }
    Path(args.baseline_json).write_text(json.dumps(out, indent=2))


# --- one row ------------------------------------------------------------------------------------------


def synth_manifest(source: Path, out_dir: Path) -> Path:
    """``asrtune synth`` of the sentences of ``source`` (a manifest), as the policy's sentence case
    (eSpeak spells ALL-CAPS words letter by letter); returns the synthetic manifest, reused if built."""
    manifest = out_dir / "manifest.jsonl"
    if manifest.exists():
        return manifest
    from asrtune.data.manifest import load_manifest
    from asrtune.training.text_policy import apply_text_policy

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    text_file = out_dir.parent / f"{out_dir.name}.txt"
    text_file.write_text("".join(apply_text_policy(u.text, "sentence") + "\n" for u in load_manifest(source)))
    cmd = [sys.executable, "-m", "asrtune", "synth", "--text", str(text_file), "--out", str(out_dir),
           "--variants-per-sentence", str(SYNTH_VARIANTS)]
    child = run_child(cmd, out_dir.parent / f"{out_dir.name}.log")
    if child.exit_code != 0:
        raise SystemExit(f"asrtune synth failed (see {out_dir.parent / f'{out_dir.name}.log'})")
    print(f"synthesised {source.name} in {child.seconds:.0f} s -> {manifest}", flush=True)
    return manifest


def train_row(name: str, row: Row, args: argparse.Namespace, run_dir: Path) -> tuple[dict, float]:
    """``asrtune train`` for the row (own process); returns (result.json, peak RSS MB)."""
    data = Path(args.data)
    so = data / "speechocean762"
    synth_root = run_dir.parent / "synth"
    train = [so / t for t in row.train] + [synth_manifest(so / t, synth_root / Path(t).stem) for t in row.synth]
    dev = synth_manifest(so / "dev.jsonl", synth_root / "dev") if row.synth_dev else so / "dev.jsonl"
    cmd = [
        sys.executable, "-m", "asrtune", "train", "--model", row.model,
        "--train", ",".join(map(str, train)), "--dev", str(dev),
        "--guard-dev", str(guard_manifest(data, run_dir.parent)), "--guard-margin", f"{100 * GUARD_MARGIN:g}", "--out", str(run_dir), "--force",
        "--batch-size", str(args.batch_size), "--lr", str(row.lr), "--warmup-steps", "5", "--epochs", str(args.epochs),
        "--max-train-minutes", str(args.max_train_minutes), "--eval-every", str(args.eval_every), "--save-every",
        str(args.eval_every), "--threads", str(args.threads), "--freeze-token-embeddings", "--no-progress", "--json",
    ]
    if row.encoder_top:
        cmd += ["--train-encoder-top", str(row.encoder_top)]
    if row.adapter != "none":
        cmd += ["--adapter", row.adapter]
    print("running:", " ".join(cmd), flush=True)
    child = run_child(cmd, run_dir.parent / f"{name}.log")
    if child.exit_code != 0:
        raise SystemExit(f"asrtune train failed (see {run_dir.parent / f'{name}.log'})")
    return json.loads((run_dir / "result.json").read_text()), child.peak_rss_mb


def score_sets(model: str, sets: list[Path], args: argparse.Namespace, names: list[str] | None = None) -> dict[str, dict]:
    """Normalised corpus WER with a 95 % bootstrap CI of ``model`` on each manifest, keyed by
    ``names`` (default: each manifest's folder name); the model is loaded once."""
    import numpy as np
    import torch

    from asrtune.data.manifest import load_manifest
    from asrtune.evaluation.bootstrap import bootstrap_ci
    from asrtune.evaluation.metrics import align_words_batch
    from asrtune.inference import load_recognizer
    from asrtune.text.normalizers import get_normalizer
    from asrtune.training.compare import utterance_audio

    torch.set_num_threads(args.threads)
    norm = get_normalizer("whisper-en")
    recognizer = load_recognizer(model, engine=args.score_engine, device="cpu", batch_size=16, threads=args.threads)
    out = {}
    for manifest, name in zip(sets, names or [m.parent.name for m in sets]):
        utts = load_manifest(manifest)
        hyps = recognizer.transcribe([utterance_audio(u) for u in utts])
        aligned = align_words_batch([norm(u.text) for u in utts], [norm(h) for h in hyps])
        errors = np.array([a.counts.substitutions + a.counts.insertions + a.counts.deletions for a in aligned])
        ci = bootstrap_ci(errors, np.array([a.counts.ref_words for a in aligned]))
        out[name] = {"utterances": len(utts), "wer": ci.estimate, "ci95": [ci.low, ci.high]}
        print(f"  {model}: {name} ({manifest.parent.name}/{manifest.name}) WER {100 * ci.estimate:.2f} % "
              f"[{100 * ci.low:.2f}, {100 * ci.high:.2f}]", flush=True)
    return out


def base_scores(model: str, sets: list[Path], args: argparse.Namespace) -> dict[str, dict]:
    """:func:`score_sets` of an untuned hub model, kept in the runs folder: rows of the same model
    share it (greedy decoding of fixed weights gives the same hypotheses every time)."""
    engine = "" if args.score_engine == "hf" else f"-{args.score_engine}"
    path = Path(args.runs) / f"base-scores-{model.replace('/', '--')}{engine}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = score_sets(model, sets, args)
    write_result_raw(path, scores)
    return scores


def training_speed(run_dir: Path) -> dict:
    """Minutes of training and utts/s over every step (metrics.jsonl), lazy cache encoding included."""
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [m for m in metrics if m.get("event") == "epoch"]
    utts, seconds = sum(m["utts"] for m in epochs), sum(m["train_s"] for m in epochs)
    elapsed = max((m.get("elapsed_s", 0) for m in metrics), default=0)
    return {"train_minutes": round(elapsed / 60, 2), "utts_per_s": utts / seconds if seconds else None,
            "utts_trained": utts}


def run_row(name: str, args: argparse.Namespace) -> dict:
    row = ROWS[name]
    data = Path(args.data)
    run_dir = Path(args.runs) / name
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = utc_now()
    hardware = describe_hardware(threads=args.threads)
    if args.reuse_run and (run_dir / "result.json").exists():
        result, train_rss = json.loads((run_dir / "result.json").read_text()), None
    else:
        result, train_rss = train_row(name, row, args, run_dir)
    sets = scored_manifests(data)
    if result["best_step"] == 0:  # the guard (or dev) kept the untuned model: best/ holds the base weights
        after = before = base_scores(row.model, sets, args)
    else:
        after = score_sets(str(run_dir / "best"), sets, args)
        before = base_scores(row.model, sets, args)  # after the tuned model: a --base-scores-only run may be filling it
    speed = training_speed(run_dir)
    record = {
        "row": name, "when": started, "hardware": hardware, "settings": dataclasses.asdict(row) | {
            "batch_size": args.batch_size, "max_train_minutes": args.max_train_minutes, "epochs": args.epochs,
            "guard_dev": list(GUARD_SETS), "guard_margin_pct_points": 100 * GUARD_MARGIN,
            "score_engine": args.score_engine},
        "steps": result["steps"], "stopped": result["stopped"], "best_step": result["best_step"],
        "dev_wer_best": result["best_dev_wer"], "dev_wer_final": result.get("final_dev_wer"),
        "guard": {k: result.get(k) for k in ("guard_base_wer", "best_guard_wer", "final_guard_wer")},
        "before": before, "after": after, **speed, "peak_rss_mb": round(train_rss) if train_rss else None,
        "hf_recipe": {"pending": True}, "speed_ratio": None,
    }
    save_row(record)  # the quality numbers are kept even if the baseline timing is cut short
    add_refused_final(record, run_dir, sets, args)
    if row.synth:  # the recipe's speed does not depend on where the audio came from
        record["hf_recipe"] = {"skipped": "same model, trainable set and batch as tiny-decoder: see that row"}
        save_row(record)
        return record
    base_json = run_dir.parent / f"{name}-hf-baseline.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_finetune", "--baseline-json", str(base_json), "--model", row.model,
           "--data", str(args.data),
           "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--baseline-steps", str(args.baseline_steps),
           "--encoder-top", str(row.encoder_top), "--adapter", row.adapter, "--train", *row.train]
    child = run_child(cmd, run_dir.parent / f"{name}-hf-baseline.log")
    baseline = json.loads(base_json.read_text()) | {"peak_rss_mb": round(child.peak_rss_mb)} if child.exit_code == 0 else {"failed": True}
    record["hf_recipe"] = baseline
    if speed["utts_per_s"] and "utts_per_s" in baseline:
        record["speed_ratio"] = speed["utts_per_s"] / baseline["utts_per_s"]
    save_row(record)
    print(f"appended row {name} to {TABLE_JSON}")
    return record


def add_refused_final(record: dict, run_dir: Path, sets: list[Path], args: argparse.Namespace) -> None:
    """When the guard refused ``final/``, score it too: what the guard kept users from (saved in the record)."""
    guard = record["guard"]
    if guard.get("final_guard_wer") is None or guard["final_guard_wer"] - guard["guard_base_wer"] <= GUARD_MARGIN:
        return
    record["final_refused_by_guard"] = score_sets(str(run_dir / "final"), sets, args)
    save_row(record)


def score_final(name: str, args: argparse.Namespace) -> None:
    """:func:`add_refused_final` for the row's latest record (a run scored before the final/ scores existed)."""
    record, run_dir = latest_record(name, args)
    result = json.loads((run_dir / "result.json").read_text())
    record["guard"]["final_guard_wer"] = result.get("final_guard_wer")
    record["dev_wer_final"] = result.get("final_dev_wer")
    add_refused_final(record, run_dir, scored_manifests(Path(args.data)), args)


def merge_study(name: str, alphas: list[float], args: argparse.Namespace) -> None:
    """WiSE-FT on the row's latest run: ``(1 - a) * base + a * final/`` for each a (``asrtune merge``),
    scored on dev and the guard (what ``train --merge-alphas`` chooses by: the lowest dev WER within
    the guard margin) and on every test set (shown, never chosen on). Added to the row's record."""
    from asrtune.models.interpolate import interpolate_folders
    from asrtune.models.registry import resolve_model
    from asrtune.training.trainer import guard_allows

    record, run_dir = latest_record(name, args)
    data, row = Path(args.data), ROWS[name]
    args.score_engine = record["settings"].get("score_engine", "hf")  # as the row's own scores
    dev, guard = data / "speechocean762" / "dev.jsonl", guard_manifest(data, run_dir.parent)
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"dev_wer"' in line]
    base_dev = next(m for m in evals if m["step"] == 0)  # the guard evaluates the untuned model at step 0
    merges = []
    for alpha in alphas:
        folder = run_dir / f"merge-{alpha:g}"
        if not folder.exists():
            interpolate_folders(resolve_model(row.model).path, run_dir / "final", alpha, folder, base_name=row.model)
        tests = scored_manifests(data)
        scores = score_sets(str(folder), [dev, guard, *tests], args, ["dev", "guard", *(m.parent.name for m in tests)])
        dev_wer, guard_wer = scores.pop("dev")["wer"], scores.pop("guard")["wer"]
        merges.append({"alpha": alpha, "dev": dev_wer, "guard": guard_wer, "scores": scores,
                       "guard_ok": guard_allows(guard_wer, record["guard"]["guard_base_wer"], 100 * GUARD_MARGIN)})
    ok = [m for m in merges if m["guard_ok"] and m["dev"] < record["dev_wer_best"]]
    record["merges"] = {"base_dev_wer": base_dev.get("dev_wer"), "alphas": merges,
                        "chosen": min(ok, key=lambda m: m["dev"])["alpha"] if ok else None}
    save_row(record)
    print(merge_table([record]))


def latest_record(name: str, args: argparse.Namespace) -> tuple[dict, Path]:
    """The row's newest record in the table JSON and its run dir (which must hold a finished run)."""
    records = [r for r in json.loads(TABLE_JSON.read_text())["rows"] if r["row"] == name] if TABLE_JSON.exists() else []
    run_dir = Path(args.runs) / name
    if not records or not (run_dir / "result.json").exists():
        raise SystemExit(f"{name}: no finished run of that row ({TABLE_JSON} and {run_dir}/result.json)")
    return records[-1], run_dir


def save_row(record: dict) -> None:
    """Add ``record`` to the results, replacing an earlier copy of the same run (row and start time)."""
    append_record(TABLE_JSON, record, key=("row", "when"))


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--row", choices=sorted(ROWS), help=f"run one row and append it to {TABLE_JSON.relative_to(REPO)}")
    p.add_argument("--table", action="store_true", help="regenerate the tables made from the results (python -m benchmarks.tables)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--score-engine", choices=("hf", "ct2"), default="hf",
                   help="engine that scores base and tuned models (ct2: CTranslate2 int8, several times faster "
                        "on CPU; recorded in the row)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=float, default=4)
    p.add_argument("--max-train-minutes", type=float, default=15)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--baseline-steps", type=int, default=2)
    p.add_argument("--runs", type=Path, default=WORK / "rows", help="run dirs (default: %(default)s)")
    p.add_argument("--reuse-run", action="store_true", help="score an already trained run dir instead of training")
    p.add_argument("--score-final", choices=sorted(ROWS), metavar="ROW",
                   help="score final/ of the row's latest run when the guard refused it (added to its record)")
    p.add_argument("--merge", choices=sorted(ROWS), metavar="ROW",
                   help="WiSE-FT study of the row's latest run: score (1-a)*base + a*final/ for each --alphas")
    p.add_argument("--alphas", default="0.25,0.5,0.75", help="with --merge: comma-separated interpolation weights")
    p.add_argument("--base-scores-only", choices=sorted(ROWS), metavar="ROW", help="only score the row's base model")
    # the HF-recipe child process
    p.add_argument("--baseline-json", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--encoder-top", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--adapter", default="none", help=argparse.SUPPRESS)
    p.add_argument("--train", nargs="+", default=["train.jsonl"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.baseline_json or args.row or args.base_scores_only or args.score_final or args.merge:
        args.data = data_root(args)
    if args.baseline_json:
        baseline_main(args)
        return 0
    if args.base_scores_only:  # score a row's base model ahead of (or beside) its training
        base_scores(ROWS[args.base_scores_only].model, scored_manifests(Path(args.data)), args)
        return 0
    if args.score_final:
        score_final(args.score_final, args)
        return 0
    if args.merge:
        merge_study(args.merge, [float(a) for a in args.alphas.split(",")], args)
        args.table = True
    if args.row:
        run_row(args.row, args)
    if args.table or args.row:
        for path in regenerate():
            print(f"wrote {path}")
    if not (args.row or args.table):
        p.error("give --row NAME or --table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
