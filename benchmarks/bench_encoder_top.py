#!/usr/bin/env python
"""Micro-benchmark of one ``--train-encoder-top K`` training step on cached hidden states.

Times forward + backward of the top K encoder layers and the decoder (batch of real-length
targets) for: attention implementation eager vs sdpa, and all 1500 encoder frames vs only the
clip's frames + a margin (truncation). Prints seconds per step and writes them to ``--out``
(default ``benchmarks/results/encoder_top.json``). Random hidden states and token ids: no data.

    python -m benchmarks.bench_encoder_top --model openai/whisper-tiny.en --top 2 --batch 16 --reps 3
"""

from __future__ import annotations

from benchmarks.harness import describe_hardware, parser, timed, write_result

FRAMES_PER_SECOND = 50  # Whisper encoder frames per second of audio (20 ms each)


def step_seconds(model, top: int, hidden, ids, reps: int) -> float:
    import torch

    encoder = model.model.encoder
    times = []
    for _ in range(reps + 1):  # the first rep warms up
        with timed() as elapsed:
            h = hidden
            for layer in encoder.layers[len(encoder.layers) - top :]:
                h = layer(h, None)
            h = encoder.layer_norm(h)
            logits = model(encoder_outputs=(h,), decoder_input_ids=ids, use_cache=False).logits
            torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1)).backward()
            model.zero_grad(set_to_none=True)
        times.append(elapsed.seconds)
    return sum(times[1:]) / reps


def main() -> None:
    import torch

    from asrtune.models import load_whisper, resolve_model

    p = parser(__doc__, out="encoder_top.json", data=False)
    p.add_argument("--model", default="openai/whisper-tiny.en")
    p.add_argument("--top", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--clip-seconds", type=float, default=4.0, help="speechocean762 clips are ~4 s")
    p.add_argument("--margin-frames", type=int, default=50)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    short = int(args.clip_seconds * FRAMES_PER_SECOND) + args.margin_frames
    rows = []
    for impl in ("eager", "sdpa"):
        model, _ = load_whisper(resolve_model(args.model))
        model.config._attn_implementation = impl
        model.train()
        d = model.config.d_model
        ids = torch.randint(0, 1000, (args.batch, args.tokens))
        for frames in (model.config.max_source_positions, short):
            hidden = torch.randn(args.batch, frames, d)
            s = step_seconds(model, args.top, hidden, ids, args.reps)
            print(f"{impl:<6} frames {frames:>5}: {s:6.2f} s/step  {args.batch / s:6.2f} utts/s", flush=True)
            rows.append({"attention": impl, "frames": frames, "seconds_per_step": round(s, 3), "utts_per_s": round(args.batch / s, 2)})
    settings = {k: getattr(args, k) for k in ("model", "top", "batch", "clip_seconds", "margin_frames", "tokens", "reps")}
    write_result(args.out, {**settings, "hardware": describe_hardware(threads=args.threads), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
