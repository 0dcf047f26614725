"""``--guard-dev``: a general-English dev set scored at every evaluation; ``best/`` only from
checkpoints whose guard WER stays within ``--guard-margin`` points of the base model's."""

from __future__ import annotations

import json

import pytest
import torch

from asrtune.errors import ConfigError
from asrtune.training import TrainConfig, train
from asrtune.training.config import looks_like_test_set
from asrtune.training.trainer import Trainer, guard_allows

from test_train import config, metrics, so16, tiny_whisper  # noqa: F401  (fixtures)

BASE_DEV, BASE_GUARD = 0.50, 0.10  # the scripted scores of the base model


@pytest.fixture()
def scripted_scores(monkeypatch):
    """Dev and guard WER from the live weights instead of decoding (a random model's decoding
    takes minutes here; tests/test_merge.py and the slow test below decode for real).

    Training steps score better on dev (0.50 - 0.10 x step) but forget (guard 0.13, 3 points over
    the base's 0.10), so the guard refuses every one. A merge is placed by where its weights lie
    on the line from the base to final/ (``a``): dev 0.50 - 0.20 a, guard 0.10 + 0.008 a, so
    within a 0.5-point margin up to a = 0.625 and the 0.5 merge is the best admissible model.
    """
    seen: dict[str, torch.Tensor] = {}

    def flat(weights) -> torch.Tensor:
        return torch.cat([w.detach().float().cpu().reshape(-1) for w in weights])

    def evaluate(self, pairs=None):
        guard = pairs is self.guard
        now = flat(p for p in self.adapter.model.parameters() if p.requires_grad)
        seen.setdefault("base", now)  # the first evaluation is the base model's (step 0)
        if not (self.run_dir / "final").exists():  # during training
            seen["final"] = now
            step = self.state.step
            return (BASE_GUARD if step == 0 else 0.13) if guard else BASE_DEV - 0.10 * step
        direction = seen["final"] - seen["base"]
        a = float((now - seen["base"]) @ direction / (direction @ direction))
        return BASE_GUARD + 0.008 * a if guard else BASE_DEV - 0.20 * a

    monkeypatch.setattr(Trainer, "evaluate", evaluate)


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
        train(config(tiny_whisper, so16, tmp_path / name, max_steps=1, dev=str(so16[1]), guard_dev=str(guard_manifest),
                     merge_alphas="none", **kw))  # merges after a refusal would decode dev and the guard again
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


def test_a_guard_refusal_makes_best_the_best_admissible_merge(tiny_whisper, so16, guard_manifest, tmp_path, scripted_scores):
    from asrtune.models.interpolate import read_weights

    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=2, batch_size=2, lr=1e-3, dev=str(so16[1]), eval_every=1, cache="off",
                          guard_dev=str(guard_manifest)))
    assert result.merge_reason == "guard refused" and [m["alpha"] for m in result.merges] == [0.25, 0.5, 0.75]
    assert [m["guard_ok"] for m in result.merges] == [True, True, False]
    assert result.best_merge_alpha == 0.5 and result.best_dev_wer == pytest.approx(0.40) and result.base_dev_wer == BASE_DEV
    assert result.best_guard_wer == pytest.approx(0.104) and result.guard_base_wer == BASE_GUARD
    assert (result.guard_refused_step, result.guard_refused_dev_wer) == (2, pytest.approx(0.30))  # final/ is still better on dev
    base, final, best = read_weights(tiny_whisper), read_weights(run / "final"), read_weights(run / "best")
    for name in ("model.decoder.layers.0.fc1.weight", "model.decoder.layer_norm.bias"):
        torch.testing.assert_close(best[name], base[name] + 0.5 * (final[name] - base[name]))
    assert json.loads((run / "best" / "asrtune_training.json").read_text())["merge_alpha"] == 0.5
    stored = json.loads((run / "result.json").read_text())
    assert stored["merges"] == result.merges and stored["merge_reason"] == "guard refused" and stored["best_merge_alpha"] == 0.5
    card = (run / "best" / "README.md").read_text()
    assert "0.5 x base + 0.5 x tuned" in card and "10.00 % -> 10.40 % (+0.40 points)" in card
    log = (run / "train.log").read_text().splitlines()
    done = next(i for i, line in enumerate(log) if " done: 2 steps" in line)
    tail = [line.split(" ", 1)[1] for line in log[done + 1:]]
    assert tail[0] == ("best/: the WiSE-FT merge 0.5 x base + 0.5 x final/ (alpha 0.5; final/ is step 2): dev WER 40.00 % "
                       "(base 50.00 %), guard WER 10.40 % (base 10.00 %, allowed up to 10.50 %)")
    assert tail[1] == ("final/: step 2: dev WER 30.00 %, guard WER 13.00 %, over the guard's margin: the better-on-dev "
                       "weights the guard refused are there")
    assert tail[2].startswith("WiSE-FT merges of final/ with the base (scored because the guard refused")
    assert tail[3].startswith("warning: the forgetting guard kept best/ at the WiSE-FT merge") and "final/ holds those weights" in tail[3]
    assert any("scoring WiSE-FT merges of final/ with the base model, alphas 0.25, 0.5, 0.75" in line for line in log)


def test_merge_alphas_none_keeps_the_base_and_says_so(tiny_whisper, so16, guard_manifest, tmp_path, scripted_scores):
    run = tmp_path / "run"
    cfg = config(tiny_whisper, so16, run, max_steps=1, batch_size=2, lr=1e-3, dev=str(so16[1]), eval_every=1, cache="off",
                 guard_dev=str(guard_manifest))
    cfg.update({"merge_alphas": ["none"]}, "command line")  # as `--merge-alphas none` parses
    result = train(cfg)
    assert result.merges == [] and result.merge_reason is None and result.best_step == 0 and result.best_merge_alpha is None
    log = (run / "train.log").read_text()
    assert "best/: the base model, unchanged: dev WER 50.00 % (base 50.00 %), guard WER 10.00 %" in log
    assert "final/: step 1: dev WER 40.00 %, guard WER 13.00 %, over the guard's margin" in log
    assert "--merge-alphas 0.25,0.5,0.75" in log  # the advice names the merges it did not try
    assert "the base model unchanged, as no tuned checkpoint beat it on the dev set within the forgetting guard" in (
        run / "best" / "README.md").read_text()


def test_merge_alphas_words_and_lists():
    def merge(value):
        return TrainConfig(model="m", train=["t.jsonl"], out="r", dev="d.jsonl").update({"merge_alphas": value}, "cli").validate()

    assert TrainConfig().merge_alphas == "auto" and merge(["auto"]).merge_alphas == "auto"
    assert merge(["none"]).merge_alphas == [] == merge("off").merge_alphas
    assert merge(["0.3", "0.6"]).merge_alphas == [0.3, 0.6] == merge("0.3,0.6").merge_alphas
    assert not merge(["auto"]).may_merge and merge(["0.3"]).may_merge  # auto merges only after a guard refusal
    with pytest.raises(ConfigError, match="--merge-alphas: give numbers between 0 and 1"):
        merge(["sometimes"])


@pytest.mark.slow  # real tiny.en: ~6 dev + guard decodes
def test_guarded_tiny_en_run_ends_with_an_admissible_best_or_says_why(so16, guard_manifest, tmp_path):
    """speechocean762 train with a zero-margin guard: best/ beats the base on dev within the
    guard (a step or a merge scored after a refusal), or is the base and the last lines say why."""
    from conftest import require_whisper_package

    require_whisper_package()
    run = tmp_path / "run"
    result = train(config("openai/whisper-tiny.en", so16, run, max_steps=4, lr=1e-4, dev=str(so16[1]), eval_every=2,
                          guard_dev=str(guard_manifest), guard_margin=0.0))
    log = (run / "train.log").read_text()
    tail = log.split(" done: ", 1)[1]
    print("\n" + tail)
    assert result.base_dev_wer is not None and guard_allows(result.best_guard_wer, result.guard_base_wer, 0.0)
    if result.guard_refused_step is not None:  # the guard refused better-on-dev weights: merges were scored
        assert result.merge_reason == "guard refused" and [m["alpha"] for m in result.merges] == [0.25, 0.5, 0.75]
        assert "warning: the forgetting guard kept best/" in tail
    if result.best_step == 0 and result.best_merge_alpha is None:
        assert f"best/: the base model, unchanged: dev WER {100 * result.base_dev_wer:.2f} %" in tail
        assert "warning: the forgetting guard kept best/" in tail or "no checkpoint scored lower than the base on dev" in tail
        evals = [m for m in metrics(run) if "dev_wer" in m and m["step"] > 0] + [
            {"dev_wer": m["merge_dev_wer"], "guard_ok": m["guard_ok"]} for m in metrics(run) if m.get("event") == "merge"]
        assert all(m["dev_wer"] >= result.base_dev_wer or not m["guard_ok"] for m in evals)  # nothing admissible beat it
    else:
        assert result.best_dev_wer < result.base_dev_wer and f"dev WER {100 * result.best_dev_wer:.2f} %" in tail
