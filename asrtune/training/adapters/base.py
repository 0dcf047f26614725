"""The model-adapter interface: everything model-specific the one :class:`Trainer` needs.

The trainer (``asrtune/training/trainer.py``) is a single, model-agnostic loop: it reads
manifests, orders and batches utterances, runs the optimiser, schedules the learning rate,
evaluates, checkpoints and exports. Everything that depends on the model family (Whisper
seq2seq, wav2vec2-family CTC) lives behind a :class:`ModelAdapter`:

==========================  ==================================================================
what the trainer asks       what the adapter does
==========================  ==================================================================
``check_config``            refuse options this family ignores, before anything is loaded or written
``from_resolved``           load weights + processor for a ``ResolvedModel`` and a ``TrainConfig``
``FREEZE_PRESETS``          the family's named freezing presets (name -> one-line description)
``apply_freeze``            set ``requires_grad`` for a preset (+ optional LoRA, see config.adapter)
``unfreeze_top_layers``     gradual unfreezing: make the top K encoder layers trainable
``parameter_groups``        optimiser groups (e.g. unfrozen encoder layers at ``encoder_lr``)
``skip_reason``             why an utterance cannot be trained on (too long, too many tokens)
``prepare_training``        see every training pair once (prompt context) and add examples (no-speech clips)
``make_example``            one utterance -> tensors-to-be (features or cached encoder output + labels)
``collate``                 a list of examples -> one padded batch of tensors
``loss``                    a batch -> scalar loss (through the possibly DDP-wrapped module)
``loss_weight``             how many terms that loss averages (tokens, utterances): weights accumulation
``logits``                  a batch -> next-token logits, also of a frozen base copy (``--distill-base``; Whisper)
``augment_batch``           input-side augmentation on a batch's features (SpecAugment); no-op default
``recognizer``              the ``asrtune.inference`` recogniser ``asrtune eval`` uses, on the live model (dev WER)
``save``                    a complete model folder loadable by ``asrtune.models.resolve_model``
==========================  ==================================================================

Encoder-output cache (optional)
-------------------------------
When the adapter's expensive input-side part (Whisper's encoder) is frozen and no input
augmentation is on, the trainer runs it once per utterance and stores the result on disk
(``asrtune/training/encoder_cache.py``). An adapter opts in by returning a shape from
``cache_shape()`` and implementing ``encode`` and ``cache_fingerprint``; ``make_example`` then
receives ``encoded=`` (a float16 array) instead of ``audio=``. Adapters that cannot cache
(CTC fine-tunes its encoder) keep the defaults, which say "no cache".

Example (the trainer's view, simplified)::

    adapter = WhisperAdapter.from_resolved(resolve_model("openai/whisper-tiny.en"), config)
    adapter.apply_freeze("encoder")
    opt = torch.optim.AdamW(adapter.parameter_groups(config))
    batch = adapter.collate([adapter.make_example(u, audio=load_audio(u.audio_filepath)) for u in utts])
    loss = adapter.loss(adapter.model, batch); loss.backward(); opt.step()
    adapter.save(run_dir / "best")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.models.whisper_spec import WINDOW_SECONDS

if TYPE_CHECKING:  # imported for type names only: keeps this module light
    from asrtune.data.manifest import Utterance
    from asrtune.inference.base import Recognizer
    from asrtune.training.config import TrainConfig

MAX_AUDIO_SECONDS = WINDOW_SECONDS  # Whisper's fixed input window; CTC attention memory grows quadratically past it
IGNORE_INDEX = -100  # label value the losses skip (Whisper's given prefix, padding)


def module_digest(module: nn.Module, sample: int = 4096) -> str:
    """A cheap but weight-sensitive digest: each tensor's name, shape and first/last ``sample`` values.

    Hashing every weight of a large model would cost seconds per run; a change anywhere in a
    fine-tuned tensor shows in its first/last values plus its sum in practice.
    """
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().float().reshape(-1).cpu()
        h.update(name.encode())
        h.update(json.dumps(list(tensor.shape)).encode())
        h.update(flat[:sample].numpy().tobytes())
        h.update(flat[-sample:].numpy().tobytes())
        h.update(np.float64(flat.double().sum().item()).tobytes())
    return h.hexdigest()[:20]


def refuse_options(config: "TrainConfig", names: tuple[str, ...], family: str) -> None:
    """Raise ``ConfigError`` naming the first of ``names`` set away from its default: the option
    means nothing for ``family``, and silently ignoring it would mislead.

    >>> from asrtune.training.config import TrainConfig
    >>> refuse_options(TrainConfig(char_map="a=b"), ("extend_vocab", "char_map"), "Whisper")
    Traceback (most recent call last):
    ...
    asrtune.errors.ConfigError: --char-map does not apply to Whisper models; remove it
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name in names:
        if getattr(config, name) != defaults[name]:
            raise ConfigError(f"--{name.replace('_', '-')} does not apply to {family} models; remove it")


class ModelAdapter(ABC):
    """Adapts one model family to the generic :class:`~asrtune.training.trainer.Trainer`.

    Attributes:
        family: ``"whisper"`` or ``"ctc"`` (matches ``ResolvedModel.family``).
        FREEZE_PRESETS: preset name -> description, shown in ``asrtune train --help`` and errors.
        DEFAULT_FREEZE: the preset ``--freeze auto`` (the default) picks for this family.
        model: the ``nn.Module`` being trained (a peft wrapper when LoRA is on).
        processor: the Hugging Face processor (feature extractor + tokenizer), saved with the model.
        config: the :class:`TrainConfig` the adapter was built for.
    """

    family: ClassVar[str] = ""
    FREEZE_PRESETS: ClassVar[dict[str, str]] = {}
    DEFAULT_FREEZE: ClassVar[str] = "encoder"

    model: nn.Module
    processor: Any
    config: "TrainConfig"
    #: the epoch being trained; the trainer sets it so per-epoch target choices are reproducible
    epoch: int = 0

    # --- construction and freezing -------------------------------------------------------

    @classmethod
    def check_config(cls, config: "TrainConfig") -> None:
        """Refuse options this family cannot honour (raise ``ConfigError``); called before the
        model loads and before the run dir is written, so a wrong command leaves nothing behind."""

    @classmethod
    @abstractmethod
    def from_resolved(cls, resolved: Any, config: "TrainConfig") -> "ModelAdapter":
        """Load the model and processor at ``resolved.path`` (a local HF folder) for training."""

    @abstractmethod
    def apply_freeze(self, preset: str) -> None:
        """Set ``requires_grad`` for the named preset; unknown names raise ``ConfigError``.

        Called once, before the optimiser is built. LoRA (``config.adapter == "lora"``) is applied
        here too, after freezing, so that only the adapters (and nothing else) train.
        """

    def unfreeze_top_layers(self, k: int) -> list[nn.Parameter]:
        """Gradual unfreezing: make the top ``k`` encoder layers trainable; return their parameters."""
        params = self.top_layer_parameters(k)
        for p in params:
            p.requires_grad_(True)
        return params

    def top_layer_parameters(self, k: int) -> list[nn.Parameter]:
        """The parameters :meth:`unfreeze_top_layers` would unfreeze (to pre-register with the optimiser)."""
        return []

    def parameter_groups(self, config: "TrainConfig") -> list[dict[str, Any]]:
        """Optimiser parameter groups for the currently trainable parameters.

        Each group is a dict for ``torch.optim.AdamW`` with ``params`` and ``lr`` plus a
        ``name``; weight decay is applied to matrices only (not biases / norms), nanoGPT-style.
        With ``--freeze encoder --unfreeze-top-layers K`` the top K encoder layers get their own
        group at ``--encoder-lr`` (default lr / 10), registered from the start so the optimiser
        state keeps one layout across a resume; AdamW skips them while they have no gradient.
        """
        unfreezing = config.freeze == "encoder" and config.unfreeze_top_layers
        top = {id(p) for p in self.top_layer_parameters(config.unfreeze_top_layers)} if unfreezing else set()
        return self.grouped_parameters(config, top)

    def grouped_parameters(self, config: "TrainConfig", encoder_top: set[int]) -> list[dict[str, Any]]:
        """decay / no_decay groups at ``lr`` for the trainable parameters, and an ``encoder_top``
        group at ``--encoder-lr`` for the parameters whose ids are in ``encoder_top`` (trainable
        yet or not)."""
        decay, no_decay, top = [], [], []
        for p in self.model.parameters():
            if id(p) in encoder_top:
                top.append(p)
            elif p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [
            {"name": "decay", "params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
            {"name": "no_decay", "params": no_decay, "lr": config.lr, "weight_decay": 0.0},
            {"name": "encoder_top", "params": top, "lr": config.encoder_lr or config.lr / 10,
             "weight_decay": config.weight_decay},
        ]
        return [g for g in groups if g["params"]]

    def trainable_parameter_count(self) -> tuple[int, int]:
        """``(trainable, total)`` parameter counts, reported at the start of a run."""
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return trainable, total

    # --- data -----------------------------------------------------------------------------

    def prepare_training(self, sources: list[list[tuple["Utterance", str]]]) -> list[tuple["Utterance", str]]:
        """Called once with the usable ``(utterance, target text)`` pairs of each ``--train``
        manifest, in manifest order; returns extra pairs to add to the first manifest (Whisper:
        generated no-speech clips). Default: none."""
        return []

    def describe_added(self, added: list[tuple["Utterance", str]]) -> str:
        """What :meth:`prepare_training` added, for the log (e.g. ``"205 packed windows"``)."""
        return f"{len(added)} added utterances"

    def skip_reason(self, utt: "Utterance", target_text: str) -> str | None:
        """Why ``utt`` cannot be trained on (e.g. ``"longer than 30 s"``), or None when it can."""
        return None

    @abstractmethod
    def make_example(
        self, utt: "Utterance", target_text: str, audio: np.ndarray | None = None, encoded: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Features (from ``audio``, 16 kHz mono float32) or ``encoded`` (a cached encoder output)
        plus label token ids for ``target_text`` (already passed through the text policy)."""

    @abstractmethod
    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad and stack examples into one batch of tensors (CPU; the trainer moves them)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean token loss of ``batch`` computed through ``model`` (the adapter's model, possibly
        wrapped by DistributedDataParallel, so gradients are synchronised)."""

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor], plain: nn.Module | None = None) -> torch.Tensor:
        """Next-token logits of ``model`` on ``batch`` (``--distill-base``; Whisper only)."""
        raise NotImplementedError(f"{self.family} models have no token distribution to distil")

    def distillation_model(self) -> nn.Module:
        """The model ``--distill-base`` copies as its frozen teacher (Whisper only)."""
        raise NotImplementedError(f"{self.family} models have no token distribution to distil")

    def loss_weight(self, batch: dict[str, torch.Tensor]) -> int:
        """How many terms :meth:`loss` averages over (utterances by default); gradient accumulation
        weights micro-batches by it so that accumulating equals one large batch."""
        return int(batch["labels"].shape[0])

    def augment_batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Input-side augmentation on model features (SpecAugment for Whisper). Default: none."""
        return batch

    # --- encoder-output cache (optional) ----------------------------------------------------

    def cache_shape(self) -> tuple[int, ...] | None:
        """Per-utterance shape of the cacheable frozen encoder output, or None (no cache)."""
        return None

    def encode(self, audios: list[np.ndarray]) -> np.ndarray:
        """Run the frozen encoder on raw audio; returns float16 ``[len(audios), *cache_shape()]``."""
        raise NotImplementedError(f"{type(self).__name__} has no cacheable encoder")

    def cache_fingerprint(self) -> dict[str, Any]:
        """What the cached outputs depend on (encoder weights digest, feature settings)."""
        raise NotImplementedError(f"{type(self).__name__} has no cacheable encoder")

    def finish_encoding(self, cached: np.ndarray) -> np.ndarray:
        """Cached rows -> the encoder outputs the decoder reads (identity unless the cache holds the
        hidden states below trainable top encoder layers)."""
        return cached

    # --- inference and export ---------------------------------------------------------------

    @abstractmethod
    def recognizer(self, device: str, batch_size: int) -> "Recognizer":
        """The recogniser ``asrtune eval`` would build for this model, wrapping the live (training)
        weights, so dev WER and ``asrtune eval`` decode identically."""

    @abstractmethod
    def save(self, out_dir: Path) -> None:
        """Write a complete model folder (weights, processor, generation config; LoRA merged).

        ``out_dir`` must be loadable by ``asrtune.models.resolve_model`` / ``load_whisper`` /
        ``load_ctc`` and by ``asrtune eval`` and ``asrtune transcribe``.
        """

    # --- checkpointing --------------------------------------------------------------------------

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights that training changes (what a resumable checkpoint must keep)."""
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`trainable_state_dict` output into the (identically frozen) model."""
        params = dict(self.model.named_parameters())
        unknown = [n for n in state if n not in params]
        if unknown:
            raise AsrtuneError(f"checkpoint has weights this model lacks (e.g. {unknown[0]}); was --model changed?")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))
