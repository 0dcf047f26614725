"""The CLI skeleton: every subcommand is listed and teaches with an example."""

import argparse
import os
import re
import subprocess
import sys

import pytest

from asrtune.cli import SUBCOMMANDS, build_parser, main

NAMES = [name for name, _ in SUBCOMMANDS]
EXPECTED = ["manifest", "train", "eval", "transcribe", "convert", "merge", "lm", "synth", "demo"]


def listed_subcommands(help_text: str) -> list[str]:
    """The names in the ``COMMAND`` block of ``asrtune --help`` (4-space indented, first word),
    stopping at the next section; wrapped summary lines are indented further and skipped.

    >>> listed_subcommands("positional arguments:\\n  COMMAND\\n    a   x\\n          y\\n    b\\n\\noptions:\\n    c")
    ['a', 'b']
    """
    block = help_text.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    return [m.group(1) for line in block.splitlines() if (m := re.match(r"^    (\S+)", line))]


def test_top_level_help_lists_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "asrtune", "--help"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    listed = listed_subcommands(result.stdout)
    assert listed == NAMES  # every registered subcommand, in order, and nothing else
    assert set(EXPECTED) <= set(listed)


def _nested_actions() -> list[list[str]]:
    """[cmd, action] for the subcommands that have their own actions (manifest import, lm build, ...)."""
    out = []
    for name, parser in _subparsers(build_parser()).items():
        for action in _subparsers(parser):
            out.append([name, action])
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.mark.parametrize("name", NAMES)
def test_each_subcommand_help_has_a_worked_example(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"asrtune {name}" in out.split("examples:")[1]


@pytest.mark.parametrize("argv", _nested_actions(), ids=" ".join)
def test_each_action_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: asrtune {' '.join(argv)}" in capsys.readouterr().out


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
    from asrtune.options import default_of, flag_name, show_default

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no wrapping inside "--bias-terms"
    actions = _decoding_actions(name)
    text = _help(name, capsys)
    for f in dataclasses.fields(RecognizerOptions):
        flag = flag_name(f.name)
        assert f.metadata.get("help") and flag in actions, f"{name} lacks {flag} or its help text"
        printed = actions[flag].help % {}
        assert printed.startswith(f.metadata["help"]) and " ".join(printed.split()) in text
        default = default_of(f)
        assert printed.endswith(f"(default: {show_default(default)})"), printed
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
