#!/usr/bin/env python
"""Benchmark CTC training throughput (duration grouping on/off), decoding speed (greedy vs beam)
and the over-fit check (a random wav2vec2 learns 20 real utterances through the CLI).

Training: the CTC adapter's real batches (make_example -> collate -> loss -> backward -> AdamW
step) on speechocean762 train utterances (1.6-20 s, so padding matters), in the trainer's
shuffled order versus the same order regrouped by duration
(``asrtune.training.sampling.group_by_duration``). Reports utterances/s, the share of padded
samples, and the speed-up ratio.

Decoding: per-utterance decoder time on CTC posteriors of real transcripts (speechocean762
test sentences). The posteriors are synthetic (each character favoured for 2-3 frames, Gaussian
logit noise, 10 % of characters confused), so the numbers measure the decoders, not a
particular acoustic model; the acoustic model's own forward pass is timed separately on real
audio. Greedy is the baseline; beam search without LM and with the word LM (built from the
train transcripts) are compared against it, with their WERs.

Over-fit: ``asrtune train`` (the CLI, in this process) trains the tiny random wav2vec2 from
scratch on the 20 shortest speechocean762 train utterances (~2 s each) for ``--overfit-steps``
steps (the same options as tests/test_ctc_train.py), then the best checkpoint transcribes them;
reports the wall time of the train command, the character error rate, and the dev WER curve.

    python -m benchmarks.bench_ctc                    # tiny random wav2vec2, CPU
    python -m benchmarks.bench_ctc --model facebook/wav2vec2-base-960h --device cuda --train-utts 256
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asrtune.models.random_ctc import save_random_wav2vec2
from benchmarks.harness import data_root, describe_hardware, parser, timed, write_result


def bench_training(args, tmp: Path) -> dict:
    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest, write_manifest
    from asrtune.models import resolve_model
    from asrtune.training.adapters.ctc import CTCAdapter
    from asrtune.training.config import TrainConfig
    from asrtune.training.sampling import epoch_plan, group_by_duration

    utts = [u for u in load_manifest(args.data / "speechocean762" / "train.jsonl") if u.duration <= args.max_seconds]
    utts = utts[: args.train_utts]
    manifest = tmp / "train.jsonl"
    write_manifest(manifest, utts, relative=False)
    model_name = args.model
    if model_name == "tiny":
        save_random_wav2vec2(tmp / "tiny")
        model_name = str(tmp / "tiny")
    config = TrainConfig(model=model_name, train=[str(manifest)], out=str(tmp / "run"), freeze="feature-encoder", text_policy="keep", lr=1e-4)
    adapter = CTCAdapter.from_resolved(resolve_model(model_name), config)
    adapter.apply_freeze("feature-encoder")
    adapter.model.to(args.device).train()
    audios = [load_audio(u.audio_filepath) for u in utts]  # decoded once: time the model, not the disk
    examples = [adapter.make_example(u, u.text, audio=a) for u, a in zip(utts, audios)]
    durations = [[u.duration for u in utts]]
    results = {}
    for grouped in (False, True):
        optimizer = torch.optim.AdamW(adapter.parameter_groups(config))
        plan = epoch_plan([len(utts)], None, epoch=0, seed=0)
        if grouped:
            plan = group_by_duration(plan, durations, args.batch_size, epoch=0, seed=0)
        batches = [plan[i : i + args.batch_size] for i in range(0, len(plan), args.batch_size)][: args.train_steps]
        real, padded, done = 0, 0, 0
        start = time.perf_counter()
        for batch_plan in batches:
            batch = adapter.collate([examples[i] for _, i in batch_plan])
            real += sum(len(examples[i]["input_values"]) for _, i in batch_plan)
            padded += batch["input_values"].numel()
            batch = {k: v.to(args.device) for k, v in batch.items()}
            loss = adapter.loss(adapter.model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += len(batch_plan)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        results["grouped" if grouped else "shuffled"] = {
            "utterances": done, "seconds": round(seconds, 3), "utts_per_s": round(done / seconds, 3),
            "padding_share": round(1 - real / padded, 4),
        }
    results["speedup"] = round(results["grouped"]["utts_per_s"] / results["shuffled"]["utts_per_s"], 3)
    results["model"] = args.model
    results["batch_size"] = args.batch_size
    return results


OVERFIT_OPTIONS = [  # tests/test_ctc_train.py uses the same recipe
    "--freeze", "none", "--lr", "1e-3", "--warmup-steps", "20", "--lr-schedule", "constant", "--weight-decay", "0",
    "--text-policy", "keep", "--no-spec-augment", "--batch-size", "10", "--eval-every", "25", "--no-progress",
]


def bench_overfit(args, tmp: Path) -> dict:
    """Time ``asrtune train`` over-fitting a random wav2vec2 on 20 real utterances; CER after."""
    import jiwer
    from asrtune.cli import main as cli
    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest, write_manifest
    from asrtune.inference.ctc import CTCRecognizer
    from asrtune.models import resolve_model

    utts = sorted(load_manifest(args.data / "speechocean762" / "train.jsonl"), key=lambda u: (u.duration, u.audio_filepath))[:20]
    manifest = tmp / "overfit.jsonl"
    write_manifest(manifest, utts, relative=False)
    save_random_wav2vec2(tmp / "overfit-tiny")
    run = tmp / "overfit-run"
    argv = ["train", "--model", str(tmp / "overfit-tiny"), "--train", str(manifest), "--dev", str(manifest),
            "--out", str(run), "--max-steps", str(args.overfit_steps), "--save-every", str(args.overfit_steps),
            "--threads", str(args.threads), *OVERFIT_OPTIONS]
    with timed() as elapsed:
        code = cli(argv)
    seconds = elapsed.seconds
    if code != 0:
        raise SystemExit(f"over-fit: asrtune train exited {code}")
    recognizer = CTCRecognizer(resolve_model(str(run / "best")))
    refs = [u.text.lower() for u in utts]
    hyps = recognizer.transcribe([load_audio(u.audio_filepath) for u in utts])
    curve = [(r["step"], r["dev_wer"]) for r in map(json.loads, open(run / "metrics.jsonl", encoding="utf-8")) if "dev_wer" in r]
    return {
        "utterances": len(utts), "audio_seconds": round(sum(u.duration for u in utts), 1), "steps": args.overfit_steps,
        "train_command_s": round(seconds, 1), "cer": round(jiwer.cer(refs, hyps), 4), "wer": round(jiwer.wer(refs, hyps), 4),
        "first_step_dev_wer_below_20pct": next((s for s, w in curve if w < 0.2), None), "dev_wer_curve": curve,
        "example": [refs[0], hyps[0]],
    }


def synthetic_emissions(text: str, vocab: dict[str, int], rng: np.random.Generator, p_confuse: float = 0.1) -> np.ndarray:
    letters = [i for t, i in vocab.items() if len(t) == 1 and t != "|"]
    frames = []
    for char in text.replace(" ", "|"):
        confused = rng.choice(letters) if char != "|" and rng.random() < p_confuse else None
        for _ in range(int(rng.integers(2, 4))):
            f = rng.normal(0, 0.8, len(vocab))
            f[vocab[char]] += 4.0
            if confused is not None:
                f[confused] += 5.0
            frames.append(f)
        blank = rng.normal(0, 0.8, len(vocab))
        blank[0] += 4.0
        frames.append(blank)
    x = np.array(frames)
    x -= x.max(1, keepdims=True)
    return (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float32)


def bench_decoding(args, tmp: Path) -> dict:
    from asrtune.evaluation.metrics import error_counts
    from asrtune.inference.ctc import BeamSearchDecoder, greedy_decode
    from asrtune.lm.build import build_lm
    from asrtune.models.ctc_vocab import make_processor

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
    train = [json.loads(line)["text"] for line in open(args.data / "speechocean762" / "train.jsonl", encoding="utf-8")]
    test = [json.loads(line)["text"] for line in open(args.data / "speechocean762" / "test.jsonl", encoding="utf-8")][: args.decode_utts]
    (tmp / "lm.txt").write_text("\n".join(train), encoding="utf-8")
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    build_lm(tmp / "lm.txt", tmp / "lm", order=3, tokens_from=str(tmp / "vocab.json"))
    processor = make_processor(vocab, tmp / "proc")
    rng = np.random.default_rng(0)
    emissions = [synthetic_emissions(t, vocab, rng) for t in test]
    audio_seconds = sum(len(e) for e in emissions) * 0.02  # 20 ms frames

    runs = {"greedy": lambda e: greedy_decode(e, processor.tokenizer)}
    for beam in args.beam_sizes:
        runs[f"beam{beam}"] = BeamSearchDecoder(vocab, beam_size=beam).decode
        runs[f"beam{beam}+lm"] = BeamSearchDecoder(vocab, lm_dir=tmp / "lm", beam_size=beam).decode
    lm_words = {w for t in train for w in t.split()}
    covered = [i for i, t in enumerate(test) if all(w in lm_words for w in t.split())]
    oov = sum(w not in lm_words for t in test for w in t.split()) / sum(len(t.split()) for t in test)
    results: dict = {
        "utterances": len(test), "audio_seconds": round(audio_seconds, 1), "oov_rate": round(oov, 4),
        "covered_utterances": len(covered), "decoders": {},
    }
    for name, decode in runs.items():
        start = time.perf_counter()
        hyps = [decode(e) for e in emissions]
        seconds = time.perf_counter() - start
        results["decoders"][name] = {
            "ms_per_utt": round(1000 * seconds / len(test), 3),
            "rtf": round(seconds / audio_seconds, 5),
            "wer": round(error_counts(test, hyps).wer, 4),
            # sentences whose every word the LM text has (the lexicon cannot produce other words)
            "wer_covered": round(error_counts([test[i] for i in covered], [hyps[i] for i in covered]).wer, 4),
        }
    base = results["decoders"]["greedy"]["ms_per_utt"]
    for entry in results["decoders"].values():
        entry["slowdown_vs_greedy"] = round(entry["ms_per_utt"] / base, 1)
    return results


def main() -> int:
    p = parser(__doc__, out="ctc.json")
    p.add_argument("--model", default="tiny", help="'tiny' (random, built here) or a CTC model name/folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-utts", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=8, help="batches per setting")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--decode-utts", type=int, default=100)
    p.add_argument("--beam-sizes", type=int, nargs="+", default=[10, 50])
    p.add_argument("--overfit-steps", type=int, default=250)
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-overfit", action="store_true")
    args = p.parse_args()
    args.data = data_root(args)
    torch.set_num_threads(args.threads)

    report: dict = {"hardware": describe_hardware(threads=args.threads)}
    with tempfile.TemporaryDirectory(prefix="bench_ctc_") as tmp:
        tmp = Path(tmp)
        if not args.skip_training:
            report["training"] = bench_training(args, tmp)
        if not args.skip_overfit:
            report["overfit"] = bench_overfit(args, tmp)
        report["decoding"] = bench_decoding(args, tmp)

    hw = report["hardware"]
    print(f"hardware: {hw['cpu']} ({hw['cores']} cores, {hw['torch_threads']} torch threads)" + (f", {hw['gpu']}" if "gpu" in hw else ""))
    if "training" in report:
        t = report["training"]
        print(f"\ntraining ({t['model']}, batch {t['batch_size']}, feature encoder frozen)")
        print(f"{'order':<12}{'utts/s':>10}{'padding':>10}")
        for name in ("shuffled", "grouped"):
            print(f"{name:<12}{t[name]['utts_per_s']:>10.2f}{t[name]['padding_share']:>9.1%}")
        print(f"duration grouping speed-up: x{t['speedup']:.2f}")
    if "overfit" in report:
        o = report["overfit"]
        print(f"\nover-fit (asrtune train, random tiny wav2vec2, {o['utterances']} utterances / {o['audio_seconds']} s of audio)")
        print(f"{'steps':>6}{'train s':>10}{'CER':>8}{'WER':>8}{'dev WER<20% at step':>22}")
        print(f"{o['steps']:>6}{o['train_command_s']:>10.1f}{o['cer']:>8.1%}{o['wer']:>8.1%}{str(o['first_step_dev_wer_below_20pct']):>22}")
        print(f"  e.g. {o['example'][0]!r} -> {o['example'][1]!r}")
    d = report["decoding"]
    print(f"\ndecoding {d['utterances']} utterances ({d['audio_seconds']} s of frames; LM OOV rate {d['oov_rate']:.1%}, "
          f"{d['covered_utterances']} fully covered)")
    print(f"{'decoder':<14}{'ms/utt':>10}{'RTF':>10}{'x greedy':>10}{'WER':>8}{'WER cov.':>10}")
    for name, e in d["decoders"].items():
        print(f"{name:<14}{e['ms_per_utt']:>10.2f}{e['rtf']:>10.4f}{e['slowdown_vs_greedy']:>10.1f}{e['wer']:>8.1%}{e['wer_covered']:>10.1%}")
    write_result(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
