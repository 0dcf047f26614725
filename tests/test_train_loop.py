"""The loop's pieces on a tiny random Whisper and real audio: TrainState, accumulation, stop
conditions, gradual unfreezing across a resume, option checks before anything is written."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from asrtune.errors import ConfigError
from asrtune.training import TrainConfig, train
from asrtune.training.adapters.ctc import CTCAdapter
from asrtune.training.state import TrainState

from test_train import config, so16, tiny_whisper, trainable  # noqa: F401  (fixtures)

TOP_LAYER = "model.encoder.layers.1.fc1.weight"  # the tiny model's top encoder layer


def test_train_state_round_trips_with_rng():
    state = TrainState(step=7, epoch=1, position=16, best_wer=0.31, best_step=4, evals_since_best=1,
                       elapsed_s=12.5, loss_ema=2.0, min_loss_ema=1.5, unfrozen=True)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state.capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    again = TrainState.from_dict(state.to_dict())
    again.restore_rng()
    assert again.step == 7 and again.unfrozen and again.best_wer == 0.31
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.kernels
@pytest.mark.slow
def test_gradient_accumulation_2x8_equals_batch_16(tiny_whisper, so16, tmp_path):
    common = dict(max_steps=2, lr_schedule="constant", precision="fp32", cache="off")
    train(config(tiny_whisper, so16, tmp_path / "big", batch_size=16, **common))
    train(config(tiny_whisper, so16, tmp_path / "acc", batch_size=8, grad_accum=2, **common))
    a, b = trainable(tmp_path / "big"), trainable(tmp_path / "acc")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_patience_stops_early(tiny_whisper, so16):
    out = so16[0].parent / "patience"
    # a learning rate too small to change a greedy hypothesis: the second evaluation cannot improve
    result = train(config(tiny_whisper, so16, out, max_steps=10, lr=1e-12, dev=str(so16[1]), eval_every=1, patience=1))
    assert result.stopped == "early-stopping" and result.steps == 2 and result.best_step == 1


def test_time_limit_stops(tiny_whisper, so16, tmp_path):
    result = train(config(tiny_whisper, so16, tmp_path / "run", max_steps=50, max_train_minutes=1e-6))
    assert result.stopped == "time-limit" and result.steps == 1
    assert "time limit" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
def test_unfreeze_after_survives_a_resume(tiny_whisper, so16, tmp_path):
    run = tmp_path / "run"
    common = dict(unfreeze_after=2, unfreeze_top_layers=1, lr_schedule="constant", save_every=1)
    train(config(tiny_whisper, so16, run, max_steps=3, **common))
    at_3 = torch.load(run / "checkpoint" / "state.pt", weights_only=False)
    assert at_3["state"]["unfrozen"] and TOP_LAYER in at_3["trainable"]
    result = train(config(tiny_whisper, so16, run, max_steps=4, resume=str(run), **common))
    at_4 = trainable(run)
    assert result.steps == 4
    assert not torch.equal(at_3["trainable"][TOP_LAYER], at_4[TOP_LAYER])  # still training after the resume
    assert "unfroze" not in (run / "train.log").read_text().split("resumed from step 3")[1]  # restored, not redone


def test_unfreeze_top_layers_alone_unfreezes_from_step_0(tiny_whisper, so16, tmp_path):
    from asrtune.models import load_whisper, resolve_model

    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=1, unfreeze_top_layers=1))
    assert not result.cache["used"] and result.cache["reason"] == "unfrozen from step 0"
    base, _ = load_whisper(resolve_model(str(tiny_whisper)))
    assert not torch.equal(base.state_dict()[TOP_LAYER], trainable(run)[TOP_LAYER])
    log = (run / "train.log").read_text()
    assert "from step 0" in log and "unfroze" not in log
    # the announced count is what trains: the decoder (freeze=encoder) and the top encoder layer
    opened = sum(p.numel() for n, p in base.named_parameters()
                 if n.startswith(("model.encoder.layers.1.", "model.encoder.layer_norm.")))  # the top layer and the final norm
    decoder = sum(p.numel() for n, p in base.named_parameters() if not n.startswith("model.encoder."))
    assert f"freeze=encoder + top 1 encoder layers (lr 0.0001) from step 0: {decoder + opened:,} of " in log
    assert result.trainable_parameters == decoder + opened
    # no dev set: the last line says what was saved, not "best dev WER n/a at step None"
    assert log.rstrip().endswith("best/ and final/ hold the same weights, those after step 1: without a --dev set no "
                                 "checkpoint is scored or chosen")
    assert result.best_step == 1 and "step None" not in log


@pytest.mark.parametrize("option, value", [("char_map", "a=b"), ("extend_vocab", True), ("mask_time_prob", 0.2),
                                           ("language", "de")])
def test_wrong_options_fail_before_anything_is_written(tiny_whisper, so16, tmp_path, option, value):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"--{option.replace('_', '-')}"):
        train(config(tiny_whisper, so16, run, max_steps=1, **{option: value}))
    assert not run.exists()  # the corrected command does not meet "already holds a run"


@pytest.mark.parametrize("option, value", [("language", "en"), ("task", "translate"), ("freeze_token_embeddings", True),
                                           ("adapter", "lora")])
def test_ctc_refuses_whisper_options(option, value):
    with pytest.raises(ConfigError, match=f"--{option.replace('_', '-')}"):
        CTCAdapter.check_config(TrainConfig(**{option: value}))
