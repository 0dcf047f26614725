"""The model folders a run writes (``best/``, ``final/``, ``best-FORMAT/``), each with its
model card (``README.md``, ``model_card.py``) and ``asrtune_training.json`` (the step, the dev
and guard WER, the base model)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from asrtune.data.stats import manifest_stats
from asrtune.fileio import atomic_directory, write_json_atomic
from asrtune.text.normalizers import normalizer_for_language
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.config import TrainConfig
from asrtune.training.export import export_model
from asrtune.training.model_card import CARD_EXPORT_NAMES, ModelCardInfo, write_model_card
from asrtune.training.state import TrainState

TRAINING_INFO_FILE = "asrtune_training.json"


class ModelFolders:
    """Saves the adapter's model into ``run_dir/NAME`` (atomically) and writes the cards."""

    def __init__(self, config: TrainConfig, run_dir: Path, adapter: ModelAdapter, family: str,
                 say: Callable[[str], None]):
        self.config, self.run_dir, self.adapter, self.family, self.say = config, run_dir, adapter, family, say
        self.data_stats: dict[str, dict[str, Any]] | None = None  # manifest -> ManifestStats.to_dict(), for the cards

    def save(self, name: str, info: dict[str, Any], state: TrainState, stopped: str | None) -> None:
        """The model as it is now into ``run_dir/name``, with its card saying what the run knows so far."""
        with atomic_directory(self.run_dir / name) as tmp:
            self.adapter.save(tmp)
            write_json_atomic(tmp / TRAINING_INFO_FILE, {"base_model": self.config.model, **info})
            self.write_card(tmp, name, self.card_result(state, stopped))

    def write_card(self, model_dir: Path, checkpoint: str, result: dict[str, Any], export: str = "transformers") -> None:
        """The model card (``README.md``) of a model folder this run wrote."""
        info = ModelCardInfo.from_run(asdict(self.config), result, self.stats(), checkpoint=checkpoint,
                                      export=export, family=self.family,
                                      normalizer=normalizer_for_language(self.config.language))
        write_model_card(model_dir, info)

    def card_result(self, state: TrainState, stopped: str | None) -> dict[str, Any]:
        """What a card says of the run so far (``best/`` is saved mid-run, before any RunResult)."""
        trainable, total = self.adapter.trainable_parameter_count()
        return {"steps": state.step, "best_step": state.best_step, "best_dev_wer": state.best_wer, "stopped": stopped,
                "best_merge_alpha": state.best_merge_alpha, "base_dev_wer": state.base_dev_wer,
                "trainable_parameters": trainable, "total_parameters": total}

    def stats(self) -> dict[str, dict[str, Any]]:
        """Size of the train and dev manifests (read once per run, shared by every card)."""
        if self.data_stats is None:
            paths = [*self.config.train, *([self.config.dev] if self.config.dev else [])]
            self.data_stats = {p: manifest_stats(p).to_dict() for p in paths}
        return self.data_stats

    def export(self, fmt: str, result: dict[str, Any]) -> None:
        """``--export``: best/ in ``fmt`` at RUN_DIR/best-FORMAT (the format's default weight type),
        with the run's model card for that runtime."""
        dst = self.run_dir / f"best-{fmt}"
        self.say(f"exporting best/ to {fmt} in {dst}")
        exported = export_model(self.run_dir / "best", fmt, dst, force=True,
                                write_card=lambda folder, _: self.write_card(folder, "best", result,
                                                                            export=CARD_EXPORT_NAMES[fmt]))
        self.say(f"exported {fmt} ({exported.quantization}, {exported.size_bytes / 1e6:.1f} MB)")
