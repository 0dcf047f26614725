"""The CLI skeleton: every subcommand is listed and teaches with an example."""

import argparse
import os
import re
import subprocess
import sys

import pytest

from asrtune.cli import SUBCOMMANDS, build_parser, main

NAMES = [name for name, _ in SUBCOMMANDS]
EXPECTED = ["manifest", "train", "eval", "transcribe", "convert", "lm", "synth", "demo"]


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
