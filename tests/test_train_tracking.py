"""A run's tracker and model cards: what ``asrtune train`` writes is read back with each tool's reader."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.training import train

from conftest import REPO_ROOT
from test_train import config, metrics, so16, tiny_whisper  # noqa: F401  (fixtures)

# Runs python with the tracking extra's packages unimportable, as on a base install.
WITHOUT_TRACKING = """
import importlib.abc, runpy, sys

class BlockTracking(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorboard", "mlflow"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockTracking())
sys.argv = ["asrtune", *sys.argv[1:]]
runpy.run_module("asrtune", run_name="__main__")
"""


@pytest.mark.slow
def test_report_to_tensorboard_logs_curves_wers_and_dev_examples(tiny_whisper, so16, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    run = tmp_path / "run"
    train(config(tiny_whisper, so16, run, max_steps=4, dev=str(so16[1]), eval_every=2, report_to="tensorboard"))
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    steps = [m for m in metrics(run) if "loss" in m and "event" not in m]
    evals = [m for m in metrics(run) if "dev_wer" in m]
    for key in ("loss", "lr", "grad_norm", "utts_per_s"):  # each log step, as in metrics.jsonl
        assert [e.step for e in acc.Scalars(key)] == [1, 2, 3, 4], key
        assert [e.value for e in acc.Scalars(key)] == pytest.approx([m[key] for m in steps], rel=1e-6), key
    assert [e.step for e in acc.Scalars("dev_wer")] == [2, 4] and "best_dev_wer" in acc.Tags()["scalars"]
    assert [e.value for e in acc.Scalars("dev_wer")] == pytest.approx([m["dev_wer"] for m in evals], rel=1e-6)
    tables = {e.step: tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in acc.Tensors("dev_examples/text_summary")}
    assert sorted(tables) == [2, 4]
    refs = [u.text for u in load_manifest(so16[1])]
    lines = tables[4].splitlines()
    assert lines[0] == "| reference | hypothesis |" and len(lines) == 2 + len(refs)  # 4 dev clips, under the limit of 5
    assert all(line.startswith(f"| {' '.join(ref.split())} | ") for line, ref in zip(lines[2:], refs))


class Interrupted(Exception):
    """Raised from ``on_step`` to stop a run as a failure would."""


def test_a_failing_run_closes_its_mlflow_run_as_failed(tiny_whisper, so16, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")

    def stop_at_step_2(trainer) -> None:
        if trainer.state.step == 2:
            raise Interrupted

    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        train(config(tiny_whisper, so16, run, max_steps=4, report_to="mlflow"), on_step=stop_at_step_2)
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (record,) = client.search_runs([client.get_experiment_by_name("asrtune").experiment_id])
    assert record.info.run_name == "run" and record.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(record.info.run_id, "loss")] == [1, 2]
    assert record.data.params["report_to"] == "mlflow" and record.data.params["max_steps"] == "4"


@pytest.mark.slow
def test_model_cards_in_best_final_and_ct2_export_carry_the_eval_sets(tiny_whisper, so16, tmp_path, shared_data):
    pytest.importorskip("huggingface_hub")
    pytest.importorskip("ctranslate2")
    from huggingface_hub import ModelCard

    from asrtune.models import hf_to_ct2

    general = tmp_path / "general.jsonl"
    write_manifest(general, load_manifest(next((shared_data / "ljspeech-32").glob("*.jsonl")))[:4], relative=False)
    run = tmp_path / "run"
    # no dev set: best/ is final/, so both cards carry the eval-set results
    result = train(config(tiny_whisper, so16, run, max_steps=1, eval_sets=[str(general)], export_ct2=True))
    expected = [(f"{general.parent.name}/general", round(100 * result.eval_results[0]["tuned_wer"], 2))]
    for folder, library in (("best", "transformers"), ("final", "transformers"), ("best-ct2", "ctranslate2")):
        card = ModelCard.load(run / folder / "README.md")
        assert card.data.base_model == str(tiny_whisper) and card.data.library_name == library, folder
        assert [(r.dataset_name, r.metric_value) for r in card.data.eval_results] == expected, folder
        assert "| train | " in card.text and "| 16 |" in card.text  # the 16 training clips, from the manifest stats
    assert "(final checkpoint)" in ModelCard.load(run / "final" / "README.md").text
    assert "```bash\nasrtune transcribe recordings/ --model path/to/this/model --engine ct2" in (run / "best-ct2" / "README.md").read_text()
    # converting a folder with a card keeps the card
    hf_to_ct2(run / "final", tmp_path / "final-ct2")
    assert (tmp_path / "final-ct2" / "README.md").read_text() == (run / "final" / "README.md").read_text()


@pytest.mark.slow
def test_best_card_mid_run_carries_the_dev_wer_that_picked_it(tiny_whisper, so16, tmp_path):
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import ModelCard

    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=1, dev=str(so16[1])))
    best = ModelCard.load(run / "best" / "README.md")
    assert [(r.dataset_name, r.metric_value) for r in best.data.eval_results] == [
        (f"{so16[1].parent.name}/dev", round(100 * result.best_dev_wer, 2))]
    assert "(best checkpoint, step 1)" in best.text and "at step 1, the evaluation that picked this checkpoint" in best.text
    final = ModelCard.load(run / "final" / "README.md")  # no eval sets: final/ claims no numbers
    assert final.data.eval_results is None and "No evaluation sets were scored in this run." in final.text


def test_report_to_without_the_library_is_one_line_and_writes_nothing(tiny_whisper, so16, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", WITHOUT_TRACKING, "train", "--model", str(tiny_whisper), "--train", str(so16[0]),
           "--out", str(run), "--report-to", "tensorboard", "--max-steps", "1", "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2, p.stderr[-2000:]
    (line,) = p.stderr.strip().splitlines()
    assert "--report-to tensorboard needs the tensorboard package" in line and "pip install 'asrtune[tracking]'" in line
    assert not run.exists()
