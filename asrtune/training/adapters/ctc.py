"""wav2vec2-family CTC models (wav2vec2, HuBERT, WavLM, data2vec-audio) behind :class:`ModelAdapter`.

The model reads raw 16 kHz audio (normalised to zero mean, unit variance), a convolutional
*feature encoder* turns it into 50 frames/s, a transformer contextualises them and a linear
CTC head (``lm_head``) scores one character (or blank) per frame. Training minimises the CTC
loss (``ctc_zero_infinity`` on, so an utterance whose transcript cannot fit its frames gives
zero loss instead of an infinite one; ``ctc_loss_reduction="mean"``, so the learning rate does
not depend on transcript lengths).

Vocabulary (see :mod:`asrtune.models.ctc_vocab`): a model folder with a tokenizer keeps its
vocabulary (``--extend-vocab`` adds missing characters, ``--char-map`` rewrites them); a folder
without one (e.g. a randomly initialised config, or a pretrained-only checkpoint such as
``facebook/wav2vec2-base``) gets a lower-case character vocabulary built from ``--train``.

Freezing presets:

* ``feature-encoder`` (the usual CTC recipe) - the convolutional feature encoder is frozen;
  the transformer and the CTC head train.
* ``encoder`` - everything but the CTC head is frozen, plus the top ``--unfreeze-top-layers K``
  transformer layers when given (cheapest; for small data).
* ``none`` - everything trains (for models trained from scratch, like the over-fit test).

SpecAugment is the model's own (time and feature masking of the feature-encoder output, in
``model.config``): ``--spec-augment`` turns it on with ``--mask-time-prob`` /
``--mask-time-length`` / ``--mask-feature-prob``; it is off otherwise.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.data.manifest import read_manifest
from asrtune.errors import ConfigError
from asrtune.models import ctc_vocab
from asrtune.training.adapters.base import IGNORE_INDEX, MAX_AUDIO_SECONDS, ModelAdapter, refuse_options
from asrtune.training.text_policy import apply_text_policy

log = logging.getLogger(__name__)

WHISPER_ONLY_OPTIONS = ("freeze_token_embeddings", "language", "task", "timestamp_fraction", "prompt_fraction",
                        "prompt_terms", "no_speech_fraction", "pack_windows", "recipe", "distill_base", "replay_text")
# SpecAugment defaults used when --spec-augment is on (wav2vec2 fine-tuning recipe values).
DEFAULT_MASK_TIME_PROB = 0.05
DEFAULT_MASK_TIME_LENGTH = 10  # frames of 20 ms
DEFAULT_MASK_FEATURE_PROB = 0.0


def _option(config: Any, name: str, default: Any) -> Any:
    """A CTC option of ``config`` (tolerates configs without the CTC fields)."""
    value = getattr(config, name, None)
    return default if value is None else value


class CTCAdapter(ModelAdapter):
    """CTC fine-tuning of any ``AutoModelForCTC`` (see module docstring)."""

    family = "ctc"
    DEFAULT_FREEZE = "feature-encoder"
    FREEZE_PRESETS = {
        "feature-encoder": "convolutional feature encoder frozen; transformer and CTC head trained (default for CTC)",
        "encoder": "all but the CTC head frozen (plus the top --unfreeze-top-layers K transformer layers)",
        "none": "everything trains (training from scratch)",
    }

    def __init__(self, model: nn.Module, processor: Any, config: Any, case: str, char_map: dict[str, str],
                 added_chars: list[str], resolved: Any):
        self.resolved = resolved
        self.model = model
        self.processor = processor
        self.config = config
        self.tokenizer = processor.tokenizer
        self.feature_extractor = processor.feature_extractor
        self.case = case
        self.char_map = char_map
        self.added_chars = added_chars
        self.vocab = dict(self.tokenizer.get_vocab())
        self._use_attention_mask = bool(getattr(self.feature_extractor, "return_attention_mask", False))

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def check_config(cls, config: Any) -> None:
        refuse_options(config, WHISPER_ONLY_OPTIONS, "CTC")
        if config.adapter == "lora":
            raise ConfigError("--adapter lora is implemented for Whisper only; CTC models fine-tune directly")
        for option in ("mask_time_prob", "mask_feature_prob"):
            value = float(getattr(config, option))
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"--{option.replace('_', '-')} must be in [0, 1), got {value}")
        if int(config.mask_time_length) < 1:
            raise ConfigError("--mask-time-length must be >= 1 frame")

    @classmethod
    def from_resolved(cls, resolved: Any, config: Any) -> "CTCAdapter":
        from transformers import AutoModelForCTC, Wav2Vec2Processor  # heavy: transformers (after train's input checks)

        path = str(resolved.path)
        spec_augment = bool(getattr(config, "spec_augment", False))
        overrides = {
            "ctc_zero_infinity": True,
            "ctc_loss_reduction": "mean",
            "mask_time_prob": float(_option(config, "mask_time_prob", DEFAULT_MASK_TIME_PROB)) if spec_augment else 0.0,
            "mask_time_length": int(_option(config, "mask_time_length", DEFAULT_MASK_TIME_LENGTH)),
            "mask_feature_prob": float(_option(config, "mask_feature_prob", DEFAULT_MASK_FEATURE_PROB)) if spec_augment else 0.0,
            "layerdrop": 0.0,  # layer drop breaks the frozen-layer bookkeeping and DDP; off
        }
        try:
            model = AutoModelForCTC.from_pretrained(path, **overrides)
        except (OSError, ValueError) as e:
            raise ConfigError(f"--model {resolved.name}: cannot load a CTC model from {path}: {e}") from None
        model.float()
        try:
            processor = Wav2Vec2Processor.from_pretrained(path)
        except (OSError, ValueError, TypeError, KeyError):
            processor = None  # no tokenizer: build a vocabulary from the training text below

        char_map = ctc_vocab.parse_char_map(_option(config, "char_map", None))
        policy = getattr(config, "text_policy", "keep")
        case = ctc_vocab.vocab_case(processor.tokenizer.get_vocab()) if processor is not None else "lower"
        texts: list[tuple[str, str]] = []
        for manifest in config.train:
            for utt in read_manifest(manifest):
                texts.append((cls._prepare(utt.text, policy, case, char_map), f"{manifest}:{utt.line_no}"))

        added: list[str] = []
        feature_extractor = processor.feature_extractor if processor is not None else None
        if processor is None:
            vocab = ctc_vocab.build_vocab(t for t, _ in texts)
            ctc_vocab.resize_ctc_head(model, len(vocab))
            log.info("built a %d-token character vocabulary from the training text", len(vocab))
        else:
            vocab = dict(processor.tokenizer.get_vocab())
            missing = ctc_vocab.find_missing_chars(texts, vocab)
            if missing:
                if not _option(config, "extend_vocab", False):
                    raise ctc_vocab.out_of_vocab_error(missing, resolved.name)
                added = sorted(missing.counts)
                vocab = ctc_vocab.extend_ctc_head(model, vocab, added)
                log.info("extended the vocabulary with %s", "".join(added))
        if processor is None or added:
            # the tokenizer reads vocab.json once; save() writes the processor into the model folder
            with tempfile.TemporaryDirectory(prefix="asrtune-ctc-vocab-") as folder:
                processor = ctc_vocab.make_processor(vocab, folder, SAMPLE_RATE_HZ, feature_extractor)
        model.config.pad_token_id = processor.tokenizer.pad_token_id  # the CTC blank
        model.config.vocab_size = model.lm_head.out_features
        return cls(model, processor, config, case, char_map, added, resolved)

    @staticmethod
    def _prepare(text: str, policy: str, case: str, char_map: dict[str, str]) -> str:
        if policy == "normalize":  # the only policy that changes more than case and spacing
            text = apply_text_policy(text, policy)
        return ctc_vocab.prepare_text(text, case, char_map)

    def target_text(self, text: str) -> str:
        """The transcript as this model spells it (mapped, cased, single-spaced)."""
        return ctc_vocab.prepare_text(text, self.case, self.char_map)

    def target_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(self.target_text(text)).input_ids)

    # --- freezing ---------------------------------------------------------------------------------

    @property
    def _base(self) -> nn.Module:
        return self.model.base_model  # wav2vec2 / hubert / wavlm / data2vec_audio

    def apply_freeze(self, preset: str) -> None:
        if preset not in self.FREEZE_PRESETS:
            raise ConfigError(f"--freeze must be one of {', '.join(self.FREEZE_PRESETS)} for CTC models; got {preset!r}")
        for p in self.model.parameters():
            p.requires_grad_(True)
        if preset == "feature-encoder":
            self.model.freeze_feature_encoder()
        elif preset == "encoder":
            self._base.requires_grad_(False)
            self.model.lm_head.requires_grad_(True)
        if getattr(self.config, "gradient_checkpointing", False):
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def top_layer_parameters(self, k: int) -> list[nn.Parameter]:
        if k <= 0:
            return []
        encoder = self._base.encoder
        layers = encoder.layers
        if k > len(layers):
            raise ConfigError(f"--unfreeze-top-layers {k}: this encoder has only {len(layers)} layers")
        params = [p for layer in layers[-k:] for p in layer.parameters()]
        if getattr(self.model.config, "do_stable_layer_norm", False):  # final norm sits after the layers
            params += list(encoder.layer_norm.parameters())
        return params

    # --- data -------------------------------------------------------------------------------------

    def output_frames(self, n_samples: int) -> int:
        """CTC frames the model emits for ``n_samples`` of audio."""
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(n_samples)))

    def skip_reason(self, utt: Any, target_text: str) -> str | None:
        text = self.target_text(target_text)
        if not text:
            return "empty transcript"
        if utt.duration > MAX_AUDIO_SECONDS:
            return f"longer than {MAX_AUDIO_SECONDS:.0f} s"
        if utt.duration > 0:
            frames = self.output_frames(int(utt.duration * SAMPLE_RATE_HZ))
            # CTC needs a frame per character, plus a blank between repeated characters
            needed = len(text) + sum(a == b for a, b in zip(text, text[1:]))
            if needed > frames:
                return f"transcript needs {needed} CTC frames but the audio gives {frames}"
        return None

    def make_example(self, utt: Any, target_text: str, audio: np.ndarray | None = None, encoded: np.ndarray | None = None) -> dict[str, Any]:
        if audio is None:
            raise ValueError("the CTC adapter trains its encoder and needs raw audio, not cached encoder outputs")
        if len(audio) > MAX_AUDIO_SECONDS * SAMPLE_RATE_HZ:
            audio = audio[: int(MAX_AUDIO_SECONDS * SAMPLE_RATE_HZ)]
        values = self.feature_extractor(np.asarray(audio, dtype=np.float32), sampling_rate=SAMPLE_RATE_HZ).input_values[0]
        return {"input_values": torch.as_tensor(np.asarray(values, dtype=np.float32)), "labels": self.target_ids(target_text)}

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n_samples = max(len(e["input_values"]) for e in examples)
        n_labels = max(len(e["labels"]) for e in examples)
        values = torch.zeros(len(examples), n_samples)
        mask = torch.zeros(len(examples), n_samples, dtype=torch.long)
        labels = torch.full((len(examples), max(n_labels, 1)), IGNORE_INDEX, dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["input_values"])
            values[i, :n] = e["input_values"]
            mask[i, :n] = 1
            labels[i, : len(e["labels"])] = torch.tensor(e["labels"], dtype=torch.long)
        batch = {"input_values": values, "labels": labels}
        if self._use_attention_mask:
            batch["attention_mask"] = mask
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        kwargs = {"input_values": batch["input_values"], "labels": batch["labels"]}
        if "attention_mask" in batch:
            kwargs["attention_mask"] = batch["attention_mask"]
        return model(**kwargs).loss

    # --- inference and export ---------------------------------------------------------------------

    def recognizer(self, device: str, batch_size: int) -> Any:
        """Greedy CTC decoding through the recogniser ``asrtune eval`` uses (no LM: dev WER is acoustic)."""
        from asrtune.inference.ctc import CTCRecognizer  # heavy: torchaudio (CTC alignment), only for decoding

        return CTCRecognizer(self.resolved, device=device, batch_size=batch_size, model=self.model, processor=self.processor)

    def save(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        was_ckpt = getattr(self.model, "is_gradient_checkpointing", False)
        if was_ckpt:
            self.model.gradient_checkpointing_disable()
        self.model.save_pretrained(out_dir, safe_serialization=True)
        if was_ckpt:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.processor.save_pretrained(out_dir)
