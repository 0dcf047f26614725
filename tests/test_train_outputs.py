"""What a run leaves behind loads everywhere, and dev WER decodes exactly as ``asrtune eval``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.training import TrainConfig, train
from asrtune.training.compare import score, utterance_audio
from asrtune.training.progress import Progress
from asrtune.training.trainer import Trainer

from conftest import REPO_ROOT, require_whisper_package
from test_train import config, so16, tiny_whisper  # noqa: F401  (fixtures)


@pytest.mark.slow
def test_eval_sets_write_base_and_tuned_wer(tiny_whisper, so16, tmp_path, shared_data):
    general = tmp_path / "general.jsonl"
    write_manifest(general, load_manifest(next((shared_data / "ljspeech-32").glob("*.jsonl")))[:2], relative=False)
    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=2, eval_sets=[str(general)]))
    rows = json.loads((run / "eval_results.json").read_text())
    assert [r["set"] for r in rows] == [str(general)] and rows == result.eval_results
    assert rows[0]["delta"] == pytest.approx(rows[0]["tuned_wer"] - rows[0]["base_wer"]) and rows[0]["base_wer"] > 0


@pytest.mark.kernels
@pytest.mark.slow
def test_export_ct2_of_a_run_loads_in_ctranslate2_and_asrtune_eval(so16, tmp_path):
    """Real tiny.en (a random model never ends a sentence within CTranslate2's length limit)."""
    require_whisper_package()
    import ctranslate2

    run = tmp_path / "run"
    train(config("openai/whisper-tiny.en", so16, run, max_steps=1, lr=1e-5, export_ct2=True))
    # best/ carries what CTranslate2 and faster-whisper read (transformers 5 omits both by default)
    assert (run / "best" / "preprocessor_config.json").is_file()
    assert json.loads((run / "best" / "generation_config.json").read_text())["alignment_heads"]
    ctranslate2.models.Whisper(str(run / "best-ct2"), device="cpu")
    out = tmp_path / "report"
    p = subprocess.run([sys.executable, "-m", "asrtune", "eval", "--engine", "ct2", "--model", str(run),
                        "--manifest", str(so16[1]), "--out", str(out)],
                       cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.mark.kernels
@pytest.mark.slow
def test_dev_wer_decodes_like_asrtune_eval(so16, tmp_path):
    """Real tiny.en on 4 clips: the trainer's recogniser (from audio and from float16 cached
    encoder outputs) gives the hypotheses of ``load_recognizer``, the code ``asrtune eval`` runs."""
    require_whisper_package()
    from asrtune.inference import load_recognizer

    cfg = TrainConfig(model="openai/whisper-tiny.en", train=[str(so16[0])], dev=str(so16[1]), out=str(tmp_path / "run"),
                      eval_batch_size=2, progress=False, threads=2)
    trainer = Trainer(cfg)
    trainer.build_model()
    trainer.load_data()
    audios = [utterance_audio(u) for u, _ in trainer.dev]
    expected = load_recognizer("openai/whisper-tiny.en", engine="hf", batch_size=2).transcribe(audios)
    recognizer = trainer.adapter.recognizer("cpu", 2)
    assert recognizer.transcribe(audios) == expected
    assert recognizer.transcribe_encoded(trainer.adapter.encode(audios)) == expected
    assert trainer.evaluate() == score([u.text for u, _ in trainer.dev], expected, None)
    assert not (tmp_path / "run").exists()  # building and evaluating wrote nothing


def test_progress_lines_without_a_terminal_show_rate_and_time_left():
    lines: list[str] = []
    budget = Progress("train", 1000, "step", lines.append, bar=True, budget_s=60.0, heartbeat_s=0.0)  # stderr is captured
    budget.update(1, utts=8, loss="2.000")
    assert lines[-1].startswith("train: 1/1000 step (") and "utts/s" in lines[-1] and lines[-1].endswith("loss=2.000")
    left = lines[-1].split(", ")[1].split(" left")[0]
    assert left in ("1m00s", "59s", "58s")  # the time budget, not 999 steps at the step rate
    quiet = Progress("dev", 4, "utt", lines.append, bar=False)  # the default 30 s heartbeat
    quiet.update(4)
    assert len(lines) == 1
