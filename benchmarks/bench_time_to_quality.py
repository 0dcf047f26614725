#!/usr/bin/env python
"""Benchmark: wall time to a tuned model, the Hugging Face recipe against ``asrtune train``.

One run on one machine, both sides with the same model, data and optimisation:

- whisper-tiny.en, the decoder trains (encoder and token embeddings frozen);
- speechocean762 train (1,200 utterances), batch 16, AdamW lr 4e-5 with 5 warm-up steps then
  linear decay, weight decay 0.01, gradient clipping 1.0, ``--epochs`` epochs (default 4: 300 steps);
- speechocean762 dev (200) scored every ``--eval-every`` steps by the same decoder: asrtune's
  whisper-hf recogniser (greedy, no prompt) and the whisper-en normaliser.

The recipe is the Hugging Face blog's ``Seq2SeqTrainer`` one (``prepare_dataset``: log-mel features
and label ids computed up front; the frozen encoder runs every step); its dev evaluations decode
from audio, as its ``predict_with_generate`` evaluation would. ``asrtune train`` starts with an
empty cache folder, so its time includes building the encoder-output cache (train + dev), and
evaluates dev from the cache. Each side's clock starts when its process is launched
(imports and model loading count).

Time to quality: seconds from launch to the first dev evaluation at or below the recipe's final
dev WER; ``time_to_quality_ratio`` = asrtune's / the recipe's (goal: at most 0.25). asrtune's
time is split into cache build, training steps and evaluations. Both final models are then
scored on speechocean762 test (500; normalised WER with a 95 % bootstrap CI).

Usage::

    python -m benchmarks.bench_time_to_quality            # both sides, then the test scores
    python -m benchmarks.bench_time_to_quality --table    # print the table from the results
    python -m benchmarks.bench_time_to_quality --levers   # cache-build encoders and decoder step, measured

Results: ``benchmarks/results/time_to_quality.json`` (one record per run, newest last).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (RESULTS, WORK, append_record, data_root, describe_hardware, parser, run_child, utc_now,
                                write_result_raw)
from benchmarks.tables import time_to_quality_table

RESULTS_JSON = RESULTS / "time_to_quality.json"
MODEL = "openai/whisper-tiny.en"
BATCH, LR, WARMUP, WEIGHT_DECAY, MAX_GRAD_NORM = 16, 4e-5, 5, 0.01, 1.0
GOAL_RATIO = 0.25
# The recipe's task: each transcript as asrtune's default text policy writes it, no timestamped,
# prompted or no-speech examples (asrtune's defaults add those; here both sides learn the same thing).
SAME_TARGETS = ("--text-policy", "sentence", "--timestamp-fraction", "0", "--prompt-fraction", "0",
                "--no-speech-fraction", "0")


# --- the Hugging Face recipe (its own process) ------------------------------------------------------


def recipe_main(args: argparse.Namespace) -> None:
    """Train with ``Seq2SeqTrainer``; dev WER at the evaluation steps into ``--events`` (JSON lines)."""
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

    from asrtune.data.manifest import load_manifest
    from asrtune.inference.whisper_hf import WhisperHFRecognizer
    from asrtune.models import load_whisper, resolve_model
    from asrtune.training.compare import score, utterance_audio
    from asrtune.training.text_policy import apply_text_policy

    torch.set_num_threads(args.threads)
    resolved = resolve_model(MODEL)
    model, processor = load_whisper(resolved)
    model.float()
    model.freeze_encoder()
    model.model.decoder.embed_tokens.requires_grad_(False)  # tied to the output layer; asrtune's run freezes it too
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train, dev = load_manifest(args.train), load_manifest(args.dev)
    dataset = [{"input_features": processor.feature_extractor(utterance_audio(u), sampling_rate=16000).input_features[0],
                "labels": tokenizer(apply_text_policy(u.text, "sentence")).input_ids} for u in train]
    dev_audio = [utterance_audio(u) for u in dev]
    events = Path(args.events)

    def collate(features: list[dict]) -> dict:
        batch = processor.feature_extractor.pad([{"input_features": f["input_features"]} for f in features],
                                                return_tensors="pt")
        labels = tokenizer.pad([{"input_ids": f["labels"]} for f in features], return_tensors="pt")
        ids = labels["input_ids"].masked_fill(labels.attention_mask.ne(1), -100)
        if (ids[:, 0] == model.config.decoder_start_token_id).all():
            ids = ids[:, 1:]
        batch["labels"] = ids
        return batch

    class DevEvaluation(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            if state.global_step % args.eval_every and state.global_step != state.max_steps:
                return
            start = time.time()
            model.eval()
            recognizer = WhisperHFRecognizer(resolved, batch_size=16, model=model, processor=processor)
            with torch.no_grad():
                wer = score([u.text for u in dev], recognizer.transcribe(dev_audio), None)
            model.train()
            with open(events, "a") as f:
                f.write(json.dumps({"step": state.global_step, "dev_wer": wer, "eval_s": round(time.time() - start, 2),
                                    "wall_time": round(time.time(), 2)}) + "\n")

    steps = args.epochs * -(-len(dataset) // BATCH)
    targs = Seq2SeqTrainingArguments(
        output_dir=str(events.parent / "hf-recipe-run"), per_device_train_batch_size=BATCH, learning_rate=LR,
        warmup_steps=WARMUP, lr_scheduler_type="linear", weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM,
        max_steps=steps, eval_strategy="no", save_strategy="no", logging_steps=25, report_to=[],
        remove_unused_columns=False, use_cpu=True, dataloader_num_workers=0, seed=0)
    trainer = Seq2SeqTrainer(args=targs, model=model, train_dataset=dataset, data_collator=collate,
                             processing_class=processor.feature_extractor, callbacks=[DevEvaluation()])
    trainer.train()
    model.save_pretrained(events.parent / "hf-recipe-final")
    processor.save_pretrained(events.parent / "hf-recipe-final")


# --- the run -----------------------------------------------------------------------------------------


def manifests(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """speechocean762 train and dev (with ``--limit N``: their first N utterances, for a smoke run)."""
    so = Path(args.data) / "speechocean762"
    if not args.limit:
        return so / "train.jsonl", so / "dev.jsonl"
    from asrtune.data.manifest import load_manifest, write_manifest

    out = []
    for name in ("train", "dev"):
        write_manifest(work / f"{name}-first-{args.limit}.jsonl", list(load_manifest(so / f"{name}.jsonl"))[:args.limit])
        out.append(work / f"{name}-first-{args.limit}.jsonl")
    return out[0], out[1]


def launch_recipe(args: argparse.Namespace, work: Path) -> tuple[float, list[dict]]:
    events = work / "hf-recipe-events.jsonl"
    events.unlink(missing_ok=True)
    train, dev = manifests(args, work)
    cmd = [sys.executable, "-m", "benchmarks.bench_time_to_quality", "--recipe-child", "--events", str(events),
           "--train", str(train), "--dev", str(dev), "--data", str(args.data), "--threads", str(args.threads),
           "--epochs", str(args.epochs), "--eval-every", str(args.eval_every)]
    launched = time.time()
    child = run_child(cmd, work / "hf-recipe.log")
    if child.exit_code != 0:
        raise SystemExit(f"the Hugging Face recipe failed (see {work / 'hf-recipe.log'})")
    return launched, [json.loads(line) for line in events.read_text().splitlines()]


def launch_asrtune(args: argparse.Namespace, work: Path) -> tuple[float, Path]:
    train, dev = manifests(args, work)
    run_dir, cache = work / "asrtune-run", work / "asrtune-cache"
    for folder in (run_dir, cache):  # the cache build is part of the time measured
        shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, "-m", "asrtune", "train", "--model", MODEL, "--train", str(train),
           "--dev", str(dev), "--out", str(run_dir), "--cache-dir", str(cache),
           "--batch-size", str(BATCH), "--lr", str(LR), "--warmup-steps", str(WARMUP), "--lr-schedule", "linear",
           "--weight-decay", str(WEIGHT_DECAY), "--max-grad-norm", str(MAX_GRAD_NORM), "--epochs", str(args.epochs),
           "--eval-every", str(args.eval_every), "--save-every", str(args.eval_every), "--threads", str(args.threads),
           "--freeze-token-embeddings", "--no-progress", *SAME_TARGETS]
    launched = time.time()
    child = run_child(cmd, work / "asrtune-train.log")
    if child.exit_code != 0:
        raise SystemExit(f"asrtune train failed (see {work / 'asrtune-train.log'})")
    return launched, run_dir


def first_reaching(evals: list[dict], target: float, launched: float) -> dict | None:
    """The first evaluation at or below ``target``, with its seconds since launch."""
    hit = next((e for e in evals if e["dev_wer"] <= target), None)
    return None if hit is None else {"step": hit["step"], "dev_wer": hit["dev_wer"],
                                     "seconds": round(hit["wall_time"] - launched, 1)}


def run_metrics(run_dir: Path) -> list[dict]:
    """The run's ``metrics.jsonl`` records."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def dev_evaluations(metrics: list[dict]) -> list[dict]:
    return [m for m in metrics if "dev_wer" in m and "event" not in m]


def asrtune_parts(run_dir: Path, hit: dict) -> dict[str, Any]:
    """Where asrtune's seconds to the evaluation ``hit`` went: cache build, training, evaluations."""
    metrics = run_metrics(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    evals = [m for m in dev_evaluations(metrics) if m["step"] <= hit["step"]]
    steps = [m for m in metrics if "loss" in m and "event" not in m and m["step"] <= hit["step"]]
    # the training clock (elapsed_s) also ran through the evaluations before the hit's
    train_s = (steps[-1]["elapsed_s"] if steps else 0.0) - sum(e["eval_s"] for e in evals if e["step"] < hit["step"])
    cache_s = result["cache"].get("build_s", 0.0)
    eval_s = sum(e["eval_s"] for e in evals)
    return {"cache_build_s": cache_s, "training_s": round(train_s, 1), "evaluation_s": round(eval_s, 1),
            "other_s": round(hit["seconds"] - cache_s - train_s - eval_s, 1),
            "cache_utts": result["cache"].get("encoded"),
            "cache_utts_per_s": round(result["cache"]["encoded"] / cache_s, 2) if cache_s else None}


def test_scores(recipe_model: Path, asrtune_model: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Both final models on speechocean762 test: WER with its 95 % bootstrap CI, and the paired
    bootstrap of asrtune's minus the recipe's (``asrtune eval --compare``'s numbers)."""
    import torch  # heavy: only when something is decoded

    from asrtune.data.manifest import load_manifest
    from asrtune.evaluation.scoring import compare_hypotheses
    from asrtune.inference import load_recognizer
    from asrtune.training.compare import utterance_audio

    torch.set_num_threads(args.threads)
    utts = load_manifest(Path(args.data) / "speechocean762" / "test.jsonl")
    audio = [utterance_audio(u) for u in utts]
    hyps = [load_recognizer(str(m), engine="hf", device="cpu", batch_size=16).transcribe(audio)
            for m in (asrtune_model, recipe_model)]
    result = compare_hypotheses([u.text for u in utts], hyps[0], hyps[1])
    side = {name: {"utterances": len(utts), "wer": v.normalized.estimate, "ci95": [v.normalized.low, v.normalized.high]}
            for name, v in (("asrtune_best", result.this), ("hf_recipe", result.other))}
    d = result.normalized
    return side | {"asrtune_minus_recipe": {"difference": d.difference, "ci95": [d.low, d.high], "p_value": d.p_value}}


def run(args: argparse.Namespace) -> dict:
    work = Path(args.runs)
    work.mkdir(parents=True, exist_ok=True)
    started, hardware = utc_now(), describe_hardware(threads=args.threads)
    recipe_launched, recipe_evals = launch_recipe(args, work)
    target = recipe_evals[-1]["dev_wer"]
    recipe_hit = first_reaching(recipe_evals, target, recipe_launched)
    asrtune_launched, run_dir = launch_asrtune(args, work)
    evals = dev_evaluations(run_metrics(run_dir))
    asrtune_hit = first_reaching(evals, target, asrtune_launched)
    record = {
        "when": started, "hardware": hardware, "model": MODEL,
        "settings": {"train": "speechocean762/train.jsonl", "dev": "speechocean762/dev.jsonl", "batch_size": BATCH,
                     "lr": LR, "warmup_steps": WARMUP, "schedule": "linear", "weight_decay": WEIGHT_DECAY,
                     "max_grad_norm": MAX_GRAD_NORM, "epochs": args.epochs, "eval_every": args.eval_every,
                     "trains": "decoder (token embeddings frozen)", "asrtune_target_options": list(SAME_TARGETS)},
        "target_dev_wer": target,
        "hf_recipe": {"evals": recipe_evals, "reached": recipe_hit,
                      "total_s": round(recipe_evals[-1]["wall_time"] - recipe_launched, 1)},
        "asrtune": {"evals": [{k: e[k] for k in ("step", "dev_wer", "eval_s", "wall_time")} for e in evals],
                    "reached": asrtune_hit, "total_s": round(evals[-1]["wall_time"] - asrtune_launched, 1)},
        "time_to_quality_ratio": None, "goal_ratio": GOAL_RATIO,
    }
    if asrtune_hit:
        record["time_to_quality_ratio"] = round(asrtune_hit["seconds"] / recipe_hit["seconds"], 3)
        record["asrtune"]["parts"] = asrtune_parts(run_dir, asrtune_hit)
    if args.limit:  # a smoke run: shown, never recorded
        print(time_to_quality_table("", record))
        return record
    append_record(RESULTS_JSON, record, key=("when",))
    return score_tests(record, args)


def score_tests(record: dict, args: argparse.Namespace) -> dict:
    """Add both final models' test scores to ``record`` (a run of ``--runs``) and save it."""
    work = Path(args.runs)
    models = (work / "hf-recipe-final", work / "asrtune-run" / "best")
    missing = [str(m) for m in models if not (m / "config.json").is_file()]
    if missing:
        raise SystemExit(f"no trained model in {', '.join(missing)}: run the benchmark (without --score-tests) first")
    record["test"] = test_scores(*models, args)
    append_record(RESULTS_JSON, record, key=("when",))
    print(time_to_quality_table("", record))
    return record


def measure_levers(args: argparse.Namespace) -> dict:
    """The two costs of asrtune's run, measured on 64 real speechocean762 train clips (batch 16):
    filling the encoder cache with each encoder (torch float32, what the cache uses; CTranslate2 at
    each compute type, with how far its outputs are from float32's), and one decoder training step
    (forward + backward) with Hugging Face's cross-attention against the memory form asrtune uses."""
    import copy

    import ctranslate2
    import numpy as np
    import torch

    from asrtune.data.manifest import load_manifest
    from asrtune.models import load_whisper, resolve_model
    from asrtune.training.adapters.memory_attention import use_memory_attention
    from asrtune.training.compare import utterance_audio
    from asrtune.training.text_policy import apply_text_policy

    torch.set_num_threads(args.threads)
    resolved = resolve_model(MODEL)
    model, processor = load_whisper(resolved)
    model.float().eval()
    utts = load_manifest(Path(args.data) / "speechocean762" / "train.jsonl")[:64]
    feats = processor.feature_extractor([utterance_audio(u) for u in utts], sampling_rate=16000,
                                        return_tensors="np").input_features
    batches = [feats[i:i + BATCH] for i in range(0, len(feats), BATCH)]

    def rate(encode) -> tuple[float, np.ndarray]:
        encode(batches[0][:2])  # warm-up
        start, outs = time.perf_counter(), [encode(b) for b in batches]
        return len(feats) / (time.perf_counter() - start), np.concatenate(outs)

    with torch.no_grad():
        torch_rate, reference = rate(lambda b: model.get_encoder()(input_features=torch.from_numpy(b)).last_hidden_state.numpy())
    encoders = [{"encoder": "torch float32", "utts_per_s": round(torch_rate, 2), "relative_error": 0.0}]
    for compute_type in ("float32", "int8_float32", "int8"):
        ct2 = ctranslate2.models.Whisper(str(resolved.ct2_path), device="cpu", compute_type=compute_type,
                                         intra_threads=args.threads)
        r, out = rate(lambda b: np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(b)), to_cpu=True)))
        encoders.append({"encoder": f"ctranslate2 {compute_type}", "utts_per_s": round(r, 2),
                         "relative_error": round(float(np.linalg.norm(out - reference) / np.linalg.norm(reference)), 4)})

    memory = torch.from_numpy(reference[:BATCH].astype(np.float16).astype(np.float32))  # as the cache stores it
    tokenizer = processor.tokenizer
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokens = tokenizer([apply_text_policy(u.text, "sentence") for u in utts[:BATCH]], padding=True, return_tensors="pt")
    labels = tokens.input_ids.masked_fill(tokens.attention_mask.eq(0), -100)
    inputs = tokens.input_ids
    steps = []
    routed = copy.deepcopy(model)
    use_memory_attention(routed)
    for name, m in (("Hugging Face cross-attention", model), ("memory cross-attention", routed)):
        m.train()
        m.model.encoder.requires_grad_(False)
        m.model.decoder.embed_tokens.requires_grad_(False)
        times = []
        for _ in range(4):
            m.zero_grad()
            start = time.perf_counter()
            m(encoder_outputs=(memory,), decoder_input_ids=inputs[:, :-1], labels=labels[:, 1:], use_cache=False).loss.backward()
            times.append(time.perf_counter() - start)
        steps.append({"decoder_step": name, "utts_per_s": round(BATCH / min(times[1:]), 2), "tokens": labels.shape[1] - 1})
    return {"when": utc_now(), "hardware": describe_hardware(threads=args.threads), "clips": len(utts),
            "cache_build": encoders, "training_step": steps}


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--eval-every", type=int, default=75, help="steps between dev evaluations (default: one epoch)")
    p.add_argument("--runs", type=Path, default=WORK / "time_to_quality", help="run dirs (default: %(default)s)")
    p.add_argument("--table", action="store_true", help="print the newest run's table")
    p.add_argument("--score-tests", action="store_true",
                   help="score the newest run's two models on speechocean762 test again (a run cut short before it)")
    p.add_argument("--levers", action="store_true", help="measure the cache-build encoders and the decoder step (a few minutes)")
    p.add_argument("--limit", type=int, default=0, help="smoke run: the first N train and dev utterances, nothing recorded")
    p.add_argument("--recipe-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--events", help=argparse.SUPPRESS)
    p.add_argument("--train", help=argparse.SUPPRESS)
    p.add_argument("--dev", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.table:
        print(time_to_quality_table(""))
        return 0
    args.data = data_root(args)
    if args.score_tests:
        score_tests(json.loads(RESULTS_JSON.read_text())["rows"][-1], args)
    elif args.levers:
        levers = measure_levers(args)
        results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"rows": []}
        write_result_raw(RESULTS_JSON, results | {"levers": levers})
        print(json.dumps(levers, indent=2))
    elif args.recipe_child:
        recipe_main(args)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
