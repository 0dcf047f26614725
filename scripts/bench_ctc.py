#!/usr/bin/env python
"""Benchmark CTC training throughput (duration grouping on/off) and decoding speed (greedy vs beam).

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

    python scripts/bench_ctc.py                       # tiny random wav2vec2, CPU
    python scripts/bench_ctc.py --model facebook/wav2vec2-base-960h --device cuda --train-utts 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from asrtune.hardware import describe_hardware  # noqa: E402
DATA = Path(os.environ.get("ASRTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))

TINY_W2V2 = dict(  # same as tests/ctc_helpers.py: ~2 M parameters, trains on a CPU
    hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
    conv_dim=(32, 64, 64, 64), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16, layerdrop=0.0, mask_time_prob=0.0,
    feat_extract_norm="layer", do_stable_layer_norm=True,
)


def bench_training(args, tmp: Path) -> dict:
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest, write_manifest
    from asrtune.models import resolve_model
    from asrtune.training.adapters.ctc import CTCAdapter
    from asrtune.training.config import TrainConfig
    from asrtune.training.sampling import epoch_plan, group_by_duration

    utts = [u for u in load_manifest(DATA / "speechocean762" / "train.jsonl") if u.duration <= args.max_seconds]
    utts = utts[: args.train_utts]
    manifest = tmp / "train.jsonl"
    write_manifest(manifest, utts, relative=False)
    model_name = args.model
    if model_name == "tiny":
        torch.manual_seed(0)
        Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32, **TINY_W2V2)).save_pretrained(tmp / "tiny")
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
    train = [json.loads(line)["text"] for line in open(DATA / "speechocean762" / "train.jsonl", encoding="utf-8")]
    test = [json.loads(line)["text"] for line in open(DATA / "speechocean762" / "test.jsonl", encoding="utf-8")][: args.decode_utts]
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (random, built here) or a CTC model name/folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-utts", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=8, help="batches per setting")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--decode-utts", type=int, default=100)
    parser.add_argument("--beam-sizes", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench_results" / "ctc.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    report: dict = {"hardware": describe_hardware()}
    with tempfile.TemporaryDirectory(prefix="bench_ctc_") as tmp:
        tmp = Path(tmp)
        if not args.skip_training:
            report["training"] = bench_training(args, tmp)
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
    d = report["decoding"]
    print(f"\ndecoding {d['utterances']} utterances ({d['audio_seconds']} s of frames; LM OOV rate {d['oov_rate']:.1%}, "
          f"{d['covered_utterances']} fully covered)")
    print(f"{'decoder':<14}{'ms/utt':>10}{'RTF':>10}{'x greedy':>10}{'WER':>8}{'WER cov.':>10}")
    for name, e in d["decoders"].items():
        print(f"{name:<14}{e['ms_per_utt']:>10.2f}{e['rtf']:>10.4f}{e['slowdown_vs_greedy']:>10.1f}{e['wer']:>8.1%}{e['wer_covered']:>10.1%}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
