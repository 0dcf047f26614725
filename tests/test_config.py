"""TrainConfig: YAML/CLI names, type coercion, and clear errors for impossible options."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from asrtune.errors import ConfigError
from asrtune.options import default_of, flag_name, show_default
from asrtune.training.config import TrainConfig, config_differences, load_yaml_config, save_yaml_config

FIELDS = dataclasses.fields(TrainConfig)
HINTS = typing.get_type_hints(TrainConfig)


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


# ----------------------------------------------------------------------------- one declaration per option


def train_parser() -> argparse.ArgumentParser:
    from asrtune.cli.train_cmd import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), "train")
    return parser


def a_new_value(field: dataclasses.Field):
    """A valid value for ``field`` that differs from its default, and how to type it."""
    kind = typing.get_args(HINTS[field.name])[0] if type(None) in typing.get_args(HINTS[field.name]) else HINTS[field.name]
    choices = field.metadata.get("choices")
    default = default_of(field)
    if choices:
        value = next(c for c in choices if c != default)
        return value, [value]
    if kind is bool:
        return (not default), [flag_name(field.name) if not default else "--no-" + field.name.replace("_", "-")]
    if kind is int:
        value = (default or 0) + 3
    elif kind is float:
        value = (default or 0.0) + 0.25
    elif kind == list[float]:
        return [0.25, 0.75], ["0.25,0.75"]
    elif kind == list[str]:
        return ["a.jsonl", "b.jsonl"], ["a.jsonl", "b.jsonl"]
    else:
        value = f"{field.name}-value"
    return value, [str(value)]


def test_every_option_has_help_a_group_and_its_real_default_in_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option in --help
    parser = train_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001 - argparse has no public accessor
    actions = {a.dest: a for a in train._actions}  # noqa: SLF001
    text = " ".join(train.format_help().split())
    for f in FIELDS:
        assert f.metadata.get("help") and f.metadata.get("group"), f"{f.name} lacks help text or a --help group"
        printed = actions[f.name].help % {}
        assert printed.startswith(f.metadata["help"]) and " ".join(printed.split()) in text, f.name
        assert printed.endswith(f"(default: {show_default(default_of(f))})"), printed
    assert "(default: 1e-05)" in actions["lr"].help and "(default: on)" in actions["progress"].help
    assert "(default: None)" not in text


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_cli_option_equals_yaml_key(field, tmp_path):
    """Typed on the command line, saved to config.yaml under the field's name, read back: the same value."""
    from asrtune.cli.train_cmd import config_from_args

    value, typed = a_new_value(field)
    argv = ["train"]
    if typed[0].startswith("--"):
        argv += typed
    else:
        for item in typed:
            argv += [flag_name(field.name), item]
    if field.name == "resume":  # --resume reads RUN_DIR/config.yaml: give it one
        run = tmp_path / "run"
        run.mkdir()
        save_yaml_config(TrainConfig(), run / "config.yaml")
        value, argv = str(run), ["train", "--resume", str(run)]
    cfg = config_from_args(train_parser().parse_args(argv))
    assert getattr(cfg, field.name) == value
    save_yaml_config(cfg, tmp_path / "config.yaml")
    saved = load_yaml_config(tmp_path / "config.yaml")
    assert saved[field.name] == value  # the YAML key is the field name
    assert getattr(TrainConfig.from_dict(saved), field.name) == value


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("model: m\nlearning_rate: 0.1\n", "unknown option 'learning_rate'"),
        ("model: m\nlr_schedule: triangle\n", "option 'lr-schedule' must be one of linear, cosine, constant; got 'triangle'"),
    ],
)
def test_bad_yaml_is_one_line_naming_the_file_and_option(yaml_text, message, tmp_path, capsys):
    from asrtune.cli import main

    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    assert main(["train", "--config", str(f), "--train", "a.jsonl", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--config {f}" in err and message in err


def test_a_bad_choice_on_the_command_line_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        train_parser().parse_args(["train", "--freeze", "decoder"])
    assert e.value.code == 2 and "--freeze: invalid choice: 'decoder'" in capsys.readouterr().err


def test_the_documented_yaml_example_is_a_valid_config(tmp_path):
    from conftest import REPO_ROOT

    doc = (REPO_ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "accent.yaml").write_text(block)
    cfg = TrainConfig.from_dict(load_yaml_config(tmp_path / "accent.yaml")).validate()
    assert cfg.model == "openai/whisper-tiny.en" and cfg.weights == [0.9, 0.1] and cfg.export_ct2 is True
