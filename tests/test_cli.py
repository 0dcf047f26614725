"""The CLI skeleton: every subcommand is listed and teaches with an example."""

import argparse
import subprocess
import sys

import pytest

from asrtune.cli import SUBCOMMANDS, build_parser, main

NAMES = [name for name, _ in SUBCOMMANDS]


def test_top_level_help_lists_every_subcommand():
    help_text = build_parser().format_help()
    for name in ["manifest", "train", "eval", "transcribe", "convert", "synth", "demo"]:
        assert name in help_text


@pytest.mark.parametrize("name", NAMES)
def test_each_subcommand_help_has_a_worked_example(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"asrtune {name}" in out.split("examples:")[1]


def test_console_script_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "asrtune", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("asrtune ")


# ----------------------------------------------------------------------------- decoding options, declared once


def _help(name: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    return " ".join(capsys.readouterr().out.split())


def _decoding_actions(name: str) -> dict[str, "argparse.Action"]:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[name]  # noqa: SLF001 - argparse has no public accessor
    group = next(g for g in sub._action_groups if g.title == "decoding")  # noqa: SLF001
    return {a.option_strings[0]: a for a in group._group_actions}  # noqa: SLF001


def _decoding_flags(name: str) -> set[str]:
    return {s for action in _decoding_actions(name).values() for s in action.option_strings}


@pytest.mark.parametrize("name", ["eval", "transcribe"])
def test_every_decoding_option_is_a_flag_with_help_and_its_real_default(name, capsys, monkeypatch):
    import dataclasses

    from asrtune.inference import RecognizerOptions
    from asrtune.options import default_of, flag_name

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no wrapping inside "--bias-terms"
    actions = _decoding_actions(name)
    text = _help(name, capsys)
    for f in dataclasses.fields(RecognizerOptions):
        flag = flag_name(f.name)
        assert f.metadata.get("help") and flag in actions, f"{name} lacks {flag} or its help text"
        printed = actions[flag].help % {}
        assert printed.startswith(f.metadata["help"]) and " ".join(printed.split()) in text
        default = default_of(f)
        assert printed.endswith(f"(default: {'none' if default is None else default})"), printed
    assert "(default: None)" not in text


def test_eval_and_transcribe_take_the_same_decoding_flags():
    eval_flags, transcribe_flags = _decoding_flags("eval"), _decoding_flags("transcribe")
    assert eval_flags == transcribe_flags
    assert {"--language", "--prompt", "--compute-type", "--term-boost", "--bias-terms", "--features", "--threads"} <= eval_flags


def test_terms_only_score_in_eval_and_bias_terms_bias_everywhere(capsys):
    assert "--no-term-bias" not in _help("eval", capsys)
    parser = build_parser()
    with pytest.raises(SystemExit):  # transcribe's biasing flag is --bias-terms now
        parser.parse_args(["transcribe", "x.wav", "--model", "m", "--out", "o", "--terms", "t.txt"])
    args = parser.parse_args(["transcribe", "x.wav", "--model", "m", "--out", "o", "--bias-terms", "t.txt"])
    assert args.bias_terms == "t.txt"


def test_options_doc_is_generated_from_the_dataclasses():
    """docs/options.md is what scripts/gen_options_doc.py writes today (re-run it after changing an option)."""
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("gen_options_doc", REPO_ROOT / "scripts" / "gen_options_doc.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.render()
    assert "| `--max-steps` | `max_steps` |" in text and "| `--bias-terms` | `bias_terms` |" in text
    assert (REPO_ROOT / "docs" / "options.md").read_text(encoding="utf-8") == text, (
        "docs/options.md is out of date: run python scripts/gen_options_doc.py")
