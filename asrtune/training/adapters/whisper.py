"""Whisper (encoder-decoder) behind the :class:`ModelAdapter` interface.

Targets follow Whisper's own training formats (``asrtune/training/targets.py``):
``<|startoftranscript|>`` then, for multilingual models, ``<|lang|><|task|>``, then either
``<|notimestamps|>`` and the text (with the leading space Whisper itself emits), or - for
``--timestamp-fraction`` of the examples - the text between timestamp tokens; then
``<|endoftext|>``. ``--prompt-fraction`` of the examples start with ``<|startofprev|>`` and the
previous utterance's text (or domain terms); ``--no-speech-fraction`` adds generated silence
and noise clips whose target is the no-speech token (``asrtune/training/no_speech.py``). The
decoder is fed the sequence without its last token and learns to predict it shifted by one; the
loss ignores the prompt and prefix (given, never predicted, at inference time) and the padding,
and covers timestamp tokens like text tokens.

Freezing presets:

* ``encoder`` (default) - the whole encoder is frozen, the decoder trains. The encoder output is
  then a pure function of the audio, so the trainer caches it (``encoder_cache.py``).
* ``feature-encoder`` - only the convolutional stem (conv1, conv2) and positional embedding are frozen.
* ``none`` - everything trains (full fine-tune).

With ``--adapter lora`` the preset decides where LoRA adapters go (decoder only for
``encoder``; everywhere for the others) and nothing else trains; ``save`` merges them.

``--train-encoder-top K`` splits the encoder: layers ``[0, N - K)`` stay frozen and are what the
cache stores (the hidden states after layer N - K); layers ``[N - K, N)`` and the final layer norm
train with the decoder (or carry LoRA adapters), run by :meth:`WhisperAdapter.encoder_top` in the
loss and by :meth:`WhisperAdapter.finish_encoding` when dev decoding reads the cache.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.data.pack import pack_utterances
from asrtune.data.terms import domain_vocabulary, load_terms
from asrtune.errors import ConfigError
from asrtune.inference.whisper_common import build_prompt
from asrtune.models import load_whisper
from asrtune.models.cache import cache_dir, cached_build
from asrtune.training.adapters.base import IGNORE_INDEX, MAX_AUDIO_SECONDS, ModelAdapter, module_digest, refuse_options
from asrtune.training.adapters.memory_attention import use_memory_attention
from asrtune.training.config import AUTO
from asrtune.training.no_speech import is_no_speech_clip, no_speech_count, no_speech_utterances
from asrtune.training.targets import Target, WhisperTargets, pick_key, picked, utterance_segments
from asrtune.training.text_policy import apply_text_policy

log = logging.getLogger(__name__)

CTC_ONLY_OPTIONS = ("extend_vocab", "char_map", "mask_time_prob", "mask_time_length", "mask_feature_prob")
SPEC_FREQ_MASK = 27  # mel bins: widest SpecAugment frequency mask (LibriSpeech policy)
SPEC_TIME_MASK = 100  # frames of 10 ms: widest SpecAugment time mask
SPEC_MASKS = 2  # masks of each kind per utterance
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
PACKED_MANIFEST = "manifest.jsonl"  # --pack-windows: the windows' manifest in their cache folder
AUTO_PROMPT_TERMS = 100  # --prompt-terms auto: the training transcripts' 100 most frequent words
MAX_PROMPT_TERMS = 20  # --prompt-terms: at most this many terms in one prompt (a user's --prompt is a short list too)


class WhisperAdapter(ModelAdapter):
    """Whisper seq2seq fine-tuning (see module docstring for targets and presets)."""

    family = "whisper"
    FREEZE_PRESETS = {
        "encoder": "whole encoder frozen, decoder trained (encoder outputs cached; fastest, least forgetting)",
        "feature-encoder": "only the convolutional stem frozen; encoder layers and decoder trained",
        "none": "full fine-tune: every weight trains",
    }

    def __init__(self, model: nn.Module, processor: Any, config: Any, resolved: Any):
        self.resolved = resolved
        self.alignment_heads = getattr(model.generation_config, "alignment_heads", None)  # kept by save()
        self.whisper = model  # the plain WhisperForConditionalGeneration (LoRA layers are injected into it)
        self.model = model  # what trains: the peft wrapper when LoRA is on
        self.processor = processor
        self.config = config
        self.tokenizer = processor.tokenizer
        self.feature_extractor = processor.feature_extractor
        self.prefix = self._prefix_tokens()
        self.eot = self.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.max_target_tokens = int(model.config.max_target_positions)
        self.targets = WhisperTargets(self.tokenizer, self.prefix, self.max_target_tokens)
        self.terms: list[str] = []
        # id(utterance) -> target text of the utterance before it from the same speaker/source;
        # the trainer's utterance objects live for the whole run (filled by prepare_training)
        self.previous_text: dict[int, str] = {}
        self.lora = False
        #: first encoder layer that trains with ``--train-encoder-top K`` (N - K); None = no split.
        #: The cache then holds the hidden states entering this layer (see :meth:`encode`).
        self.encoder_split = self._encoder_split(int(getattr(config, "train_encoder_top", 0) or 0))

    @classmethod
    def check_config(cls, config: Any) -> None:
        refuse_options(config, CTC_ONLY_OPTIONS, "Whisper")

    @classmethod
    def from_resolved(cls, resolved: Any, config: Any) -> "WhisperAdapter":
        model, processor = load_whisper(resolved)  # fp32 master weights; autocast does mixed precision
        use_memory_attention(model)  # training on short targets: cross-attention without projecting 1,500 frames
        return cls(model, processor, config, resolved)

    # --- targets --------------------------------------------------------------------------------

    def _prefix_tokens(self) -> list[int]:
        """The decoding prefix of ``asrtune.inference.whisper_common`` (one definition of the prompt),
        with ``<|translate|>`` in place of ``<|transcribe|>`` for ``--task translate``."""
        tok = self.tokenizer
        language = self.config.language.lower() if self.config.language else None  # "English" as "english"
        sot = build_prompt(tok, int(self.whisper.config.vocab_size), language, None).sot
        if self.config.task != "transcribe":
            transcribe = tok.convert_tokens_to_ids("<|transcribe|>")
            sot = [tok.convert_tokens_to_ids(f"<|{self.config.task}|>") if t == transcribe else t for t in sot]
        return sot

    def target_ids(self, text: str) -> list[int]:
        """Full token sequence without timestamps or prompt: prefix + text + end-of-text."""
        return self.targets.plain(text).ids

    def target(self, utt: Any, target_text: str) -> Target:
        """This epoch's target for ``utt``: no-speech, or plain/timestamped with or without a prompt
        (chosen by :func:`~asrtune.training.targets.picked` from seed, epoch and utterance)."""
        cfg, key = self.config, pick_key(utt.audio_filepath, utt.offset)
        if is_no_speech_clip(utt):
            return self.targets.no_speech_target(picked(cfg.timestamp_fraction, cfg.seed, self.epoch, "timestamps", key))
        prompt = self._prompt(utt) if picked(cfg.prompt_fraction, cfg.seed, self.epoch, "prompt", key) else None
        parts = utterance_segments(utt.extra, utt.duration)
        segments = None
        if parts:  # inner segment texts follow the same text policy as the whole target
            segments = [dataclasses.replace(s, text=apply_text_policy(s.text, cfg.text_policy)) for s in parts]
            if " ".join(s.text for s in parts).split() == utt.text.split():
                # the parts are the whole text: the plain target joins them too, so each part keeps
                # its own sentence end (an ALL-CAPS packed window gets a full stop per clip, not one)
                target_text = " ".join(s.text for s in segments)
        if picked(cfg.timestamp_fraction, cfg.seed, self.epoch, "timestamps", key):
            target = self.targets.timestamped(target_text, utt.duration, segments, prompt)
            if len(target.decoder_input_ids) <= self.max_target_tokens:  # many inner segments can overflow
                return target
        return self.targets.plain(target_text, prompt)

    def _prompt(self, utt: Any) -> str | None:
        """A random subset of ``--prompt-terms`` or the previous utterance's text (None for the first)."""
        if not self.terms:
            return self.previous_text.get(id(utt))
        digest = hashlib.sha256(f"{self.config.seed}|{self.epoch}|terms|{pick_key(utt.audio_filepath, utt.offset)}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        k = int(rng.integers(1, min(len(self.terms), MAX_PROMPT_TERMS) + 1))
        return ", ".join(self.terms[i] for i in sorted(rng.choice(len(self.terms), size=k, replace=False)))

    def prepare_training(self, sources: list[list[tuple[Any, str]]]) -> list[tuple[Any, str]]:
        """Index each utterance's predecessor (same speaker, else same source recording, in
        manifest order) for prompts, load (or, with ``auto``, derive) ``--prompt-terms``, and add the
        first manifest's packed windows (``--pack-windows``) and the generated no-speech clips."""
        cfg = self.config
        if cfg.prompt_terms == AUTO:
            self.terms = domain_vocabulary((text for pairs in sources for _, text in pairs), AUTO_PROMPT_TERMS)
        elif cfg.prompt_terms:
            self.terms = load_terms(cfg.prompt_terms, option="--prompt-terms")
        for pairs in sources:
            last: dict[str, str] = {}
            for utt, text in pairs:
                context = utt.speaker or str(utt.extra.get("source") or "")
                if context in last:
                    self.previous_text[id(utt)] = last[context]
                last[context] = text
        added = self._packed_windows(sources[0]) if cfg.pack_windows and sources else []
        count = no_speech_count(cfg.no_speech_fraction, len(sources[0]) if sources else 0)
        if count and self.targets.no_speech is not None:
            added += [(u, "") for u in no_speech_utterances(count, cfg.seed, cache_dir() / "no-speech")]
        return added

    def describe_added(self, added: list[tuple[Any, str]]) -> str:
        noise = sum(is_no_speech_clip(u) for u, _ in added)
        parts = ([f"{len(added) - noise} packed windows"] if len(added) > noise else []) + (
            [f"{noise} generated no-speech clips"] if noise else [])
        return " and ".join(parts)

    def _packed_windows(self, pairs: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
        """``--pack-windows``: the first manifest's clips (those without timed parts of their own)
        packed into windows of up to 30 s (``data/pack.py``), written once per set of clips to
        the cache; each window's target follows the text policy like any line."""
        clips = [u for u, _ in pairs if not utterance_segments(u.extra, u.duration)]
        if not clips:
            return []
        digest = hashlib.sha256("\n".join(f"{u.audio_filepath}|{u.offset}|{u.duration}|{u.speaker}|{u.text}"
                                          for u in clips).encode()).hexdigest()[:20]

        def build(tmp: Path) -> None:
            windows, _ = pack_utterances(clips, tmp)
            write_manifest(tmp / PACKED_MANIFEST, windows, relative=True)

        folder = cached_build("packed-windows", digest, build, marker=PACKED_MANIFEST)
        windows = load_manifest(folder / PACKED_MANIFEST)
        policy = self.config.text_policy
        return [(w, t) for w in windows if not self.skip_reason(w, t := apply_text_policy(w.text, policy))]

    def skip_reason(self, utt: Any, target_text: str) -> str | None:
        if utt.duration > MAX_AUDIO_SECONDS:
            return f"longer than {MAX_AUDIO_SECONDS:.0f} s"
        if not target_text.strip():
            return "empty transcript"
        # the timestamped form is one token longer (two timestamps in place of <|notimestamps|>)
        if len(self.target_ids(target_text)) > self.max_target_tokens:
            return f"more than {self.max_target_tokens} tokens"
        return None

    # --- freezing ---------------------------------------------------------------------------------

    def _encoder_split(self, k: int) -> int | None:
        if k <= 0:
            return None
        n = len(self._encoder_layers())
        if k > n:
            raise ConfigError(f"--train-encoder-top {k}: this encoder has only {n} layers")
        return n - k

    def apply_freeze(self, preset: str) -> None:
        if preset not in self.FREEZE_PRESETS:
            raise ConfigError(f"--freeze must be one of {', '.join(self.FREEZE_PRESETS)} for Whisper; got {preset!r}")
        encoder = self.whisper.model.encoder
        for p in self.whisper.parameters():
            p.requires_grad_(True)
        if preset == "encoder":
            encoder.requires_grad_(False)
            if self.encoder_split is not None:  # --train-encoder-top K: the top K layers and the final norm train
                for p in self.top_layer_parameters(len(self._encoder_layers()) - self.encoder_split):
                    p.requires_grad_(True)
        elif preset == "feature-encoder":
            for module in (encoder.conv1, encoder.conv2, encoder.embed_positions):
                module.requires_grad_(False)
        # Whisper's positional embeddings are sinusoids it never trained; keep them fixed.
        encoder.embed_positions.requires_grad_(False)
        if self.config.freeze_token_embeddings:
            # Tied to the output projection: freezing it keeps every token's output direction
            # (less forgetting) and skips the largest weight gradient (vocab x d_model).
            self.whisper.model.decoder.embed_tokens.requires_grad_(False)
        if self.config.gradient_checkpointing:
            self.whisper.config.use_cache = False
            self.whisper.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.config.adapter == "lora":
            self._add_lora(preset)

    def _add_lora(self, preset: str) -> None:
        from peft import LoraConfig, get_peft_model  # heavy: peft, only for --adapter lora

        where = r"model\.decoder\.layers\.\d+" if preset == "encoder" else r"model\.(encoder|decoder)\.layers\.\d+"
        if preset == "encoder" and self.encoder_split is not None:  # and the top K encoder layers
            top = "|".join(str(i) for i in range(self.encoder_split, len(self._encoder_layers())))
            where = rf"(model\.decoder\.layers\.\d+|model\.encoder\.layers\.({top}))"
        pattern = rf"{where}\.((self_attn|encoder_attn)\.({'|'.join(LORA_TARGETS[:4])})|fc1|fc2)$"
        lora = LoraConfig(
            r=self.config.lora_r, lora_alpha=self.config.lora_alpha, lora_dropout=self.config.lora_dropout,
            target_modules=pattern, bias="none",
        )
        self.model = get_peft_model(self.whisper, lora)
        self.lora = True
        if self.encoder_split is not None:  # LoRA on the top layers; their plain weights and the norm stay fixed
            for p in self.whisper.model.encoder.layer_norm.parameters():
                p.requires_grad_(False)

    def _encoder_layers(self) -> nn.ModuleList:
        return self.whisper.model.encoder.layers

    def top_layer_parameters(self, k: int) -> list[nn.Parameter]:
        if k <= 0:
            return []
        layers = self._encoder_layers()
        if k > len(layers):
            raise ConfigError(f"--unfreeze-top-layers {k}: this encoder has only {len(layers)} layers")
        params = [p for layer in layers[-k:] for p in layer.parameters()]
        return params + list(self.whisper.model.encoder.layer_norm.parameters())

    def parameter_groups(self, config: Any) -> list[dict[str, Any]]:
        """The base groups; with ``--train-encoder-top K`` the top K encoder layers (or their LoRA
        adapters) and the final norm form the ``encoder_top`` group at ``--encoder-lr``."""
        if self.encoder_split is None:
            return super().parameter_groups(config)
        k = len(self._encoder_layers()) - self.encoder_split
        # Only what trains: with LoRA the layers' own weights stay frozen, their adapters train.
        return self.grouped_parameters(config, {id(p) for p in self.top_layer_parameters(k) if p.requires_grad})

    # --- data -------------------------------------------------------------------------------------

    def features(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Log-mel features ``[B, n_mels, 3000]`` (padded to Whisper's 30 s window)."""
        out = self.feature_extractor(
            [np.asarray(a, dtype=np.float32) for a in audios], sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt"
        )
        return out.input_features

    def make_example(self, utt: Any, target_text: str, audio: np.ndarray | None = None, encoded: np.ndarray | None = None) -> dict[str, Any]:
        target = self.target(utt, target_text)
        example: dict[str, Any] = {"decoder_input_ids": target.decoder_input_ids, "labels": target.labels(IGNORE_INDEX)}
        if encoded is not None:
            example["encoder_outputs"] = torch.from_numpy(np.asarray(encoded))
        elif audio is not None:
            if len(audio) > MAX_AUDIO_SECONDS * SAMPLE_RATE_HZ:
                audio = audio[: int(MAX_AUDIO_SECONDS * SAMPLE_RATE_HZ)]
            example["input_features"] = self.features([audio])[0]
        else:
            raise ValueError("make_example needs audio or encoded")
        return example

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(e["decoder_input_ids"]) for e in examples)
        inputs = torch.full((len(examples), width), self.eot, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["decoder_input_ids"])
            inputs[i, :n] = torch.tensor(e["decoder_input_ids"])
            labels[i, :n] = torch.tensor(e["labels"])
        batch = {"decoder_input_ids": inputs, "labels": labels}
        if "encoder_outputs" in examples[0]:
            batch["encoder_outputs"] = torch.stack([e["encoder_outputs"] for e in examples])
        else:
            batch["input_features"] = torch.stack([e["input_features"] for e in examples])
        return batch

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor], plain: nn.Module | None = None) -> torch.Tensor:
        """Next-token logits ``[B, T, vocab]`` of ``model`` on ``batch``. ``plain`` is the plain
        model whose top encoder layers run on cached hidden states (default: the one that trains;
        ``--distill-base`` passes its frozen copy of the base model)."""
        kwargs: dict[str, Any] = {"decoder_input_ids": batch["decoder_input_ids"], "use_cache": False}
        if "encoder_outputs" in batch:
            # Cached outputs are float16 on disk; compute in the model's dtype. With a split point
            # they are the hidden states entering the top layers, which run here (with gradients).
            hidden = batch["encoder_outputs"].to(torch.float32)
            if self.encoder_split is not None:
                hidden = self.encoder_top(hidden, plain)
            kwargs["encoder_outputs"] = (hidden,)
        else:
            kwargs["input_features"] = batch["input_features"]
        return model(**kwargs).logits

    def distillation_model(self) -> nn.Module:
        return self.whisper  # LoRA layers, if any, are injected into it (and start as the identity)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.logits(model, batch)
        return nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE_INDEX
        )

    def loss_weight(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE_INDEX).sum())  # the loss is a mean over predicted tokens

    def augment_batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not self.config.spec_augment or "input_features" not in batch:
            return batch
        feats = batch["input_features"].clone()
        n_mels, n_frames = feats.shape[1], feats.shape[2]
        for b in range(feats.shape[0]):
            for _ in range(SPEC_MASKS):
                w = int(torch.randint(0, SPEC_FREQ_MASK + 1, (1,), generator=generator))
                f0 = int(torch.randint(0, max(1, n_mels - w), (1,), generator=generator))
                feats[b, f0 : f0 + w, :] = 0.0
                w = int(torch.randint(0, SPEC_TIME_MASK + 1, (1,), generator=generator))
                t0 = int(torch.randint(0, max(1, n_frames - w), (1,), generator=generator))
                feats[b, :, t0 : t0 + w] = 0.0
        return {**batch, "input_features": feats}

    # --- encoder-output cache -----------------------------------------------------------------------

    def cache_shape(self) -> tuple[int, ...] | None:
        cfg = self.whisper.config
        return (int(cfg.max_source_positions), int(cfg.d_model))

    def encode(self, audios: list[np.ndarray]) -> np.ndarray:
        """What the cache stores: the frozen encoder's output, or with ``--train-encoder-top K``
        the hidden states after its first N - K layers (float16 ``[B, frames, d_model]``)."""
        encoder = self.whisper.get_encoder()
        device = next(encoder.parameters()).device
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            feats = self.features(audios).to(device)
            if self.encoder_split is None:
                out = encoder(input_features=feats).last_hidden_state
            else:
                out = self._encode_bottom(feats)
        encoder.train(was_training)
        return out.to(torch.float16).cpu().numpy()

    def _encode_bottom(self, feats: torch.Tensor) -> torch.Tensor:
        """The frozen part of the encoder: conv stem, positions, layers ``[0, split)``
        (the same steps as ``WhisperEncoder.forward``, stopped at the split point)."""
        encoder = self.whisper.model.encoder
        hidden = nn.functional.gelu(encoder.conv1(feats))
        hidden = nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
        positions = torch.arange(encoder.embed_positions.num_embeddings, device=hidden.device)
        hidden = hidden + encoder.embed_positions(positions)
        for layer in encoder.layers[: self.encoder_split]:
            hidden = layer(hidden, None)
        return hidden

    def encoder_top(self, hidden: torch.Tensor, plain: nn.Module | None = None) -> torch.Tensor:
        """The trainable part: layers ``[split, N)`` and the final layer norm, on cached hidden states
        (of ``plain``, default the model that trains)."""
        encoder = (plain or self.whisper).model.encoder
        for layer in encoder.layers[self.encoder_split :]:
            hidden = layer(hidden, None)
        return encoder.layer_norm(hidden)

    def finish_encoding(self, cached: np.ndarray) -> np.ndarray:
        """Cached rows -> final encoder outputs (identity without a split point), for decoding."""
        if self.encoder_split is None:
            return cached
        encoder = self.whisper.model.encoder
        device = next(encoder.parameters()).device
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            out = self.encoder_top(torch.from_numpy(np.asarray(cached)).to(device, torch.float32))
        encoder.train(was_training)
        return out.float().cpu().numpy()

    def cache_fingerprint(self) -> dict[str, Any]:
        """What cached rows depend on: the frozen encoder weights (below the split point, when
        there is one), the split point and the feature settings."""
        encoder = self.whisper.get_encoder()
        if self.encoder_split is None:
            weights = module_digest(encoder)
        else:
            bottom = nn.ModuleList([encoder.conv1, encoder.conv2, encoder.embed_positions,
                                    *encoder.layers[: self.encoder_split]])
            weights = module_digest(bottom)
        return {
            "family": self.family,
            "encoder_weights": weights,
            "split_layer": self.encoder_split,  # None = the encoder's final output
            "features": self.feature_extractor.to_dict() | {"processor_class": None},
            "dtype": "float16",
        }

    # --- inference and export ---------------------------------------------------------------------

    def recognizer(self, device: str, batch_size: int) -> Any:
        from asrtune.inference.whisper_hf import WhisperHFRecognizer  # heavy: transformers (after train's input checks)

        return WhisperHFRecognizer(self.resolved, device=device, batch_size=batch_size, language=self.config.language,
                                   model=self.whisper, processor=self.processor)

    def save(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        if self.lora:
            model = copy.deepcopy(self.model).merge_and_unload()
        else:
            model = self.whisper
        was_ckpt = getattr(model, "is_gradient_checkpointing", False)
        model.config.use_cache = True
        model.save_pretrained(out_dir, safe_serialization=True)
        if was_ckpt:
            model.config.use_cache = False
        self.processor.save_pretrained(out_dir)
        # transformers 5 folds the feature extractor into processor_config.json; CTranslate2's
        # converter and older loaders read preprocessor_config.json, so write it too.
        self.feature_extractor.save_pretrained(out_dir)
        generation = copy.deepcopy(model.generation_config)
        if self.alignment_heads is not None:  # word timestamps need the base model's heads
            generation.alignment_heads = self.alignment_heads
        generation.save_pretrained(out_dir)
