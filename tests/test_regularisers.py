"""Forgetting remedies: ``--l2-sp``, ``--distill-base``, ``--replay-text`` and ``--recipe keep-general``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asrtune.errors import ConfigError
from asrtune.training import TrainConfig, train
from asrtune.training.adapters.base import IGNORE_INDEX
from asrtune.training.config import RECIPES
from asrtune.training.regularisers import distillation_loss

from test_train import config, so16, tiny_whisper, trainable  # noqa: F401  (fixtures)


def test_distillation_loss_is_a_per_token_kl_over_targets_only():
    torch.manual_seed(0)
    logits, base = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 2, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX, 4]])
    assert float(distillation_loss(base, base, labels, 2.0)) == pytest.approx(0.0, abs=1e-6)
    loss = distillation_loss(logits, base, labels, 1.0)
    targets = labels != IGNORE_INDEX
    p, q = logits[targets].softmax(-1), base[targets].softmax(-1)
    expected = (q * (q.log() - p.log())).sum(-1).mean()  # KL(base || model), mean over the 3 target tokens
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    changed = logits.clone()
    changed[0, 2] += 100.0  # a padded position: no effect
    assert float(distillation_loss(changed, base, labels, 1.0)) == pytest.approx(float(loss), rel=1e-6)
    assert float(distillation_loss(logits, base, torch.full_like(labels, IGNORE_INDEX), 1.0)) == 0.0


def _drift(run, base_run) -> float:
    """Squared distance of the run's trained weights from the base (weights of step 0, as saved)."""
    tuned, base = trainable(run), trainable(base_run)
    return sum(float(((tuned[k].float() - base[k].float()) ** 2).sum()) for k in tuned)


@pytest.mark.slow  # four short training runs
def test_l2_sp_and_distillation_keep_the_weights_near_the_base(tiny_whisper, so16, tmp_path):
    base = tmp_path / "step0"
    train(config(tiny_whisper, so16, base, max_steps=1, lr=1e-12))  # ~ the base weights, saved as a checkpoint
    runs = {}
    for name, extra in {"plain": {}, "l2sp": {"l2_sp": 900.0}, "distill": {"distill_base": 20.0}}.items():
        runs[name] = tmp_path / name
        result = train(config(tiny_whisper, so16, runs[name], max_steps=2, save_every=2, **extra))
        recorded = json.loads((runs[name] / "result.json").read_text())["regularisers"]
        assert recorded == ({} if name == "plain" else result.regularisers) and result.regularisers.keys() >= extra.keys()
    assert "distill_temperature" in result.regularisers  # recorded beside the weight it qualifies
    drift = {name: _drift(run, base) for name, run in runs.items()}
    assert drift["l2sp"] < 0.5 * drift["plain"], drift  # lr x 900 = 0.9 of each step's move is pulled back
    assert drift["distill"] < drift["plain"], drift
    log = (runs["distill"] / "train.log").read_text()
    assert "distillation from the base model, weight 20 at temperature 2" in log


@pytest.mark.slow  # synthesis and a short training run
def test_replay_text_is_spoken_once_and_mixed_in(tiny_whisper, so16, tmp_path):
    text = tmp_path / "general.txt"
    text.write_text("# general English\nThe weather was fine all week.\nShe read the letter twice.\n"
                    "Trains leave every hour.\n")
    cache = tmp_path / "enc_cache"
    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=2, replay_text=str(text), replay_share=0.5))
    assert result.regularisers == {"replay_text": str(text), "replay_share": 0.5}
    manifests = list((cache / "replay").glob("*/manifest.jsonl"))
    assert len(manifests) == 1 and len(manifests[0].read_text().splitlines()) == 3  # one rendering a sentence
    assert "replay: 3 eSpeak renderings" in (run / "train.log").read_text()
    first = manifests[0].stat().st_mtime_ns
    train(config(tiny_whisper, so16, tmp_path / "again", max_steps=1, replay_text=str(text), replay_share=0.5))
    assert manifests[0].stat().st_mtime_ns == first  # synthesised once, reused


def test_recipe_fills_in_what_you_did_not_set():
    cfg = TrainConfig(model="m", train=["t.jsonl"], out="r", recipe="keep-general").validate()
    for name, value in RECIPES["keep-general"].items():
        assert getattr(cfg, name) == value
    mine = TrainConfig(model="m", train=["t.jsonl"], out="r", recipe="keep-general", distill_base=0.3).validate()
    assert mine.distill_base == 0.3
    with pytest.raises(ConfigError, match="--recipe"):
        TrainConfig(model="m", train=["t.jsonl"], out="r", recipe="forget-everything").validate()


@pytest.mark.parametrize(("values", "message"), [
    ({"l2_sp": -1.0}, "--l2-sp must be >= 0"),
    ({"distill_base": -0.5}, "--distill-base must be >= 0"),
    ({"distill_base": float("nan")}, "--distill-base must be >= 0"),
    ({"distill_temperature": 0.0}, "--distill-temperature must be > 0"),
    ({"l2_sp": 1e6, "lr": 1e-5}, "pull the weights past"),
    ({"replay_share": 1.0}, "--replay-share must lie strictly between 0 and 1"),
    ({"replay_text": "missing.txt"}, "--replay-text missing.txt: file not found"),
])
def test_bad_values_name_the_option(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(model="m", train=["t.jsonl"], out="r", **values).validate()


def test_shipped_general_english_is_named_and_packaged():
    import tomllib

    from asrtune.synth.text import read_sentence_file
    from asrtune.training.replay import SHIPPED_FILE, replay_text_file

    cfg = TrainConfig(model="m", train=["t.jsonl"], out="r", replay_text="general-english").validate()
    assert replay_text_file(cfg.replay_text) == SHIPPED_FILE
    assert len(read_sentence_file(SHIPPED_FILE).sentences) >= 150
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert SHIPPED_FILE.name in pyproject["tool"]["setuptools"]["package-data"]["asrtune.training"]  # in the wheel


def test_replay_file_without_text_is_refused(tmp_path):
    empty = tmp_path / "general.txt"
    empty.write_text("\n   \n# only a comment\n...\n")
    with pytest.raises(ConfigError, match=r"--replay-text: .*general.txt.*no speakable word"):
        TrainConfig(model="m", train=["t.jsonl"], out="r", replay_text=str(empty)).validate()


def test_ctc_model_refuses_whisper_only_remedies(tmp_path):
    from asrtune.training.adapters.ctc import CTCAdapter

    for values in ({"distill_base": 1.0}, {"recipe": "keep-general"}):
        cfg = TrainConfig(model="m", train=["t.jsonl"], out="r", **values).validate()
        with pytest.raises(ConfigError, match="does not apply to CTC models"):
            CTCAdapter.check_config(cfg)
    CTCAdapter.check_config(TrainConfig(model="m", train=["t.jsonl"], out="r", l2_sp=10.0).validate())  # both families
