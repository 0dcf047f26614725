"""``train --eval-sets``: base vs best/ at the end of a run, decoded like the run's dev evaluation,
reusing what the run has, with progress, confidence intervals and the paired test."""

from __future__ import annotations

import json
import random
import shutil
import threading

import pytest
import torch

from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.evaluation import score_hypotheses, write_report
from asrtune.evaluation.scoring import compare_hypotheses
from asrtune.training import train
from asrtune.training.compare import compare_base_and_tuned
from asrtune.training.curves import curve_data, plot_learning_curve
from asrtune.training.progress import Progress

from test_guard import guard_manifest  # noqa: F401  (fixture)
from test_train import config, so16, tiny_whisper  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def terse_whisper(tiny_whisper, tmp_path_factory):
    """The tiny random Whisper made to end every transcript after one token: its decoder's last
    layer norm outputs a fixed vector that end-of-text (given a longer embedding along it) wins.
    A random model otherwise loops to its length limit and the loop fallback decodes each clip 25
    times more, which would make counting decodes slow."""
    from transformers import WhisperForConditionalGeneration

    out = tmp_path_factory.mktemp("terse") / "model"
    shutil.copytree(tiny_whisper, out)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper)
    eot = model.generation_config.eos_token_id
    with torch.no_grad():
        embeddings = model.model.decoder.embed_tokens.weight  # tied to the output projection
        noise = torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(0))
        direction = torch.nn.functional.normalize(noise, dim=0)
        embeddings[eot] = 2 * embeddings.norm(dim=1).max() * direction
        model.model.decoder.layer_norm.weight.zero_()
        model.model.decoder.layer_norm.bias.copy_(100 * direction)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def general(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("general") / "general.jsonl"
    write_manifest(path, load_manifest(next((shared_data / "ljspeech-32").glob("*.jsonl")))[:2], relative=False)
    return path


class DecodeCounter:
    """Clips decoded, by who decoded them (the run's own recogniser, or the comparison's base or
    tuned one, loaded through ``load_recognizer``) and how (cached encoder outputs or audio)."""

    def __init__(self, monkeypatch):
        import asrtune.training.compare
        from asrtune.inference.whisper_hf import WhisperHFRecognizer

        self.calls: list[tuple[str, str, int]] = []
        self.loaded: dict[int, str] = {}
        load = asrtune.training.compare.load_recognizer

        def loading(model, *a, **k):
            recognizer = load(model, *a, **k)
            self.loaded[id(recognizer)] = "tuned" if str(model).endswith("best") else "base"
            return recognizer

        monkeypatch.setattr(asrtune.training.compare, "load_recognizer", loading)  # the name the comparison calls
        for name, how in (("transcribe_encoded", "encoded"), ("transcribe", "audio")):
            monkeypatch.setattr(WhisperHFRecognizer, name, self._counting(getattr(WhisperHFRecognizer, name), how))

    def reset(self) -> None:
        self.calls.clear()
        self.loaded.clear()  # ids of freed recognisers may come back

    def _counting(self, method, how: str):
        def count(recognizer, clips, *a, **k):
            self.calls.append((self.loaded.get(id(recognizer), "run"), how, len(clips)))
            return method(recognizer, clips, *a, **k)
        return count

    def clips(self, who: str, how: str | None = None) -> int:
        return sum(n for w, h, n in self.calls if w == who and how in (None, h))


def _run(counter: DecodeCounter, model, so16, guard, general, out, **kw) -> tuple[list[dict], str]:
    """A one-step run with dev, guard and one eval set; its eval_results.json rows and its log."""
    counter.reset()
    options = dict(max_steps=1, dev=str(so16[1]), guard_dev=str(guard), eval_sets=[str(general)])
    train(config(model, so16, out, **{**options, **kw}))
    return json.loads((out / "eval_results.json").read_text()), (out / "train.log").read_text()


def test_comparison_reuses_the_step_0_base_hypotheses_and_decodes_from_the_encoder_cache(
        terse_whisper, so16, guard_manifest, general, tmp_path, monkeypatch):
    """A guard run scores the base on dev at step 0: the comparison decodes the base only on the
    eval set, both models from the run's encoder-output cache, in the dev evaluation's batches."""
    counter = DecodeCounter(monkeypatch)
    rows, log = _run(counter, terse_whisper, so16, guard_manifest, general, tmp_path / "a")
    assert counter.clips("run") == 14  # 4 dev + 3 guard clips at step 0 and at step 1
    assert counter.clips("base") == 2 and counter.clips("tuned") == 6  # base: the eval set only; tuned: dev + eval set
    assert counter.clips("base", "audio") == counter.clips("tuned", "audio") == 0  # the dev evaluation's path
    assert [r["set"] for r in rows] == [str(so16[1]), str(general)]
    assert [r["base_hypotheses"] for r in rows] == [{"step 0": 4}, {"decoded": 2}]
    assert "comparing base and tuned on 2 sets, 12 decodes: 4 base hypotheses the run already has (4 from step 0), " \
           "8 to decode from the run's encoder-output cache" in log
    assert "comparison: encoding 2 clips once into the encoder cache" in log
    step0 = next(json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
                 if '"step": 0' in line and '"dev_wer"' in line)
    assert rows[0]["base_wer"] == step0["dev_wer"]  # the step-0 score itself
    for row in rows:  # the paired test and both intervals, as asrtune eval --compare reports them
        assert row["base_ci"][0] <= row["base_wer"] <= row["base_ci"][1]
        assert row["tuned_ci"][0] <= row["tuned_wer"] <= row["tuned_ci"][1]
        assert row["delta_ci"][0] <= row["delta"] <= row["delta_ci"][1] and 0 < row["p_value"] <= 1
        assert row["paired"]["normalized"]["difference"] == pytest.approx(row["delta"])
    assert "95 % CI of change" in (tmp_path / "a" / "best" / "README.md").read_text()


@pytest.mark.slow  # two training runs
def test_a_later_run_decodes_no_base_clip_and_encodes_nothing_again(
        terse_whisper, so16, guard_manifest, general, tmp_path, monkeypatch):
    """Without a guard a run scores nothing at step 0: its comparison digests the base itself and
    finds both sets under the step-0 cache's keys (dev: the earlier run's step 0; the eval set:
    the earlier run's comparison), and the eval set in the encoder cache."""
    counter = DecodeCounter(monkeypatch)
    _run(counter, terse_whisper, so16, guard_manifest, general, tmp_path / "a")
    rows, log = _run(counter, terse_whisper, so16, guard_manifest, general, tmp_path / "c", guard_dev=None)
    assert counter.clips("run") == 4 and counter.clips("base") == 0 and counter.clips("tuned") == 6
    assert [r["base_hypotheses"] for r in rows] == [{"kept": 4}, {"kept": 2}]
    assert "6 base hypotheses the run already has (6 kept from an earlier run)" in log and "encoding 2 clips" not in log


def test_cache_off_decodes_from_audio_and_keeps_nothing(terse_whisper, so16, guard_manifest, general, tmp_path, monkeypatch):
    counter = DecodeCounter(monkeypatch)
    rows, _ = _run(counter, terse_whisper, so16, guard_manifest, general, tmp_path / "off", cache="off")
    assert counter.clips("base", "audio") == 2 and counter.clips("tuned", "audio") == 6  # dev still from step 0
    assert counter.clips("base", "encoded") == counter.clips("tuned", "encoded") == 0
    assert [r["base_hypotheses"] for r in rows] == [{"step 0": 4}, {"decoded": 2}]
    assert not (tmp_path / "enc_cache" / "step0-hypotheses").exists()


def test_progress_lines_name_the_set_rate_and_time_left(terse_whisper, general, so16, tmp_path):
    best = tmp_path / "run" / "best"
    shutil.copytree(terse_whisper, best)
    lines: list[str] = []
    cfg = config(terse_whisper, so16, tmp_path / "run", eval_sets=[str(general)])
    rows = compare_base_and_tuned(str(terse_whisper), best, [str(general)], cfg, "cpu", lines.append, heartbeat_s=0.01)
    assert lines[0].startswith("comparing base and tuned on 1 set, 4 decodes: 4 to decode from audio")
    beats = [line for line in lines if line.startswith("comparing: ")]
    label = f"{general.parent.name}/general.jsonl"
    assert any(line.endswith(f" left) set={label} model=base") for line in beats), beats
    assert any(line.endswith(f" left) set={label} model=tuned") for line in beats), beats
    assert all(" utts/s, " in line for line in beats)
    assert rows[0]["delta"] == 0.0 and rows[0]["p_value"] == 1.0  # the same weights: no change
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text()) == rows
    assert any(line.startswith("comparison: 4 clips decoded in ") for line in lines)


def test_keepalive_prints_while_one_unit_takes_long():
    """A batch longer than the heartbeat still gets its line (the keepalive thread's), no sleeping:
    the test waits for the line itself."""
    printed = threading.Event()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        printed.set()

    progress = Progress("comparing", 8, "utt", say, bar=False, heartbeat_s=0.01)
    progress.update(0, set="x")
    with progress.keepalive():
        assert printed.wait(timeout=10)  # no update() came, yet a line did
    assert lines[0].startswith("comparing: 0/8 utt (") and lines[0].endswith("set=x")


def test_compare_hypotheses_gives_the_numbers_of_eval_compare(shared_data, tmp_path):
    utts = load_manifest(shared_data / "speechocean762" / "test.jsonl")[:60]
    rng = random.Random(3)
    base = [" ".join(w for w in u.text.split() if rng.random() > 0.3) for u in utts]
    tuned = [" ".join(w for w in u.text.split() if rng.random() > 0.1) for u in utts]
    write_report(score_hypotheses(utts, base, n_resamples=300), tmp_path / "base")
    report = score_hypotheses(utts, tuned, compare=tmp_path / "base", n_resamples=300).summary
    mine = compare_hypotheses([u.text for u in utts], tuned, base, n_resamples=300)
    assert mine.normalized == report.compare.normalized
    assert mine.orthographic == report.compare.orthographic
    assert mine.this == report.confidence_interval
    assert (mine.improved, mine.worsened) == (report.compare.improved, report.compare.worsened)
    assert mine.normalized.difference < 0 and mine.normalized.p_value < 0.01


def test_learning_curve_shows_the_guard_and_the_chosen_merge(tmp_path):
    records = [
        {"event": "guard-base", "step": 0, "guard_wer": 0.10},
        {"step": 0, "dev_wer": 0.40, "best_dev_wer": 0.40, "guard_wer": 0.10, "guard_base_wer": 0.10, "guard_ok": True},
        {"step": 1, "loss": 2.0},
        {"step": 10, "dev_wer": 0.30, "best_dev_wer": 0.30, "guard_wer": 0.20, "guard_base_wer": 0.10, "guard_ok": False},
        {"event": "merge", "step": 10, "alpha": 0.25, "merge_dev_wer": 0.35, "guard_wer": 0.10, "guard_ok": True},
        {"event": "merge", "step": 10, "alpha": 0.5, "merge_dev_wer": 0.32, "guard_wer": 0.104, "guard_ok": True},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "asrtune_training.json").write_text(json.dumps({"step": 10, "merge_alpha": 0.5}))
    data = curve_data(tmp_path / "metrics.jsonl")
    assert data.dev == [(0, 40.0), (10, 30.0)] and data.guard == [(0, 10.0), (10, 20.0)] and data.guard_base == 10.0
    assert [m["alpha"] for m in data.merges] == [0.25, 0.5] and data.chosen_merge == 0.5
    assert plot_learning_curve(tmp_path / "metrics.jsonl", tmp_path / "curve.png").stat().st_size > 1000
