"""Weight interpolation with the base model (WiSE-FT): ``asrtune merge`` and ``train --merge-alphas``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from asrtune.cli import main
from asrtune.errors import AsrtuneError, ConfigError
from asrtune.models.interpolate import MERGE_INFO, interpolate_weights, read_weights
from asrtune.training import train

from test_train import config, metrics, so16, tiny_whisper  # noqa: F401  (fixtures)


def test_interpolation_is_a_straight_line_between_the_models():
    base = {"w": torch.tensor([0.0, 2.0]), "ids": torch.tensor([1, 2])}
    tuned = {"w": torch.tensor([4.0, -2.0]), "ids": torch.tensor([1, 2])}
    assert interpolate_weights(base, tuned, 0.0)["w"].tolist() == [0.0, 2.0]
    assert interpolate_weights(base, tuned, 1.0)["w"].tolist() == [4.0, -2.0]
    assert interpolate_weights(base, tuned, 0.75)["w"].tolist() == [3.0, -1.0]
    assert interpolate_weights(base, tuned, 0.5)["ids"].dtype == torch.int64  # integer buffers are copied
    with pytest.raises(AsrtuneError, match="different weights"):
        interpolate_weights({"v": torch.zeros(2)}, tuned, 0.5)
    with pytest.raises(AsrtuneError, match="shape"):
        interpolate_weights({"w": torch.zeros(3), "ids": base["ids"]}, tuned, 0.5)


@pytest.fixture()
def tuned_folder(tiny_whisper, tmp_path):
    """A copy of the random Whisper with every weight shifted, as a run's final/ would be."""
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    out = tmp_path / "tuned"
    shutil.copytree(tiny_whisper, out)
    model.save_pretrained(out)
    (out / "asrtune_training.json").write_text(json.dumps({"base_model": str(tiny_whisper)}))
    (out / "README.md").write_text("card of the tuned model")
    return out


def test_merge_command_writes_the_interpolated_model(tiny_whisper, tuned_folder, tmp_path):
    from asrtune.models import load_whisper, resolve_model

    out = tmp_path / "merged"
    assert main(["merge", str(tuned_folder), "--alpha", "0.25", "--out", str(out)]) == 0  # base from asrtune_training.json
    base, tuned, merged = read_weights(tiny_whisper), read_weights(tuned_folder), read_weights(out)
    for name, value in merged.items():
        torch.testing.assert_close(value, base[name] + 0.25 * (tuned[name] - base[name]))
    info = json.loads((out / MERGE_INFO).read_text())
    assert info["alpha"] == 0.25 and info["base_model"] == str(tiny_whisper)
    assert not (out / "README.md").exists()  # the tuned model's card does not describe these weights
    model, _ = load_whisper(resolve_model(str(out)))  # a complete model folder
    assert model.generation_config.alignment_heads == load_whisper(resolve_model(str(tuned_folder)))[0].generation_config.alignment_heads


def test_merge_command_bad_input(tuned_folder, tiny_whisper, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["merge", str(tuned_folder), "--alpha", "1.5", "--out", str(out)]) == 2
    assert "--alpha must be between 0" in capsys.readouterr().err and not out.exists()
    (tuned_folder / "asrtune_training.json").unlink()
    assert main(["merge", str(tuned_folder), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "give --base" in capsys.readouterr().err and not out.exists()
    assert main(["merge", str(tuned_folder), "--base", str(tuned_folder), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "same model folder" in capsys.readouterr().err
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["merge", str(tuned_folder), "--base", str(tiny_whisper), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").exists()


def test_merge_alphas_are_validated(tiny_whisper, so16, tmp_path):
    with pytest.raises(ConfigError, match="strictly between 0"):
        config(tiny_whisper, so16, tmp_path / "r", dev=str(so16[1]), merge_alphas=[0.5, 1.0]).validate()
    with pytest.raises(ConfigError, match="needs a --dev"):
        config(tiny_whisper, so16, tmp_path / "r", merge_alphas=[0.5]).validate()


@pytest.mark.slow
def test_train_scores_merges_and_keeps_the_best_on_dev(tiny_whisper, so16, tmp_path):
    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=4, lr=5e-3, dev=str(so16[1]), eval_every=2,
                          merge_alphas=[0.3, 0.7]))
    merges = [m for m in metrics(run) if m.get("event") == "merge"]
    assert [m["alpha"] for m in merges] == [0.3, 0.7] == [m["alpha"] for m in result.merges]
    checkpoint_best = min(m["dev_wer"] for m in metrics(run) if "dev_wer" in m)
    base, final, best = read_weights(tiny_whisper), read_weights(run / "final"), read_weights(run / "best")
    best_info = json.loads((run / "best" / "asrtune_training.json").read_text())
    if result.best_merge_alpha is None:  # no interpolation beat the best checkpoint on dev
        assert all(m["merge_dev_wer"] >= checkpoint_best for m in merges)
        assert result.best_dev_wer == checkpoint_best and "merge_alpha" not in best_info
        assert "interpolated" not in (run / "best" / "README.md").read_text()
    else:
        chosen = min(merges, key=lambda m: m["merge_dev_wer"])
        assert result.best_merge_alpha == chosen["alpha"] == best_info["merge_alpha"]
        assert result.best_dev_wer == chosen["merge_dev_wer"] < checkpoint_best
        a = result.best_merge_alpha
        assert f"{1 - a:g} x base + {a:g} x tuned" in (run / "best" / "README.md").read_text()
        for name in ("model.decoder.layers.0.fc1.weight", "model.decoder.layer_norm.bias"):
            torch.testing.assert_close(best[name], base[name] + a * (final[name] - base[name]))
    assert not torch.equal(final["model.decoder.layers.0.fc1.weight"], base["model.decoder.layers.0.fc1.weight"])
    saved = json.loads((run / "result.json").read_text())
    assert saved["merges"] == result.merges and saved["best_merge_alpha"] == result.best_merge_alpha
