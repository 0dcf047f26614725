"""The parts the training loop is made of, each on its own: the merge plan (finisher.py), the
evaluator's reuse of step-0 hypotheses (evaluator.py), best/ selection with the guard
(selection.py), batches and rank slices (batches.py), the cache decision (cache_setup.py) and
the model folders (model_folders.py). End-to-end runs are in test_train*.py."""

from __future__ import annotations

import json

import pytest
import torch

from asrtune.training.batches import PAIRS_KEY, Batches, Loader
from asrtune.training.cache_setup import why_not_cached
from asrtune.training.compare import score
from asrtune.training.distributed import Processes
from asrtune.training.evaluator import Evaluator
from asrtune.training.finisher import guard_refused_better, may_train, merge_plan, refusal_merge_note, trainable_weights
from asrtune.training.model_folders import TRAINING_INFO_FILE, ModelFolders
from asrtune.training.outcome import DEFAULT_MERGE_ALPHAS, MERGE_AFTER_REFUSAL, MERGE_REQUESTED
from asrtune.training.run_log import RunLog
from asrtune.training.selection import Selection
from asrtune.training.state import TrainState
from asrtune.training.trainer import Trainer
from asrtune.training.untuned_eval import save_hypotheses

from test_train import config, so16, tiny_whisper  # noqa: F401  (fixtures)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def loaded(tiny_whisper, so16, tmp_path_factory):
    """A Trainer with its model and data loaded (nothing written): the parts' collaborators."""
    out = tmp_path_factory.mktemp("parts") / "run"
    trainer = Trainer(config(tiny_whisper, so16, out, dev=str(so16[1]), eval_batch_size=4))
    trainer.build_model()
    trainer.load_data()
    return trainer


# --- finisher.py: which merges a run scores -------------------------------------------------------


def test_merge_plan_lists_auto_and_none():
    refused = TrainState(best_wer=0.30, best_step=0, guard_refused_step=8, guard_refused_wer=0.20)
    kept = TrainState(best_wer=0.20, best_step=8, guard_refused_step=4, guard_refused_wer=0.25)
    listed = type("C", (), {"merge_alphas": [0.3, 0.6]})()
    auto = type("C", (), {"merge_alphas": "auto"})()
    none = type("C", (), {"merge_alphas": []})()
    assert merge_plan(listed, kept, has_guard=False) == ([0.3, 0.6], MERGE_REQUESTED)
    assert merge_plan(none, refused, has_guard=True) == ([], None)
    assert merge_plan(auto, refused, has_guard=True) == (list(DEFAULT_MERGE_ALPHAS), MERGE_AFTER_REFUSAL)
    assert merge_plan(auto, kept, has_guard=True) == ([], None)  # the refused checkpoint was no better
    assert merge_plan(auto, refused, has_guard=False) == ([], None)
    assert guard_refused_better(refused) and not guard_refused_better(kept) and not guard_refused_better(TrainState())
    assert "step 8 reached 20.00 %" in refusal_merge_note(refused)


# --- evaluator.py: step-0 hypotheses are decoded once ----------------------------------------------


def evaluator_of(loaded, sets, said) -> Evaluator:
    return Evaluator(loaded.config, loaded.adapter, loaded.resolved, CPU, sets, Loader(0).map, said.append)


def test_kept_step_0_hypotheses_are_scored_without_decoding(loaded):
    said: list[str] = []
    ev = evaluator_of(loaded, (loaded.dev, []), said)
    utts = [u for u, _ in loaded.dev]
    kept = [u.text for u in utts[:-1]] + ["something else entirely"]  # as a previous run of these weights left them
    save_hypotheses(ev.hypotheses_root, ev.untuned_key(utts, None), kept)
    ev.decode = None  # a reuse must not decode (calling it would fail)
    wer = ev.wer(loaded.dev, 0, None)
    assert 0 < wer < 1 and wer == score([u.text for u in utts], kept, loaded.config.language)
    assert ev.dev_hyps == kept and ev.step_zero.recall(utts) == kept  # kept clip by clip for --eval-sets
    assert said == [f"step 0: the starting model's hypotheses of these {len(utts)} utterances came from the cache "
                    "(same weights, audio and decoding code)"]
    other = ev.untuned_key(utts, None)
    assert ev.untuned_key(utts[:1], None) != other  # the key names the clips


@pytest.mark.slow
def test_step_0_hypotheses_are_decoded_once(loaded):
    said: list[str] = []
    one = loaded.dev[:1]  # one clip: a random model decodes 32 tokens of it, with temperature fallback
    first = evaluator_of(loaded, (one, []), said)
    decoded = first.wer(one, 0, None)
    assert first.step_zero.weights and len(first.dev_hyps) == 1 and not said
    second, decodes = evaluator_of(loaded, (one, []), said), []
    real_decode = second.decode
    second.decode = lambda pairs, cache: decodes.append(len(pairs)) or real_decode(pairs, cache)
    assert second.wer(one, 0, None) == decoded and second.dev_hyps == first.dev_hyps and decodes == []
    assert len(said) == 1 and second.step_zero.recall([u for u, _ in one]) == first.dev_hyps


# --- selection.py: best/ within the guard margin ---------------------------------------------------


def test_selection_keeps_best_within_the_guard_margin(loaded, tmp_path):
    scores = {"dev": [0.50, 0.40, 0.30], "guard": [0.10, 0.103, 0.20]}  # the last one forgets too much

    def score(pairs):
        return scores["guard" if pairs is guard else "dev"].pop(0)

    guard = loaded.dev[:2]
    cfg = type(loaded.config)(**{**loaded.config.to_dict(), "guard_dev": loaded.config.dev})
    log = RunLog(tmp_path, main=True)
    folders = ModelFolders(cfg, tmp_path, loaded.adapter, "whisper", log.say)
    sel = Selection(cfg, (loaded.dev, guard), score, folders, log, Processes(0, 1, CPU), lambda: [])
    s = TrainState()
    sel.evaluate_guard_base(s)  # the base: guard 0.10, dev 0.50, saved as best/
    assert (s.guard_base_wer, s.base_dev_wer, s.best_step) == (0.10, 0.50, 0)
    s.step = 5
    sel.evaluate_dev(s)  # guard 0.103: within the 0.5-point margin
    assert (s.best_wer, s.best_step, s.evals_since_best) == (0.40, 5, 0)
    s.step = 10
    sel.evaluate_dev(s)  # dev better, guard 10 points over: refused
    assert (s.best_wer, s.best_step, s.evals_since_best) == (0.40, 5, 1)
    assert (s.guard_refused_step, s.guard_refused_wer, sel.guard_last) == (10, 0.30, 0.20)
    info = json.loads((tmp_path / "best" / TRAINING_INFO_FILE).read_text())
    assert info["step"] == 5 and info["guard_wer"] == 0.103
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("guard_ok") for r in records] == [None, True, True, False]


# --- model_folders.py -------------------------------------------------------------------------------


def test_a_saved_folder_has_the_model_its_card_and_training_info(loaded, tmp_path):
    folders = ModelFolders(loaded.config, tmp_path, loaded.adapter, "whisper", lambda _: None)
    folders.save("final", {"step": 3, "dev_wer": 0.25}, TrainState(step=3, best_step=2, best_wer=0.2), "max-steps")
    final = tmp_path / "final"
    assert json.loads((final / TRAINING_INFO_FILE).read_text()) == {"base_model": loaded.config.model, "step": 3, "dev_wer": 0.25}
    assert (final / "config.json").is_file() and "max-steps" in (final / "README.md").read_text()
    assert list(folders.stats()) == [*loaded.config.train, loaded.config.dev]  # read once, kept


# --- batches.py and cache_setup.py -------------------------------------------------------------------


def test_ranks_take_disjoint_equal_slices(loaded):
    batches = {rank: Batches(loaded.config, loaded.adapter, loaded.data.sources, None, Processes(rank, 2, CPU), Loader(0))
               for rank in (0, 1)}
    plan = batches[0].plan(0)
    assert plan == batches[1].plan(0) and batches[0].usable(plan[:15]) == 14  # every rank gets as many
    taken = {rank: b.take(plan, 0) for rank, b in batches.items()}
    assert taken[0][1] == taken[1][1] == loaded.config.batch_size * 2  # the position moves by the global batch
    assert not set(taken[0][0]) & set(taken[1][0]) and len(taken[0][0]) == loaded.config.batch_size


def test_a_micro_batch_holds_tensors_and_its_pairs(loaded):
    batches = Batches(loaded.config, loaded.adapter, loaded.data.sources, None, Processes(0, 1, CPU), Loader(2))
    batch = batches.make([(0, 0), (0, 1)], micro_step=0, epoch=0, cache=None, lazily=False)
    assert batch[PAIRS_KEY] == [loaded.data.sources[0][0], loaded.data.sources[0][1]]
    assert all(isinstance(v, torch.Tensor) for k, v in batch.items() if k != PAIRS_KEY)
    again = batches.make([(0, 0), (0, 1)], micro_step=0, epoch=0, cache=None, lazily=False)
    assert all(torch.equal(batch[k], again[k]) for k in batch if k != PAIRS_KEY)  # same seeds, same batch


def test_why_a_run_decodes_from_audio(loaded):
    cfg, adapter = loaded.config, loaded.adapter
    assert cfg.freeze == "encoder" and why_not_cached(cfg, adapter, None) is None
    assert why_not_cached(cfg, adapter, 0) == "unfrozen from step 0"
    noisy = type(cfg)(**{**cfg.to_dict(), "noise_snr_db": 10.0})
    assert why_not_cached(noisy, adapter, None) == "augmentation"
    assert why_not_cached(type(cfg)(**{**cfg.to_dict(), "cache": "off"}), adapter, None) == ""


def test_may_train_includes_the_layers_that_will_open(loaded):
    adapter = loaded.adapter
    trainable = {n for n, p in adapter.model.named_parameters() if p.requires_grad}
    opening = may_train(adapter, 1)
    assert trainable < set(opening) and set(may_train(adapter, 0)) == trainable
    weights = trainable_weights(adapter, 1)
    assert set(weights) == set(opening) and all(w.device.type == "cpu" for w in weights.values())
