"""``--guard-dev``: a general-English dev set scored at every evaluation; ``best/`` only from
checkpoints whose guard WER stays within ``--guard-margin`` points of the base model's."""

from __future__ import annotations

import json

import pytest

from asrtune.errors import ConfigError
from asrtune.training import train
from asrtune.training.config import looks_like_test_set
from asrtune.training.trainer import guard_allows

from test_train import config, metrics, so16, tiny_whisper  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def guard_manifest(shared_data, tmp_path_factory):
    """Three librivox-cmu-11 clips (general English, a dev set - not one of the forgetting test sets)."""
    from asrtune.data.manifest import load_manifest, write_manifest

    path = tmp_path_factory.mktemp("guard") / "guard.jsonl"
    write_manifest(path, load_manifest(shared_data / "librivox-cmu-11" / "manifest.jsonl")[:3], relative=False)
    return path


def test_guard_margin_is_absolute_percentage_points():
    assert guard_allows(0.105, 0.100, 0.5) and not guard_allows(0.1051, 0.100, 0.5)
    assert guard_allows(0.05, 0.10, 0.0)  # a better guard WER is always allowed
    assert not guard_allows(0.1001, 0.100, 0.0)


def test_test_sets_are_refused_as_guards(tiny_whisper, so16, guard_manifest, tmp_path):
    def cfg(**kw):
        return config(tiny_whisper, so16, tmp_path / "r", dev=str(so16[1]), **kw)

    with pytest.raises(ConfigError, match="also a --eval-sets manifest"):
        cfg(guard_dev=str(guard_manifest), eval_sets=[str(guard_manifest)]).validate()
    with pytest.raises(ConfigError, match="named like a test set"):
        cfg(guard_dev="data/librispeech-test-clean-40/manifest.jsonl").validate()
    with pytest.raises(ConfigError, match="--guard-margin"):
        cfg(guard_dev=str(guard_manifest), guard_margin=-1).validate()
    with pytest.raises(ConfigError, match="needs a --dev"):
        config(tiny_whisper, so16, tmp_path / "r", guard_dev=str(guard_manifest)).validate()
    assert looks_like_test_set("x/test-other.jsonl") and not looks_like_test_set("x/latest/dev.jsonl")


@pytest.mark.slow  # three runs that decode a random model (it loops: the fallback decodes again)
def test_step0_hypotheses_are_reused_across_runs(tiny_whisper, so16, guard_manifest, tmp_path, monkeypatch):
    """The starting model's dev and guard hypotheses (step 0, with a guard) are decoded once per
    (weights, utterances, decoding code): a second run reads them back and scores the same step-0
    WERs; other weights decode afresh."""
    from asrtune.inference.whisper_hf import WhisperHFRecognizer

    decoded: list[int] = []

    def counting(method):  # from cached encoder outputs or from audio (--cache off)
        def count(self, clips, *a, **k):
            decoded.append(len(clips))
            return method(self, clips, *a, **k)
        return count

    for name in ("transcribe_encoded", "transcribe"):
        monkeypatch.setattr(WhisperHFRecognizer, name, counting(getattr(WhisperHFRecognizer, name)))

    def run(name: str, **kw) -> tuple[float, float]:
        decoded.clear()
        train(config(tiny_whisper, so16, tmp_path / name, max_steps=1, dev=str(so16[1]), guard_dev=str(guard_manifest), **kw))
        step0 = next(m for m in metrics(tmp_path / name) if m.get("step") == 0 and "dev_wer" in m)
        return step0["dev_wer"], step0["guard_wer"]

    first = run("a")
    assert sum(decoded) == 14  # 4 dev + 3 guard utterances at step 0 and again at step 1
    assert run("b") == first and sum(decoded) == 7  # step 1 only
    log = (tmp_path / "b" / "train.log").read_text()
    assert "hypotheses of these 4 utterances came from the cache" in log and "of these 3 utterances" in log
    run("lora", adapter="lora")  # LoRA modules change the weights' digest (not the outputs): no reuse
    assert sum(decoded) == 14
    run("off", cache="off")  # --cache off: no reuse (and decoded from audio: the WERs may differ in the last bits)
    assert sum(decoded) == 14


@pytest.mark.slow  # five dev + guard decodes of a random model: minutes on 2 shared CPU cores
def test_best_is_chosen_among_guarded_checkpoints(tiny_whisper, so16, guard_manifest, tmp_path):
    run = tmp_path / "run"
    # a random model and a large learning rate: guard WER moves at every evaluation, so a zero
    # margin makes some checkpoints ineligible; the split cache serves dev and guard decoding
    result = train(config(tiny_whisper, so16, run, max_steps=4, lr=3e-3, dev=str(so16[1]), eval_every=1,
                          guard_dev=str(guard_manifest), guard_margin=0.0, train_encoder_top=1))
    records = metrics(run)
    base = [m for m in records if m.get("event") == "guard-base"]
    evals = [m for m in records if "dev_wer" in m]
    assert len(base) == 1 and base[0]["step"] == 0 and result.guard_base_wer == base[0]["guard_wer"]
    assert [m["step"] for m in evals] == [0, 1, 2, 3, 4]  # the base model is the first candidate
    eligible = [m for m in evals if m["guard_wer"] <= base[0]["guard_wer"] + 1e-12]
    assert all(m["guard_ok"] == (m in eligible) for m in evals)
    best = min(eligible, key=lambda m: (m["dev_wer"], m["step"]))
    assert result.best_step == best["step"] and result.best_guard_wer == best["guard_wer"]
    saved = json.loads((run / "best" / "asrtune_training.json").read_text())
    assert saved["step"] == best["step"] and saved["guard_wer"] == best["guard_wer"]
    stored = json.loads((run / "result.json").read_text())
    assert stored["guard_base_wer"] == result.guard_base_wer and "final_guard_wer" in stored
    assert "guard WER" in (run / "train.log").read_text()
    # the best dev WER the guard kept out of best/ is reported (with a warning) when it beat best/
    running, refused = None, []
    for m in evals:
        if running is None or m["dev_wer"] < running:
            if m["guard_ok"]:
                running = m["dev_wer"]
            else:
                refused.append(m)
    kept_out = min((m for m in refused if m["dev_wer"] < result.best_dev_wer), key=lambda m: m["dev_wer"], default=None)
    assert result.guard_refused_step == (kept_out["step"] if kept_out else None)
    assert ("the forgetting guard kept best/" in (run / "train.log").read_text()) == (kept_out is not None)
