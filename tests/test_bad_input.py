"""Bad input through the real CLI: one clear line, the right exit code, no traceback, nothing left behind.

Each case runs ``asrtune ...`` as a process of its own (forked from a server that imported asrtune
once: ``tests/cli_runner.py``) inside a fresh sandbox folder (also its working folder) and asserts:

- exit code 2 (a user error), or 1 where the command reports bad lines (``manifest validate``);
- exactly one line on stderr, naming the file, line or option at fault;
- no "Traceback" on stdout or stderr;
- nothing left behind: the sandbox holds exactly the files it held before (no ``--out``, no
  temporary files).

Cases fail before any model is loaded, except the few marked ``needs_model``. Cases that
fail today in commands being reworked elsewhere are ``xfail(strict=True)``: they start passing
(and must be un-xfailed) once fixed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import asrtune
from cli_runner import run_asrtune
from conftest import require_whisper_package

TINY = "openai/whisper-tiny.en"
REPO = Path(asrtune.__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    """One bad invocation. ``{d}`` in ``argv`` is the sandbox folder; ``names`` must all appear
    in the error line; ``out`` is the output path that must not appear."""

    id: str
    argv: tuple[str, ...]
    names: tuple[str, ...]
    code: int = 2
    out: str | None = None
    needs_model: bool = False
    xfail: str | None = None


def case(id: str, cmd: str, *names: str, code: int = 2, out: str | None = None, needs_model: bool = False, xfail: str | None = None) -> Case:
    return Case(id, tuple(cmd.split()), names, code, out, needs_model, xfail)


GOOD = "{d}/good.jsonl"  # one valid line (audio need not exist: these cases fail earlier)
EVAL = f"eval --model {TINY} --out {{d}}/report"
TRANSCRIBE = f"transcribe {{d}}/clip.wav --model {TINY} --out {{d}}/transcripts"
TRAIN = f"train --model {TINY} --train {GOOD} --dev {GOOD} --out {{d}}/run"

CASES = [
    # --- manifests: missing, empty, not UTF-8 text, wrong types ---
    case("validate-missing", "manifest validate {d}/missing.jsonl", "missing.jsonl", "not found"),
    case("stats-missing", "manifest stats {d}/missing.jsonl", "missing.jsonl", "not found"),
    case("eval-missing-manifest", f"{EVAL} --manifest {{d}}/missing.jsonl", "missing.jsonl", out="{d}/report"),
    case("train-missing-manifest", f"train --model {TINY} --train {{d}}/missing.jsonl --dev {GOOD} --out {{d}}/run",
         "missing.jsonl", out="{d}/run"),
    case("validate-empty", "manifest validate {d}/empty.jsonl", "empty.jsonl", "empty"),
    case("stats-empty", "manifest stats {d}/empty.jsonl", "empty.jsonl", "empty"),
    case("split-empty", "manifest split {d}/empty.jsonl --out {d}/splits", "empty.jsonl", "empty", out="{d}/splits"),
    case("eval-empty-manifest", f"{EVAL} --manifest {{d}}/empty.jsonl", "empty.jsonl", out="{d}/report"),
    case("train-empty-manifest", f"train --model {TINY} --train {{d}}/empty.jsonl --dev {GOOD} --out {{d}}/run",
         "empty.jsonl", out="{d}/run"),
    case("transcribe-empty-manifest", f"transcribe {{d}}/empty.jsonl --model {TINY} --out {{d}}/transcripts",
         "empty.jsonl", out="{d}/transcripts"),
    case("validate-binary", "manifest validate {d}/binary.jsonl", "binary.jsonl", "UTF-8"),
    case("stats-binary", "manifest stats {d}/binary.jsonl", "binary.jsonl", "UTF-8"),
    case("validate-utf16", "manifest validate {d}/utf16.jsonl", "utf16.jsonl", "UTF-16"),
    case("eval-utf16", f"{EVAL} --manifest {{d}}/utf16.jsonl", "utf16.jsonl", "UTF-16", out="{d}/report"),
    case("validate-text-number", "manifest validate {d}/text_number.jsonl --quick", "text_number.jsonl:1", "text", code=1),
    case("stats-text-number", "manifest stats {d}/text_number.jsonl", "text_number.jsonl:1", "text"),
    case("validate-duration-string", "manifest validate {d}/duration_string.jsonl --quick", "duration_string.jsonl:1",
         "duration", code=1),
    case("stats-duration-string", "manifest stats {d}/duration_string.jsonl", "duration_string.jsonl:1", "duration"),
    case("validate-negative-offset", "manifest validate {d}/negative_offset.jsonl --quick", "negative_offset.jsonl:1",
         "offset", code=1),
    case("stats-negative-offset", "manifest stats {d}/negative_offset.jsonl", "negative_offset.jsonl:1", "offset"),
    case("eval-negative-offset", f"{EVAL} --manifest {{d}}/negative_offset.jsonl", "negative_offset.jsonl:1", "offset",
         out="{d}/report"),
    # --- models: unknown id, folders that are not speech models, a corrupt CTranslate2 folder ---
    case("eval-unknown-model", "eval --model nobody/nothing --manifest {d}/good.jsonl --out {d}/report",
         "nobody/nothing", out="{d}/report"),
    case("transcribe-unknown-model", "transcribe {d}/clip.wav --model nobody/nothing --out {d}/transcripts",
         "nobody/nothing", out="{d}/transcripts"),
    case("train-unknown-model", f"train --model nobody/nothing --train {GOOD} --dev {GOOD} --out {{d}}/run",
         "nobody/nothing", out="{d}/run"),
    case("convert-unknown-model", "convert hf-to-ct2 nobody/nothing {d}/ct2", "nobody/nothing", out="{d}/ct2"),
    case("merge-unknown-model", "merge nobody/nothing --alpha 0.5 --out {d}/merged", "nobody/nothing", out="{d}/merged"),
    case("merge-alpha-nan", f"merge {TINY} --alpha nan --out {{d}}/merged", "--alpha", out="{d}/merged"),
    case("merge-alpha-text", f"merge {TINY} --alpha half --out {{d}}/merged", "--alpha", "half", out="{d}/merged"),
    case("merge-base-unrecorded", f"merge {TINY} --alpha 0.5 --out {{d}}/merged", "--base", out="{d}/merged",
         needs_model=True),
    case("merge-out-is-file", f"merge {TINY} --base {TINY} --alpha 0.5 --out {{d}}/existing.txt", "existing.txt"),
    case("train-merge-alpha-one", f"{TRAIN} --merge-alphas 0.5,1", "--merge-alphas", out="{d}/run"),
    case("lm-tokens-from-unknown-model", "lm build --text {d}/domain.txt --out {d}/lm --tokens-from nobody/nothing",
         "nobody/nothing", out="{d}/lm"),
    case("eval-empty-folder-model", "eval --model {d}/empty_dir --manifest {d}/good.jsonl --out {d}/report",
         "empty_dir", "no model", out="{d}/report"),
    case("eval-bert-folder-model", "eval --model {d}/bert --manifest {d}/good.jsonl --out {d}/report",
         "config.json", "bert", out="{d}/report"),
    case("convert-random-config-folder", "convert ct2-to-hf {d}/random_config {d}/hf", "random_config", "model.bin",
         out="{d}/hf"),
    case("convert-corrupt-ct2", "convert ct2-to-hf {d}/corrupt_ct2 {d}/hf", "corrupt_ct2", "model.bin", "truncated",
         out="{d}/hf", needs_model=True),
    case("transcribe-corrupt-ct2", "transcribe {d}/clip.wav --model {d}/corrupt_ct2 --out {d}/transcripts",
         "corrupt_ct2", "truncated", out="{d}/transcripts", needs_model=True),
    # --- unknown names ---
    case("eval-unknown-normalizer", f"{EVAL} --manifest {GOOD} --normalizer klingon", "--normalizer", "klingon",
         out="{d}/report"),
    case("eval-unknown-engine", f"{EVAL} --manifest {GOOD} --engine openvino", "--engine", "openvino", out="{d}/report"),
    case("transcribe-unknown-engine", f"{TRANSCRIBE} --engine openvino", "--engine", "openvino", out="{d}/transcripts"),
    case("transcribe-unknown-format", f"{TRANSCRIBE} --format docx", "--format", "docx", out="{d}/transcripts"),
    case("import-unknown-format", "manifest import excel {d}/clip.wav --out {d}/m.jsonl", "format", "excel",
         out="{d}/m.jsonl"),
    # --- YAML configs ---
    case("train-yaml-unknown-key", "train --config {d}/unknown_key.yaml", "unknown_key.yaml", "learning_rat",
         out="{d}/run"),
    case("train-yaml-broken", "train --config {d}/broken.yaml", "broken.yaml", out="{d}/run"),
    case("train-yaml-python-tag", "train --config {d}/python_tag.yaml", "python_tag.yaml", out="{d}/run"),
    # --- impossible numbers ---
    case("eval-batch-size-0", f"{EVAL} --manifest {GOOD} --batch-size 0", "--batch-size", out="{d}/report"),
    case("eval-beam-size-0", f"{EVAL} --manifest {GOOD} --beam-size 0", "--beam-size", out="{d}/report"),
    case("transcribe-batch-size-0", f"{TRANSCRIBE} --batch-size 0", "--batch-size", out="{d}/transcripts"),
    case("transcribe-beam-size-0", f"{TRANSCRIBE} --beam-size 0", "--beam-size", out="{d}/transcripts"),
    case("train-batch-size-0", f"{TRAIN} --batch-size 0", "--batch-size", out="{d}/run"),
    case("train-lr-negative", f"{TRAIN} --lr -1", "--lr", out="{d}/run"),
    case("train-max-steps-0", f"{TRAIN} --max-steps 0", "--max-steps", out="{d}/run"),
    case("lm-order-9", "lm build --text {d}/domain.txt --out {d}/lm --order 9", "--order", out="{d}/lm"),
    case("split-bad-ratios", "manifest split {d}/good.jsonl --out {d}/splits --ratios 0.8,0.8", "--ratios", out="{d}/splits"),
    case("synth-variants-0", "synth --text {d}/domain.txt --out {d}/synth --variants-per-sentence 0",
         "--variants-per-sentence", out="{d}/synth"),
    # --- --out that is an existing file ---
    case("eval-out-is-file", f"eval --model {TINY} --manifest {GOOD} --out {{d}}/existing.txt", "existing.txt"),
    case("transcribe-out-is-file", f"transcribe {{d}}/clip.wav --model {TINY} --out {{d}}/existing.txt", "existing.txt"),
    case("train-out-is-file", f"train --model {TINY} --train {GOOD} --dev {GOOD} --out {{d}}/existing.txt", "existing.txt"),
    case("import-out-is-folder", "manifest import folder {d}/audio_dir --out {d}/empty_dir", "empty_dir"),
    case("convert-dst-is-file", "convert ct2-to-hf {d}/random_config {d}/existing.txt", "existing.txt"),
    case("synth-out-is-file", "synth --text {d}/domain.txt --out {d}/existing.txt", "existing.txt"),
    case("lm-out-is-file", "lm build --text {d}/domain.txt --out {d}/existing.txt", "existing.txt"),
    # --- empty input folders, missing text ---
    case("transcribe-empty-folder", f"transcribe {{d}}/empty_dir --model {TINY} --out {{d}}/transcripts", "empty_dir",
         out="{d}/transcripts"),
    case("import-folder-empty", "manifest import folder {d}/empty_dir --out {d}/m.jsonl", "empty_dir", out="{d}/m.jsonl"),
    case("import-librispeech-empty", "manifest import librispeech {d}/empty_dir --out {d}/m.jsonl", "empty_dir",
         out="{d}/m.jsonl"),
    case("lm-missing-text", "lm build --text {d}/missing.txt --out {d}/lm", "missing.txt", out="{d}/lm"),
    case("lm-missing-terms", "lm build --text {d}/domain.txt --out {d}/lm --terms {d}/missing.txt", "--terms",
         "missing.txt", out="{d}/lm"),
    case("lm-binary-text", "lm build --text {d}/binary.jsonl --out {d}/lm", "binary.jsonl", "UTF-8", out="{d}/lm"),
    case("lm-punctuation-text", "lm build --text {d}/punctuation.txt --out {d}/lm", "punctuation.txt", "no words",
         out="{d}/lm"),
    case("synth-binary-text", "synth --text {d}/binary.jsonl --out {d}/synth", "binary.jsonl", "UTF-8", out="{d}/synth"),
    case("import-csv-binary", "manifest import csv {d}/binary.jsonl --out {d}/m.jsonl", "binary.jsonl", "UTF-8",
         out="{d}/m.jsonl"),
    # --- other impossible options of the data commands ---
    case("validate-jobs-0", "manifest validate {d}/good.jsonl --jobs 0", "--jobs"),
    case("validate-max-print-negative", "manifest validate {d}/good.jsonl --max-print -1", "--max-print"),
    case("validate-fix-is-folder", "manifest validate {d}/good.jsonl --fix {d}/empty_dir", "--fix", "empty_dir"),
    case("stats-plot-is-folder", "manifest stats {d}/good.jsonl --plot {d}/empty_dir", "--plot", "empty_dir"),
    case("synth-rate-0", "synth --text {d}/domain.txt --out {d}/synth --rates 0", "--rates", out="{d}/synth"),
    case("synth-pitch-500", "synth --text {d}/domain.txt --out {d}/synth --pitches 500", "--pitches", out="{d}/synth"),
    case("synth-punctuation-only", "synth --text {d}/punctuation.txt --out {d}/synth", "punctuation.txt", "speakable",
         out="{d}/synth"),
    # --- eval: checks that need no model come before it loads; scoring a hypotheses file ---
    case("eval-missing-bias-terms", f"{EVAL} --manifest {GOOD} --bias-terms {{d}}/missing.txt", "--bias-terms",
         "missing.txt", out="{d}/report"),
    case("eval-unknown-by-field", f"{EVAL} --manifest {GOOD} --by dialect", "--by", "dialect", out="{d}/report"),
    case("eval-compare-not-a-report", f"{EVAL} --manifest {GOOD} --compare {{d}}/empty_dir", "--compare", "empty_dir",
         out="{d}/report"),
    case("eval-model-and-hypotheses", f"{EVAL} --manifest {GOOD} --hypotheses {{d}}/other_hyps.jsonl", "--hypotheses",
         "--model", out="{d}/report"),
    case("eval-hypotheses-missing", "eval --hypotheses {d}/missing.jsonl --manifest {d}/good.jsonl --out {d}/report",
         "--hypotheses", "missing.jsonl", out="{d}/report"),
    case("eval-hypotheses-binary", "eval --hypotheses {d}/binary.jsonl --manifest {d}/good.jsonl --out {d}/report",
         "binary.jsonl:1", "UTF-8", out="{d}/report"),
    case("eval-hypotheses-utf16", "eval --hypotheses {d}/utf16.jsonl --manifest {d}/good.jsonl --out {d}/report",
         "utf16.jsonl:1", "UTF-16", out="{d}/report"),
    case("eval-hypotheses-not-objects", "eval --hypotheses {d}/list.jsonl --manifest {d}/good.jsonl --out {d}/report",
         "list.jsonl:1", "JSON object", out="{d}/report"),
    case("eval-hypotheses-for-other-files", "eval --hypotheses {d}/other_hyps.jsonl --manifest {d}/good.jsonl --out {d}/report",
         "clip.wav", "other.wav", out="{d}/report"),
    case("eval-hypotheses-with-engine", "eval --hypotheses {d}/other_hyps.jsonl --manifest {d}/good.jsonl --out {d}/report "
         "--engine ct2", "--engine", "--hypotheses", out="{d}/report"),
    # --- transcribe / train: missing inputs ---
    case("transcribe-missing-input", f"transcribe {{d}}/missing.wav --model {TINY} --out {{d}}/transcripts", "missing.wav",
         out="{d}/transcripts"),
    case("transcribe-missing-bias-terms", f"{TRANSCRIBE} --bias-terms {{d}}/missing.txt", "--bias-terms", "missing.txt",
         out="{d}/transcripts"),
    case("train-resume-not-a-run", "train --resume {d}/empty_dir", "--resume", "empty_dir"),
    # --- serve: model, port and host are checked before it listens (the port before the model loads) ---
    case("serve-unknown-model", "serve --model nobody/nothing", "nobody/nothing"),
    case("serve-port-out-of-range", f"serve --model {TINY} --port 99999", "--port", "99999"),
    case("serve-port-not-a-number", f"serve --model {TINY} --port http", "port", "http"),
    case("serve-host-unresolvable", f"serve --model {TINY} --host no.such.host.invalid", "--host", "no.such.host.invalid"),
    case("serve-missing-bias-terms", f"serve --model {TINY} --bias-terms {{d}}/missing.txt", "--bias-terms", "missing.txt"),
    # --- Whisper's decoding limits (library side: test_decoding_limits.py; server side: test_serve.py) ---
    case("transcribe-beam-size-10000", f"{TRANSCRIBE} --beam-size 10000", "--beam-size", "10000", out="{d}/transcripts"),
    case("eval-beam-size-10000", f"{EVAL} --manifest {GOOD} --beam-size 10000", "--beam-size", out="{d}/report"),
    case("serve-beam-size-10000", f"serve --model {TINY} --beam-size 10000", "--beam-size", "10000"),
    case("transcribe-whisper-beam-64", f"{TRANSCRIBE} --engine ct2 --beam-size 64", "--beam-size 64", "at most 32",
         out="{d}/transcripts", needs_model=True),
    case("serve-whisper-beam-64", f"serve --model {TINY} --beam-size 64", "--beam-size 64", "at most 32", needs_model=True),
    case("transcribe-term-boost-inf", f"{TRANSCRIBE} --term-boost inf", "--term-boost", out="{d}/transcripts"),
    case("transcribe-unknown-language", f"{TRANSCRIBE} --language xx", "--language xx", "not a Whisper language",
         out="{d}/transcripts"),
    case("serve-unknown-language", f"serve --model {TINY} --language xx", "--language xx"),
    case("transcribe-german-on-english-only-hf", f"{TRANSCRIBE} --language de", "--language de", "English-only",
         out="{d}/transcripts", needs_model=True),
    case("transcribe-german-on-english-only-ct2", f"{TRANSCRIBE} --engine ct2 --language de", "--language de",
         "English-only", out="{d}/transcripts", needs_model=True),
    case("transcribe-paragraph-bias-term", f"{TRANSCRIBE} --bias-terms {{d}}/long_term.txt", "--bias-terms",
         "long_term.txt:2", "500 characters", out="{d}/transcripts"),
    case("serve-paragraph-bias-term", f"serve --model {TINY} --bias-terms {{d}}/long_term.txt", "long_term.txt:2"),
    case("transcribe-compression-ratio-half", f"{TRANSCRIBE} --compression-ratio-threshold 0.5",
         "--compression-ratio-threshold", out="{d}/transcripts"),
    case("transcribe-no-speech-threshold-2", f"{TRANSCRIBE} --no-speech-threshold 2", "--no-speech-threshold",
         out="{d}/transcripts"),
    # --- manifest align: missing audio or transcript, bad outputs; all before the model loads ---
    case("pack-missing", "manifest pack {d}/missing.jsonl --out {d}/p.jsonl", "missing.jsonl", out="{d}/p.jsonl"),
    case("pack-max-duration", f"manifest pack {GOOD} --out {{d}}/p.jsonl --max-duration 40", "--max-duration", "30",
         out="{d}/p.jsonl"),
    case("pack-gap", f"manifest pack {GOOD} --out {{d}}/p.jsonl --gap -1", "--gap", out="{d}/p.jsonl"),
    case("pack-nothing-readable", "manifest pack {d}/no_audio.jsonl --out {d}/p.jsonl", "no_audio.jsonl", "gone.wav",
         "no clip could be read", out="{d}/p.jsonl"),
    case("align-missing-audio", f"manifest align {{d}}/missing.wav {{d}}/domain.txt --model {TINY} --out {{d}}/m.jsonl",
         "missing.wav", out="{d}/m.jsonl"),
    case("align-missing-transcript", f"manifest align {{d}}/clip.wav {{d}}/missing.txt --model {TINY} --out {{d}}/m.jsonl",
         "missing.txt", out="{d}/m.jsonl"),
    case("align-audio-without-transcript", f"manifest align {{d}}/clip.wav --model {TINY} --out {{d}}/m.jsonl",
         "clip.wav", "TRANSCRIPT", out="{d}/m.jsonl"),
    case("align-folder-without-pairs", f"manifest align {{d}}/empty_dir --model {TINY} --out {{d}}/m.jsonl",
         "empty_dir", out="{d}/m.jsonl"),
    case("align-out-is-folder", f"manifest align {{d}}/clip.wav {{d}}/domain.txt --model {TINY} --out {{d}}/empty_dir",
         "--out", "empty_dir"),
    case("align-cut-is-file", f"manifest align {{d}}/clip.wav {{d}}/domain.txt --model {TINY} --out {{d}}/m.jsonl "
         "--cut {d}/existing.txt", "--cut", "existing.txt", out="{d}/m.jsonl"),
    case("align-window-0", f"manifest align {{d}}/clip.wav {{d}}/domain.txt --model {TINY} --out {{d}}/m.jsonl --window 0",
         "--window", out="{d}/m.jsonl"),
    case("align-unknown-model", "manifest align {d}/clip.wav {d}/domain.txt --model nobody/nothing --out {d}/m.jsonl",
         "nobody/nothing", out="{d}/m.jsonl"),
    case("align-duration-over-window", f"manifest align {{d}}/clip.wav {{d}}/domain.txt --model {TINY} --out {{d}}/m.jsonl "
         "--max-duration 40", "--max-duration", out="{d}/m.jsonl"),
    case("align-negative-logprob-gap", f"manifest align {{d}}/clip.wav {{d}}/domain.txt --model {TINY} --out {{d}}/m.jsonl "
         "--max-logprob-gap -1", "--max-logprob-gap", out="{d}/m.jsonl"),
]


def make_sandbox(d: Path, tiny_ct2: Path | None) -> None:
    """The bad (and a few good) inputs the cases refer to."""
    import numpy as np
    import soundfile as sf

    sf.write(d / "clip.wav", np.zeros(1600, dtype=np.float32), 16_000)
    good = {"audio_filepath": "clip.wav", "text": "HELLO", "duration": 0.1}
    (d / "good.jsonl").write_text(json.dumps(good) + "\n")
    (d / "empty.jsonl").write_text("")
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (d / "utf16.jsonl").write_text(json.dumps(good) + "\n", encoding="utf-16")
    (d / "text_number.jsonl").write_text(json.dumps({**good, "text": 42}) + "\n")
    (d / "duration_string.jsonl").write_text(json.dumps({**good, "duration": "long"}) + "\n")
    (d / "negative_offset.jsonl").write_text(json.dumps({**good, "offset": -1.0}) + "\n")
    (d / "no_audio.jsonl").write_text(json.dumps({**good, "audio_filepath": "gone.wav"}) + "\n")
    (d / "domain.txt").write_text("Start apixaban today.\n")
    (d / "long_term.txt").write_text("apixaban\n" + "x" * 500 + "\n")  # a 500-character "term"
    (d / "punctuation.txt").write_text("...\n!!!\n")
    (d / "existing.txt").write_text("keep me\n")
    (d / "other_hyps.jsonl").write_text(json.dumps({"id": "other.wav", "text": "hello"}) + "\n")
    (d / "list.jsonl").write_text("[1, 2]\n")
    (d / "empty_dir").mkdir()
    (d / "audio_dir").mkdir()
    sf.write(d / "audio_dir" / "a.wav", np.zeros(1600, dtype=np.float32), 16_000)
    (d / "audio_dir" / "a.txt").write_text("HELLO\n")
    (d / "bert").mkdir()
    (d / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (d / "random_config").mkdir()
    (d / "random_config" / "config.json").write_text(json.dumps({"hello": "world"}))
    (d / "unknown_key.yaml").write_text(f"model: {TINY}\ntrain: [good.jsonl]\nout: run\nlearning_rat: 0.1\n")
    (d / "broken.yaml").write_text(f"model: {TINY}\ntrain: [good.jsonl\nout: run\n")
    (d / "python_tag.yaml").write_text("model: !!python/object/apply:os.system ['echo pwned > pwned.txt']\nout: run\n")
    if tiny_ct2 is not None:
        (d / "corrupt_ct2").mkdir()
        for name in ("config.json", "tokenizer.json"):
            (d / "corrupt_ct2" / name).write_bytes((tiny_ct2 / name).read_bytes())
        with open(tiny_ct2 / "model.bin", "rb") as f:
            (d / "corrupt_ct2" / "model.bin").write_bytes(f.read(1_000_000))  # the first 1 MB of 75


def snapshot(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_size if p.is_file() else -1 for p in d.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, request):
    tiny_ct2 = None
    if request.node.callspec.params["bad"].needs_model:
        require_whisper_package(TINY)
        from asrtune.models import resolve_model

        tiny_ct2 = resolve_model(TINY).ct2_path
    d = tmp_path / "sandbox"
    d.mkdir()
    make_sandbox(d, tiny_ct2)
    return d


def _param(c: Case):
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("bad", [_param(c) for c in CASES])
def test_bad_input_is_one_clear_line(bad: Case, sandbox: Path):
    argv = [a.format(d=sandbox) for a in bad.argv]
    before = snapshot(sandbox)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = run_asrtune(argv, sandbox, env)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == bad.code, result.stderr[-2000:]
    message = result.stderr if bad.code == 2 else result.stdout
    if bad.code == 2:
        assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for name in bad.names:
        assert name.format(d=sandbox) in message, f"{name!r} not named in: {message}"
    if bad.out is not None:
        assert not Path(bad.out.format(d=sandbox)).exists()
    assert snapshot(sandbox) == before, "files were created or changed"


def test_serve_on_a_port_in_use_is_one_line_before_the_model_loads(tmp_path):
    """A port another process listens on is refused at once, not after loading the model."""
    import socket

    require_whisper_package(TINY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "asrtune", "serve", "--model", TINY, "--port", str(port)],
                                cwd=tmp_path, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--port {port}" in lines[0], result.stderr
