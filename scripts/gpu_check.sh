#!/usr/bin/env bash
# GPU readiness check on one CUDA device: a STEPS-step (default 200) fine-tune of whisper-base in
# bf16 and in fp16, with the encoder-output cache split below --train-encoder-top 2 and the
# forgetting guard, then `asrtune eval` (speechocean762 test) and `asrtune transcribe` with best/.
# Prints utts/s, peak GPU memory and WER for each precision, then the server's throughput at 1, 4 and
# 16 concurrent clients on the GPU (python -m benchmarks.bench_serve --device cuda). Exits 2 without a CUDA device.
#   scripts/gpu_check.sh [DATA_DIR=../shared/data] [STEPS=200]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
STEPS=${2:-200}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SO="$DATA/speechocean762"

python -c "import torch" 2>/dev/null || { echo "gpu_check: torch is not importable (activate the asrtune environment)" >&2; exit 2; }
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "gpu_check: no CUDA device (torch.cuda.is_available() is false); run this on a GPU machine" >&2; exit 2; }
[ -f "$SO/train.jsonl" ] || { echo "gpu_check: $SO/train.jsonl not found; give the shared data folder as the first argument" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d)}
CLIP="$SO/$(head -1 "$SO/test.jsonl" | python -c 'import json, sys; print(json.load(sys.stdin)["audio_filepath"])')"

for PREC in bf16 fp16; do
  RUN="$OUT/base-$PREC"
  python - "$SO" "$DATA" "$RUN" "$PREC" "$STEPS" "$OUT/cache" <<'PY'
import json, sys, torch
from asrtune.training import TrainConfig, train
so, data, run, prec, steps, cache = sys.argv[1:]
cfg = TrainConfig(model="openai/whisper-base", train=[f"{so}/train.jsonl", f"{so}/train-extra.jsonl"], dev=f"{so}/dev.jsonl",
                  guard_dev=f"{data}/librivox-cmu-11/manifest.jsonl", train_encoder_top=2, precision=prec, device="cuda",
                  max_steps=int(steps), batch_size=32, lr=2e-5, warmup_steps=20, eval_every=100, save_every=100,
                  freeze_token_embeddings=True, cache_dir=cache, out=run, force=True, progress=False)
result = train(cfg)
lines = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if l.strip()]
epochs = [m for m in lines if m.get("event") == "epoch"]
rate = sum(m["utts"] for m in epochs) / max(1e-9, sum(m["train_s"] for m in epochs))
print(f"[{prec}] {result.steps} steps, {rate:.1f} utts/s (steps incl. first-use encoding), peak GPU memory "
      f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; dev WER {100 * result.best_dev_wer:.2f} % at step "
      f"{result.best_step}; guard WER {result.guard_base_wer} -> {result.best_guard_wer}")
PY
  python -m asrtune eval --model "$RUN/best" --manifest "$SO/test.jsonl" --device cuda --out "$RUN/eval" --quiet
  python -c "import json, sys; r = json.load(open(sys.argv[1])); print('[$PREC] test report:', json.dumps(r.get('summary', r))[:300])" "$RUN/eval/report.json"
  python -m asrtune transcribe --model "$RUN/best" --device cuda --no-progress --out "$RUN/transcripts" "$CLIP"
  head -c 300 "$RUN"/transcripts/*; echo
done
python -m benchmarks.bench_serve --device cuda --data "$DATA" --out "$OUT/serve.json"
