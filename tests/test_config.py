"""TrainConfig: YAML/CLI names, type coercion, and clear errors for impossible options."""

from __future__ import annotations

import argparse

import pytest

from asrtune.errors import ConfigError
from asrtune.training.config import TrainConfig, config_differences, load_yaml_config, save_yaml_config


def base(**kw) -> TrainConfig:
    return TrainConfig(model="m", train=["a.jsonl"], out="r", **kw)


def test_yaml_names_match_cli_names(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: m\ntrain: [a.jsonl, b.jsonl]\nweights: 9,1\nout: r\nmax-steps: 20\nspec_augment: yes\n")
    cfg = TrainConfig.from_dict(load_yaml_config(f)).validate()
    assert cfg.max_steps == 20 and cfg.spec_augment is True and cfg.weights == [0.9, 0.1] and cfg.augmenting


def test_effective_config_round_trips(tmp_path):
    cfg = base(lr=3e-5, eval_sets=["x.jsonl"]).validate()
    save_yaml_config(cfg, tmp_path / "config.yaml")
    again = TrainConfig.from_dict(load_yaml_config(tmp_path / "config.yaml")).validate()
    assert again == cfg and config_differences(cfg.to_dict(), again) == []


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_stepz": 3}, "unknown option 'max_stepz' (did you mean 'max-steps'?)"),
        ({"max_steps": "many"}, "'max-steps' expects a whole number"),
        ({"lr": [1, 2]}, "'lr' expects a number"),
        ({"gradient_checkpointing": "maybe"}, "'gradient-checkpointing' expects true/false"),
    ],
)
def test_bad_values_name_the_option(values, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(values)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"freeze": "decoder"}, "--freeze must be one of auto, encoder, feature-encoder, none"),
        ({"weights": [1.0, 2.0]}, "--weights has 2 value(s) but --train names 1"),
        ({"max_steps": 5, "epochs": 2.0}, "either --max-steps or --epochs"),
        ({"lr": -1.0}, "--lr must be a positive number"),
        ({"batch_size": 0}, "--batch-size must be a positive number"),
        ({"unfreeze_after": 100}, "--unfreeze-after needs --unfreeze-top-layers"),
        ({"unfreeze_top_layers": 2, "freeze": "none"}, "only makes sense with --freeze encoder"),
        ({"patience": 3}, "--patience (early stopping) needs a --dev"),
        ({"text_policy": "upper"}, "--text-policy must be one of"),
        ({"device": "tpu"}, "--device must be auto, cpu or cuda"),
    ],
)
def test_impossible_options(kw, message):
    with pytest.raises(ConfigError) as e:
        base(**kw).validate()
    assert message in str(e.value)


def test_missing_required():
    with pytest.raises(ConfigError, match="--model is required"):
        TrainConfig(train=["a"], out="r").validate()


def test_resume_may_change_length_but_not_lr():
    old = base(max_steps=10).validate().to_dict()
    assert config_differences(old, base(max_steps=20).validate()) == []
    assert config_differences(old, base(max_steps=10, lr=1e-3).validate()) == ["lr: 1e-05 -> 0.001"]


def test_cli_overrides_yaml(tmp_path):
    from asrtune.cli.train_cmd import config_from_args, register

    f = tmp_path / "c.yaml"
    f.write_text("model: m\ntrain: a.jsonl\nout: r\nlr: 0.001\nbatch_size: 4\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), "train")
    args = parser.parse_args(["train", "--config", str(f), "--lr", "2e-5", "--no-progress"])
    cfg = config_from_args(args).validate()
    assert cfg.lr == 2e-5 and cfg.batch_size == 4 and cfg.progress is False and cfg.train == ["a.jsonl"]


def test_missing_manifest_fails_before_loading_anything(tmp_path, capsys):
    from asrtune.cli import main

    out = tmp_path / "run"
    code = main(["train", "--model", "no/such-model", "--train", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    assert code == 2
    assert "missing.jsonl: manifest not found" in capsys.readouterr().err
    assert not out.exists()  # no half-made run dir; the (unresolvable) model was never touched
