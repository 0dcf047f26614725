"""README.md's "5-minute tour" and "Python API" run as written, on real speech with tiny.en.

The tour's ``asrtune ...`` commands are read from README.md and run in order, in a sandbox
laid out as the README assumes (``LibriSpeech/dev-clean``, ``terms.txt``, ``recordings/``, built
from a few speechocean762 files), each with the README's own arguments; the test only appends
options that make it quick (``--max-steps`` instead of ``--epochs``, fewer resamples) and runs the evaluation and
transcription on both engines. The Python API block is executed as written in a second sandbox.
A fast test checks that every tour command is one the slow test knows how to run, so a command
added to the README without coverage fails at once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import textwrap
from pathlib import Path

import pytest

from asrtune.cli import main
from asrtune.data import load_manifest

README = Path(__file__).resolve().parent.parent / "README.md"
TINY = "openai/whisper-tiny.en"
SPEAKERS = 10  # by-speaker 0.8/0.1/0.1 split: 8 train, 1 dev, 1 test speaker
UTTS_PER_SPEAKER = 2

# What the test appends to each tour command (by its first words) to keep it to a few minutes.
QUICK = {
    "manifest import": [],
    "manifest split": [],
    "manifest validate": ["--quick"],
    "manifest stats": [],
    "eval": ["--resamples", "100", "--quiet"],
    "train --model": ["--max-steps", "4", "--eval-every", "2", "--batch-size", "8"],
    "train --resume": ["--max-steps", "6"],
    "transcribe": ["--no-progress"],
}


def tour_commands(readme: str = README.read_text(encoding="utf-8")) -> list[list[str]]:
    """The ``asrtune`` command lines of the tour's bash blocks, in order (comments and line continuations handled)."""
    tour = readme.split("## A 5-minute tour", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", tour, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "asrtune":
                commands.append(words[1:])
    return commands


def python_block(readme: str = README.read_text(encoding="utf-8")) -> str:
    """The README's "Python API" code block."""
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


DROPPED = ("--epochs",)  # replaced by --max-steps (the two are exclusive)


def quick_args(argv: list[str]) -> list[str]:
    key = next(k for k in QUICK if argv[: len(k.split())] == k.split())
    return QUICK[key]


def quicken(argv: list[str]) -> list[str]:
    """``argv`` without the options in DROPPED (and their values), plus its QUICK options."""
    kept = [a for i, a in enumerate(argv) if a not in DROPPED and (i == 0 or argv[i - 1] not in DROPPED)]
    return kept + quick_args(argv)


def test_every_tour_command_is_covered():
    commands = tour_commands()
    assert len(commands) >= 8
    for argv in commands:
        quick_args(argv)  # StopIteration: a command the slow test does not know
    assert "import" in python_block() and "evaluate(" in python_block()


def build_sandbox(root: Path, shared_data: Path) -> None:
    """LibriSpeech/dev-clean (speechocean762 audio in LibriSpeech layout), terms.txt, recordings/."""
    utts = load_manifest(shared_data / "speechocean762" / "test.jsonl")
    by_speaker: dict[str, list] = {}
    for u in sorted(utts, key=lambda u: u.duration):
        by_speaker.setdefault(u.speaker, []).append(u)
    chosen = sorted(by_speaker)[:SPEAKERS]
    for spk in chosen:
        chapter = root / "LibriSpeech" / "dev-clean" / spk / "1"
        chapter.mkdir(parents=True)
        lines = []
        for k, u in enumerate(by_speaker[spk][:UTTS_PER_SPEAKER]):
            utt_id = f"{spk}-1-{k:04d}"
            (chapter / f"{utt_id}.flac").symlink_to(u.audio_filepath)
            lines.append(f"{utt_id} {u.text}")
        (chapter / f"{spk}-1.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "terms.txt").write_text("# words the speakers read\n" + by_speaker[chosen[0]][0].text.split()[-1].lower() + "\n")
    (root / "recordings").mkdir()
    for spk in chosen[:2]:
        (root / "recordings" / f"{spk}.flac").symlink_to(by_speaker[spk][-1].audio_filepath)


def _report(path: Path) -> dict:
    return json.loads((path / "report.json").read_text())


@pytest.mark.slow
def test_readme_tour_runs_as_written(shared_data, tmp_path, monkeypatch):
    from conftest import require_whisper_package

    require_whisper_package(TINY)
    root = tmp_path / "tour"
    root.mkdir()
    build_sandbox(root, shared_data)
    monkeypatch.chdir(root)

    commands = tour_commands()
    for argv in commands:
        runs = [argv]
        if argv[0] in ("eval", "transcribe") and "--engine" not in argv:
            runs.append(argv + ["--engine", "ct2"])  # both engines: hf (the default) and ct2
        elif argv[0] == "transcribe":
            runs.append([a if a != "ct2" else "hf" for a in argv])
        for i, run in enumerate(runs):
            if i:  # the second engine writes beside the first
                out = run.index("--out") + 1
                run = run[:out] + [run[out] + "-" + run[run.index("--engine") + 1]] + run[out + 1 :]
            code = main(quicken(run))
            expected = 1 if argv[:2] == ["manifest", "validate"] else 0  # validate: 1 when it fixed lines
            assert code in {0, expected}, f"asrtune {shlex.join(run)} exited {code}"

    # What the tour promised is there.
    assert {p.name for p in Path("data").glob("*.jsonl")} >= {"all.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "train.clean.jsonl"}
    assert Path("durations.png").stat().st_size > 0
    run_dir = Path("runs/acc")
    for name in ("config.yaml", "metrics.jsonl", "best", "final", "checkpoint", "best-ct2", "learning_curve.png"):
        assert (run_dir / name).exists(), name
    steps = [json.loads(x).get("step") for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 6  # the resume continued to the new --max-steps
    base, tuned, tuned_ct2 = _report(Path("reports/base")), _report(Path("reports/tuned")), _report(Path("reports/tuned-ct2"))
    assert tuned["compare"]["matched_utterances"] == base["n_utterances"] == tuned_ct2["n_utterances"] >= 1
    assert tuned_ct2["model"]["engine"] == "ct2" and tuned["model"]["engine"] == "hf"
    assert tuned["terms"] is not None and tuned["terms"]["file"] == "terms.txt"
    for out in ("transcripts", "transcripts-hf"):
        records = [json.loads(x) for x in Path(out, "transcripts.jsonl").read_text().splitlines()]
        assert len(records) == 2 and all(r["text"].strip() for r in records), out
        assert {p.suffix for p in Path(out).iterdir()} >= {".txt", ".srt", ".vtt", ".jsonl"}

    # The Python API block, as written, in a second sandbox holding the same inputs.
    api = tmp_path / "api"
    (api / "reports").mkdir(parents=True)
    for name in ("LibriSpeech", "data", "recordings"):  # data/*.jsonl name their audio relative to data/
        (api / name).symlink_to(root / name, target_is_directory=True)
    (api / "reports" / "base").symlink_to(root / "reports" / "base", target_is_directory=True)
    monkeypatch.chdir(api)
    code = textwrap.dedent(python_block())
    exec(compile(code, "README.md (Python API)", "exec"), {"__name__": "readme_api"})
    assert _report(api / "reports" / "tuned")["compare"]["matched_utterances"] >= 1
    assert (api / "transcripts" / "transcripts.jsonl").is_file() and (api / "runs" / "acc" / "best").is_dir()
    assert json.loads((api / "models" / "acc-wise-0.5" / "asrtune_merge.json").read_text())["alpha"] == 0.5
    assert os.path.samefile(Path.cwd(), api)
