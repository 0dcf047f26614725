#!/usr/bin/env python
"""Benchmark: fine-tune Whisper tiny.en on accented speech (speechocean762), prove the gain, check
forgetting, and measure training speed against the Hugging Face "fine-tune Whisper" recipe.

Two parts, both in this one run on this machine:

1. Quality - ``asrtune train`` (frozen encoder, encoder-output cache, batch 16) on
   speechocean762 train (1200) with dev (200) picking the best checkpoint, at most
   ``--max-train-minutes`` of training; then base vs tuned normalised WER on speechocean762
   test (500) and on librispeech-test-clean-40 + ljspeech-32 (the forgetting sets, never trained on).
   Targets: test WER ~41 % -> <= 25 %; general-English WER up by <= 0.5 absolute.
2. Speed - the baseline follows the HF blog recipe (``Seq2SeqTrainer``, features precomputed
   with ``dataset.map``-style preparation, ``DataCollatorSpeechSeq2SeqWithPadding``,
   ``model.freeze_encoder()``, same batch size, same data) for ``--baseline-steps`` steps; its
   utts/s is compared with asrtune's utts/s per epoch from the second epoch on (cached encoder
   outputs). The recipe's ``gradient_checkpointing=True`` is turned off: it only trades speed
   for memory, so the baseline is as fast as the recipe allows. Each side runs in its own
   process so its peak resident memory (ru_maxrss) is reported separately.

Usage::

    python scripts/bench_finetune.py                     # full benchmark (~1 h on 2 CPU cores)
    python scripts/bench_finetune.py --speed-only        # just the speed comparison
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from asrtune.hardware import cpu_name

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_child(cmd: list[str], log_path: Path) -> tuple[int, float, float]:
    """Run ``cmd`` with output to ``log_path``; returns (exit code, wall s, peak RSS in MB)."""
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.time() - start, usage.ru_maxrss / 1024


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
    model.freeze_encoder()
    if processor.tokenizer.pad_token is None:  # the hub's tokenizer pads with <|endoftext|>
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    n = args.batch_size * (args.baseline_steps + 1)
    utts = load_manifest(Path(args.data) / "speechocean762" / "train.jsonl")[:n]

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
        "step_times_s": [round(t, 3) for t in timer.times],
    }
    Path(args.baseline_json).write_text(json.dumps(out, indent=2))


# --- the benchmark ---------------------------------------------------------------------------------------


def general_weights(data: Path) -> dict[str, int]:
    """Normalised reference word counts of the forgetting sets (to pool their WERs)."""
    from asrtune.data.manifest import load_manifest

    try:
        from asrtune.text.normalizers import get_normalizer

        norm = get_normalizer("whisper-en")
    except Exception:
        norm = str.lower
    out = {}
    for name in ("librispeech-test-clean-40", "ljspeech-32"):
        manifest = next((data / name).glob("*.jsonl"))
        out[str(manifest)] = sum(len(norm(u.text).split()) for u in load_manifest(manifest))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="openai/whisper-tiny.en")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=4e-5)
    p.add_argument("--epochs", type=float, default=4)
    p.add_argument("--max-train-minutes", type=float, default=30)
    p.add_argument("--eval-every", type=int, default=75)
    p.add_argument("--baseline-steps", type=int, default=6)
    p.add_argument("--speed-only", action="store_true", help="skip the quality evaluation (eval sets)")
    p.add_argument("--run-dir", default=str(REPO / "bench_results" / "finetune_run"))
    p.add_argument("--out", default=str(REPO / "bench_results" / "finetune.json"))
    p.add_argument("--baseline-json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.baseline_json:
        baseline_main(args)
        return 0

    data = Path(args.data)
    so = data / "speechocean762"
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    hardware = {"cpu": cpu_name(), "cores_visible": os.cpu_count(), "threads": args.threads, "load_avg_at_start": os.getloadavg()}
    print(f"hardware: {hardware['cpu']}, {hardware['cores_visible']} cores visible, {args.threads} torch threads, load {hardware['load_avg_at_start']}")

    # 1. baseline speed (own process)
    base_json = out_dir / "finetune_hf_baseline.json"
    rc, wall, base_rss = run_child(
        [sys.executable, __file__, "--baseline-json", str(base_json), "--model", args.model, "--data", args.data,
         "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--baseline-steps", str(args.baseline_steps)],
        out_dir / "finetune_hf_baseline.log",
    )
    if rc != 0:
        print(f"baseline failed (see {out_dir / 'finetune_hf_baseline.log'})", file=sys.stderr)
        return 1
    baseline = json.loads(base_json.read_text()) | {"peak_rss_mb": round(base_rss), "wall_s": round(wall)}
    print(f"HF recipe baseline: {baseline['utts_per_s']:.2f} utts/s ({baseline['seconds_per_step']:.1f} s/step), peak RSS {base_rss:.0f} MB")

    # 2. asrtune train (own process, through the CLI)
    eval_sets = [str(so / "dev.jsonl"), str(so / "test.jsonl")] + list(general_weights(data))
    cmd = [
        sys.executable, "-m", "asrtune", "train", "--model", args.model, "--train", str(so / "train.jsonl"),
        "--dev", str(so / "dev.jsonl"), "--out", args.run_dir, "--force", "--batch-size", str(args.batch_size),
        "--lr", str(args.lr), "--warmup-steps", "20", "--epochs", str(args.epochs), "--max-train-minutes", str(args.max_train_minutes),
        "--eval-every", str(args.eval_every), "--save-every", "25", "--threads", str(args.threads), "--freeze-token-embeddings",
        "--no-progress", "--json",
    ]
    if not args.speed_only:
        cmd += ["--eval-sets", ",".join(eval_sets)]
    print("running:", " ".join(cmd))
    rc, wall, train_rss = run_child(cmd, out_dir / "finetune_train.log")
    if rc != 0:
        print(f"asrtune train failed (see {out_dir / 'finetune_train.log'})", file=sys.stderr)
        return 1
    run_dir = Path(args.run_dir)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [m for m in metrics if m.get("event") == "epoch"]
    later = [m for m in epochs if m["epoch"] >= 1]
    later_rate = sum(m["utts"] for m in later) / sum(m["train_s"] for m in later) if later else None
    result = json.loads((run_dir / "result.json").read_text())
    speed = {
        "baseline_hf_recipe": baseline,
        "asrtune": {"epochs": epochs, "utts_per_s_epoch2_on": later_rate, "peak_rss_mb": round(train_rss), "wall_s": round(wall)},
        "speedup_epoch2_on": later_rate / baseline["utts_per_s"] if later_rate else None,
    }

    print("\nspeed (utts/s, training steps only)")
    print(f"  {'HF Seq2SeqTrainer recipe':<34} {baseline['utts_per_s']:>7.2f}   peak RSS {base_rss:>6.0f} MB")
    for m in epochs:
        print(f"  {'asrtune epoch ' + str(m['epoch'] + 1) + (' (partial)' if m['partial'] else ''):<34} {m['utts_per_s']:>7.2f}")
    if later_rate:
        print(f"  {'asrtune epochs 2+':<34} {later_rate:>7.2f}   peak RSS {train_rss:>6.0f} MB   speed-up x{speed['speedup_epoch2_on']:.2f}")

    quality = {}
    if result.get("eval_results"):
        rows = {r["set"]: r for r in result["eval_results"]}
        weights = general_weights(data)
        total = sum(weights.values())
        pooled = {k: sum(rows[s][k] * w for s, w in weights.items()) / total for k in ("base_wer", "tuned_wer")}
        test = rows[str(so / "test.jsonl")]
        quality = {
            "rows": list(rows.values()),
            "test_base_wer": test["base_wer"], "test_tuned_wer": test["tuned_wer"],
            "general_base_wer": pooled["base_wer"], "general_tuned_wer": pooled["tuned_wer"],
            "general_delta_abs_pct": 100 * (pooled["tuned_wer"] - pooled["base_wer"]),
            "target_test_wer_met": test["tuned_wer"] <= 0.25,
            "target_forgetting_met": 100 * (pooled["tuned_wer"] - pooled["base_wer"]) <= 0.5,
        }
        print("\nnormalised WER (whisper-en), greedy")
        print(f"  {'set':<36} {'utts':>5} {'base':>8} {'tuned':>8} {'change':>8}")
        for r in rows.values():
            print(f"  {Path(r['set']).parent.name + '/' + Path(r['set']).name:<36} {r['utterances']:>5} {100 * r['base_wer']:>7.2f}% {100 * r['tuned_wer']:>7.2f}% {100 * r['delta']:>+7.2f}")
        print(f"  {'general (libri-40 + lj-32 pooled)':<36} {'':>5} {100 * pooled['base_wer']:>7.2f}% {100 * pooled['tuned_wer']:>7.2f}% {quality['general_delta_abs_pct']:>+7.2f}")

    report = {
        "benchmark": "finetune", "model": args.model, "hardware": hardware,
        "settings": {k: v for k, v in vars(args).items() if k != "baseline_json"},
        "train_result": result, "speed": speed, "quality": quality,
        "learning_curve": str(run_dir / "learning_curve.png"),
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}; learning curve {run_dir / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
