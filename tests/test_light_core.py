"""`pip install asrtune` without extras: the core commands work, the rest name their extra.

The optional packages are installed here (scripts/setup_env.sh installs `.[all,dev]`), so these
tests run asrtune in a subprocess whose site-packages lacks them, as a core-only install would:
a folder of links to every installed package except the extras', used with ``python -S``. There
`eval` and `transcribe` on real tiny.en and a real clip must work, and each command that needs
an extra must stop with one line naming it, writing nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO_ROOT, require_whisper_package

TINY = "openai/whisper-tiny.en"

#: what each extra's packages are imported as (the [models] extra is weights, found by the registry)
EXTRA_MODULES = {
    "lm": ("flashlight",),
    "synth": ("espeakng_loader", "soxr"),  # scipy, also in [synth], comes with librosa (core)
    "hf": ("pyarrow",),
    "plots": ("matplotlib",),
    "serve": ("fastapi", "uvicorn", "multipart"),
    "tracking": ("tensorboard", "mlflow"),
    "ray": ("ray",),
    "export": ("pywhispercpp", "gguf", "onnx", "onnxruntime", "whisper"),
}
#: kenlm is a test dependency only (asrtune never imports it): left out too, to prove that
LEFT_OUT = ("kenlm",) + tuple(m for modules in EXTRA_MODULES.values() for m in modules)
#: other site-packages entries of those distributions (their metadata, helper modules)
LEFT_OUT_ENTRIES = set(LEFT_OUT) | {"flashlight_text", "mpl_toolkits", "pylab", "python_multipart", "mlflow_skinny",
                                    "tensorboard_data_server"}

# Runs `asrtune ARGS` for each JSON argument list in argv[1] in one process (one torch import),
# then prints one JSON line of exit codes; each command's stderr follows a marker line.
RUN_COMMANDS = """
import json, sys
from asrtune.cli import main

codes = []
for i, argv in enumerate(json.loads(sys.argv[1])):
    print(f"--- command {i}", file=sys.stderr, flush=True)
    codes.append(main(argv))
print(json.dumps(codes))
"""


@pytest.fixture(scope="module")
def core_site(tmp_path_factory) -> Path:
    """This environment's site-packages as links, without the extras' packages."""
    site = tmp_path_factory.mktemp("core-site")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if re.split(r"[-.]", entry.name)[0].lower() not in LEFT_OUT_ENTRIES and entry.suffix != ".pth":
            (site / entry.name).symlink_to(entry)
    return site


def run_core(code: str, args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -S -c code args`` seeing this repo's asrtune and ``site`` only."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{site}"}
    p = subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def run_commands(commands: list[list[str]], site: Path, cwd: Path) -> tuple[list[int], list[str]]:
    """Exit codes and each command's stderr."""
    p = run_core(RUN_COMMANDS, [json.dumps(commands)], site, cwd)
    return json.loads(p.stdout.strip().splitlines()[-1]), [c.partition("\n")[2] for c in p.stderr.split("--- command ")[1:]]


def test_the_core_site_lacks_exactly_the_extras(core_site):
    code = f"import importlib.util, json; print(json.dumps([m for m in {list(LEFT_OUT)!r} if importlib.util.find_spec(m)]))"
    assert json.loads(run_core(code, [], core_site, REPO_ROOT).stdout) == []


def test_every_extra_is_blocked_by_these_tests():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert set(extras) - {"all", "dev", "models"} == set(EXTRA_MODULES)
    assert extras["all"] == [f"asrtune[{','.join(k for k in extras if k not in ('all', 'dev'))}]"]


def test_importing_asrtune_and_its_cli_loads_no_optional_package():
    """In the full environment: `asrtune --help` and every subcommand's parser import no extra."""
    code = ("import json, sys; import asrtune, asrtune.cli; asrtune.cli.build_parser(); "
            f"print(json.dumps(sorted(m for m in {list(LEFT_OUT)!r} if m in sys.modules)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout) == []


@pytest.mark.slow  # ~10 s idle, 25 s on a busy 2-core machine: one torch import and one tiny.en load
def test_eval_and_transcribe_work_without_the_extras(core_site, shared_data, tmp_path):
    require_whisper_package(TINY)
    clip = shared_data / "speechocean762" / "audio" / "0111" / "001110023.flac"  # "ANN IS FROM GERMANY", 3.3 s
    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(clip), "text": "ANN IS FROM GERMANY", "duration": 3.31}) + "\n")
    commands = [
        ["eval", "--model", TINY, "--manifest", str(manifest), "--out", "report", "--resamples", "100", "--quiet"],
        ["transcribe", str(clip), "--model", TINY, "--out", "transcripts", "--format", "txt", "--no-progress"],
    ]
    codes, errs = run_commands(commands, core_site, tmp_path)

    assert codes == [0, 0], errs
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["normalized"]["ref_words"] == 4 and report["normalized"]["wer"] <= 0.5
    page = (tmp_path / "report" / "report.html").read_text()
    assert "No figures: they need matplotlib (pip install &#x27;asrtune[plots]&#x27;)" in page and "<img" not in page
    (txt,) = (tmp_path / "transcripts").rglob("*.txt")
    assert "germany" in txt.read_text().lower()


def test_a_command_needing_a_missing_extra_is_one_line_naming_it(core_site, tmp_path):
    (tmp_path / "text.txt").write_text("Start apixaban today.\n")
    (tmp_path / "hf").mkdir()
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "a.flac", "text": "a", "duration": 1.0}) + "\n")
    needing = {  # command -> (its extra, what it must not have written)
        ("manifest", "import", "hf", "hf", "--out", "hf.jsonl"): ("hf", "hf.jsonl"),
        ("synth", "--text", "text.txt", "--out", "synth"): ("synth", "synth"),
        ("manifest", "stats", str(manifest), "--plot", "durations.png"): ("plots", "durations.png"),
        ("transcribe", "text.txt", "--model", TINY, "--out", "ray-out", "--ray"): ("ray", "ray-out"),
    }
    codes, errs = run_commands([list(c) for c in needing], core_site, tmp_path)
    for code, err, (extra, written) in zip(codes, errs, needing.values()):
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err  # one line: no traceback, no statistics before it
        assert err.strip().startswith("asrtune ") and err.strip().endswith(f"pip install 'asrtune[{extra}]'"), err
        assert not (tmp_path / written).exists(), written


def test_ctc_beam_search_without_flashlight_names_the_lm_extra(core_site):
    code = ("from asrtune.errors import MissingExtraError\n"
            "from asrtune.inference.ctc import BeamSearchDecoder\n"
            "try:\n"
            "    BeamSearchDecoder({'<pad>': 0, '|': 1, 'a': 2}, beam_size=4)\n"
            "except MissingExtraError as e:\n"
            "    print(e)\n")
    assert run_core(code, [], core_site, REPO_ROOT).stdout.strip() == (
        "CTC beam search (--beam-size > 1 or --lm) needs flashlight-text (flashlight is not installed): "
        "pip install 'asrtune[lm]'")
