"""The training loop on real audio: loss falls, checkpoints reload, resume continues exactly,
the encoder cache is hit, bad configs fail clearly, divergence is caught.

The runs use a tiny randomly initialised Whisper (d_model 64, 2+2 layers) that carries the
real tiny.en tokenizer and feature extractor; runs that train for more than a few seconds (and
the real tiny.en runs) are marked slow, so the fast suite keeps no test over 5 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.errors import ConfigError
from asrtune.training import TrainConfig, train
from asrtune.training.trainer import TrainingDiverged

from conftest import REPO_ROOT, require_whisper_package

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A random 2+2-layer Whisper folder with the real tiny.en processor and generation config."""
    require_whisper_package()
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    from asrtune.models import load_whisper, resolve_model

    real = resolve_model("openai/whisper-tiny.en")
    real_model, processor = load_whisper(real)
    rc = real_model.config
    cfg = WhisperConfig(
        vocab_size=rc.vocab_size, num_mel_bins=rc.num_mel_bins, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=rc.max_source_positions, max_target_positions=32,  # dev decoding of a random model stops at 32 tokens
        decoder_start_token_id=rc.decoder_start_token_id, eos_token_id=rc.eos_token_id, pad_token_id=rc.pad_token_id,
        bos_token_id=rc.bos_token_id,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    gen = GenerationConfig.from_dict(real_model.generation_config.to_dict())
    model.generation_config = gen
    out = tmp_path_factory.mktemp("tiny_whisper")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    gen.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def so16(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """speechocean762 train first 16 utterances (train) and dev first 4 (dev), absolute paths."""
    d = tmp_path_factory.mktemp("so16")
    train_m, dev_m = d / "train.jsonl", d / "dev.jsonl"
    write_manifest(train_m, load_manifest(shared_data / "speechocean762" / "train.jsonl")[:16], relative=False)
    write_manifest(dev_m, load_manifest(shared_data / "speechocean762" / "dev.jsonl")[:4], relative=False)
    return train_m, dev_m


def config(model, so16, out, **kw) -> TrainConfig:
    values = dict(
        model=str(model), train=[str(so16[0])], out=str(out), batch_size=8, lr=1e-3, warmup_steps=0,
        log_every=1, eval_every=1000, save_every=2, progress=False, cache_dir=str(Path(out).parent / "enc_cache"), threads=2,
        no_speech_fraction=0.0,  # the counts below are of manifest utterances (generated clips: tests/test_targets.py)
    )
    values.update(kw)
    return TrainConfig(**values)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def trainable(run: Path) -> dict[str, torch.Tensor]:
    """The trainable weights of the run's checkpoint."""
    return torch.load(run / "checkpoint" / "state.pt", weights_only=False)["trainable"]


# --- fast: tiny random Whisper, real audio ----------------------------------------------------------


@pytest.mark.slow
def test_loss_falls_and_outputs_reload(tiny_whisper, so16, tmp_path):
    from asrtune.models import load_whisper, resolve_model

    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=8, lr=5e-3, dev=str(so16[1]), eval_every=4))
    losses = [m["loss"] for m in metrics(run) if "loss" in m and "event" not in m]
    assert result.steps == 8 and len(losses) == 8
    assert losses[-1] < losses[0] - 1.0, losses  # nats: from ~ln(vocab) towards the unigram entropy
    assert result.best_dev_wer is not None and result.best_step in (4, 8)
    for name in ("config.yaml", "metrics.jsonl", "learning_curve.png", "result.json", "train.log"):
        assert (run / name).is_file(), name
    # final/ is a complete model folder: the registry resolves it and its decoder weights are the trained ones
    model, processor = load_whisper(resolve_model(str(run / "final")))
    assert processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 50362
    state = trainable(run)
    name = "model.decoder.layers.0.fc1.weight"
    assert torch.equal(model.state_dict()[name], state[name])
    base, _ = load_whisper(resolve_model(str(tiny_whisper)))
    assert not torch.equal(base.state_dict()[name], state[name])
    assert torch.equal(base.state_dict()["model.encoder.layers.0.fc1.weight"], model.state_dict()["model.encoder.layers.0.fc1.weight"])
    # the run dir itself resolves to best/
    assert resolve_model(str(run)).family == "whisper"


@pytest.mark.slow
def test_encoder_cache_used_from_second_epoch_and_across_runs(tiny_whisper, so16, tmp_path, monkeypatch):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    calls = {"n": 0, "utts": 0}
    original = WhisperEncoder.forward

    def counting(self, input_features=None, *a, **k):
        calls["n"] += 1
        calls["utts"] += input_features.shape[0]
        return original(self, input_features, *a, **k)

    monkeypatch.setattr(WhisperEncoder, "forward", counting)
    run = tmp_path / "a"
    cfg = config(tiny_whisper, so16, run, epochs=3, dev=str(so16[1]), eval_every=2, num_workers=2)  # cache built on 2 threads
    result = train(cfg)
    # 16 train + 4 dev utterances encoded exactly once; 3 epochs of training + dev decoding reuse them
    assert result.steps == 6
    assert calls["utts"] == 20, calls
    assert result.cache["used"] and result.cache["encoded"] == 20 and result.cache["build_s"] > 0
    evals = [m for m in metrics(run) if "dev_wer" in m and "event" not in m]
    assert [e["step"] for e in evals] == [2, 4, 6] and evals[0]["wall_time"] <= evals[-1]["wall_time"] <= time.time()
    calls.update(n=0, utts=0)
    again = train(config(tiny_whisper, so16, tmp_path / "b", epochs=1, dev=str(so16[1]), eval_every=2))
    assert calls["n"] == 0 and again.cache["hits"] == 20
    # augmentation turns the cache off and the encoder runs every step
    calls.update(n=0, utts=0)
    aug = train(config(tiny_whisper, so16, tmp_path / "c", max_steps=2, spec_augment=True))
    assert not aug.cache["used"] and calls["utts"] == 16


@pytest.mark.slow
def test_resume_continues_exactly(tiny_whisper, so16, tmp_path):
    common = dict(lr_schedule="constant", save_every=1)
    straight = tmp_path / "straight"
    train(config(tiny_whisper, so16, straight, max_steps=5, **common))
    split = tmp_path / "split"
    first = train(config(tiny_whisper, so16, split, max_steps=3, **common))
    assert first.steps == 3
    second = train(config(tiny_whisper, so16, split, max_steps=5, resume=str(split), **common))
    assert second.steps == 5
    a, b = trainable(straight), trainable(split)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    steps = [m["step"] for m in metrics(split) if "loss" in m and "event" not in m]
    assert steps == [1, 2, 3, 4, 5]


@pytest.mark.kernels
@pytest.mark.slow
def test_data_loading_threads_give_the_same_run(tiny_whisper, so16, tmp_path):
    """--num-workers decodes and augments audio on threads; the batches, and so the weights, do not change."""
    common = dict(max_steps=2, speed_perturb=True, noise_snr_db=20.0, lr_schedule="constant")
    train(config(tiny_whisper, so16, tmp_path / "main", num_workers=0, **common))
    train(config(tiny_whisper, so16, tmp_path / "threads", num_workers=2, **common))
    a, b = trainable(tmp_path / "main"), trainable(tmp_path / "threads")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="--num-workers"):
        config(tiny_whisper, so16, tmp_path / "bad", num_workers=-1).validate()


def test_resume_refuses_changed_config(tiny_whisper, so16, tmp_path):
    run = tmp_path / "run"
    train(config(tiny_whisper, so16, run, max_steps=2))
    with pytest.raises(ConfigError, match=r"lr: 0\.001 -> 0\.01.*--force"):
        train(config(tiny_whisper, so16, run, max_steps=3, lr=1e-2, resume=str(run)))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config(tiny_whisper, so16, run, max_steps=3))
    assert train(config(tiny_whisper, so16, run, max_steps=3, lr=1e-2, resume=str(run), force=True)).steps == 3
    # --force without --resume starts over: one run's metrics, not two runs' appended
    train(config(tiny_whisper, so16, run, max_steps=1, force=True))
    assert [m["step"] for m in metrics(run) if "loss" in m and "event" not in m] == [1]


def test_a_near_zero_loss_that_wobbles_is_not_divergence():
    from asrtune.training.trainer import loss_exploded

    assert loss_exploded(3.0, 0.6, 4.0)  # a real explosion
    assert not loss_exploded(0.006, 0.0015, 4.0)  # 4x a memorised domain's best, but thousandths of a nat
    assert not loss_exploded(2.0, 0.6, 4.0)  # a real rise, but under 4x


@pytest.mark.slow
def test_divergence_stops_and_keeps_checkpoint(tiny_whisper, so16, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="learning rate .* too high"):
        train(config(tiny_whisper, so16, run, max_steps=60, lr=50.0, max_grad_norm=1e6, save_every=1, divergence_factor=1.5))
    assert (run / "checkpoint" / "state.pt").is_file()
    assert any(m.get("event") == "diverged" for m in metrics(run))


@pytest.mark.slow
def test_replay_weights_and_lora(tiny_whisper, so16, tmp_path, shared_data):
    general = tmp_path / "general.jsonl"
    write_manifest(general, load_manifest(next((shared_data / "ljspeech-32").glob("*.jsonl")))[:8], relative=False)
    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, train=[str(so16[0]), str(general)], weights=[0.8, 0.2], epochs=1, adapter="lora", lora_r=4))
    assert result.steps == 3  # one epoch = 16 domain / 0.8 = 20 utterances, batch 8
    assert 0 < result.trainable_parameters < 0.1 * result.total_parameters
    from safetensors.torch import load_file

    merged = load_file(run / "final" / "model.safetensors")
    assert not any("lora" in k for k in merged)


def test_cli_errors(tmp_path, so16):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\nlearning_rate: 0.1\n")
    cmd = [sys.executable, "-m", "asrtune", "train", "--config", str(bad), "--train", str(so16[0]), "--out", str(tmp_path / "o")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert p.returncode == 2 and "unknown option 'learning_rate'" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "asrtune", "train", "--model", "m", "--train", str(so16[0]), "--weights", "0.5,0.5", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT,
    )
    assert p.returncode == 2 and "--weights has 2 value(s)" in p.stderr


# --- slow: real tiny.en, kill -9, two processes ---------------------------------------------------


@pytest.mark.slow
def test_real_tiny_en_few_steps(so16, tmp_path):
    require_whisper_package()
    run = tmp_path / "run"
    result = train(config("openai/whisper-tiny.en", so16, run, max_steps=4, lr=1e-4, freeze_token_embeddings=True))
    losses = [m["loss"] for m in metrics(run) if "loss" in m and "event" not in m]
    assert result.steps == 4 and losses[-1] < losses[0]


KILL_AT_STEP = 5


@pytest.mark.slow
def test_resume_after_sigkill(tiny_whisper, so16, tmp_path):
    """A run killed -9 right after step 5 (from a step hook, not a timer) resumes to the end."""
    run = tmp_path / "run"
    cfg = config(tiny_whisper, so16, run, max_steps=12, save_every=1, lr_schedule="constant")
    code = (
        "import os, signal\nfrom asrtune.training import TrainConfig, train\n"
        f"def hook(t):\n    if t.state.step == {KILL_AT_STEP}: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"train(TrainConfig(**{cfg.to_dict()!r}), on_step=hook)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(run / "checkpoint" / "state.pt", weights_only=False)["state"]["step"] == KILL_AT_STEP
    result = train(config(tiny_whisper, so16, run, max_steps=12, save_every=1, lr_schedule="constant", resume=str(run)))
    assert result.steps == 12
    steps = [m["step"] for m in metrics(run) if "loss" in m and "event" not in m]
    assert steps == list(range(1, 13))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_data_parallel(tiny_whisper, so16, tmp_path):
    """Two gloo ranks train on their halves of each batch and end with identical weights."""
    run = tmp_path / "ddp"
    cfg = config(tiny_whisper, so16, run, max_steps=2, batch_size=4)
    script = tmp_path / "ddp.py"
    script.write_text(
        "import torch\nfrom asrtune.training import TrainConfig\nfrom asrtune.training.trainer import Trainer\n"
        f"t = Trainer(TrainConfig(**{cfg.to_dict()!r}))\nt.run()\n"
        f"torch.save(t.adapter.trainable_state_dict(), {str(tmp_path)!r} + f'/rank{{t.rank}}.pt')\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", str(script)],
        cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    start = next(m for m in metrics(run) if m.get("event") == "start")
    assert start["world_size"] == 2 and (run / "final" / "model.safetensors").is_file()
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
