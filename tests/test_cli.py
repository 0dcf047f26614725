"""The CLI skeleton: every subcommand is listed and teaches with an example."""

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
