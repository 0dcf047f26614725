"""``TrainConfig``: every training option, in one place, with one spelling.

Each field is declared with :func:`asrtune.options.option` (default, help text, choices,
``--help`` group), and that declaration is the only one: ``asrtune train``'s flags, the YAML keys
of ``--config`` and ``docs/options.md`` are generated from it. A field name is the CLI option
with ``-`` turned into ``_``: ``--max-steps 200`` == ``max_steps: 200``. The command line
overrides the YAML file, which overrides the defaults here. An unknown YAML key, a wrong type, a
value outside an option's choices or an impossible combination raises
:class:`~asrtune.errors.ConfigError` naming the option.

The effective config is written to ``RUN_DIR/config.yaml``; ``--resume RUN_DIR`` compares
against it and refuses a changed config (unless ``--force``), except for the options in
:data:`RESUME_MAY_CHANGE` (how long to train, where to evaluate at the end, ...).

>>> cfg = TrainConfig(model="openai/whisper-tiny.en", train=["train.jsonl"], out="runs/a")
>>> cfg.freeze, cfg.text_policy, cfg.lr
('auto', 'sentence', 1e-05)
>>> TrainConfig.from_dict({"max-steps": "200", "lr_schedule": "cosine"}).max_steps
200
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.fileio import write_text_atomic
from asrtune.options import check_choices, option, update_options
from asrtune.synth.text import read_sentence_file
from asrtune.training.export import parse_formats
from asrtune.training.outcome import DEFAULT_MERGE_ALPHAS
from asrtune.training.replay import SHIPPED_NAME, replay_text_file
from asrtune.training.text_policy import POLICIES
from asrtune.training.tracking import REPORT_TO

FREEZE_CHOICES = ("auto", "encoder", "feature-encoder", "none")
ADAPTER_CHOICES = ("none", "lora")
SCHEDULE_CHOICES = ("linear", "cosine", "constant")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
TASK_CHOICES = ("transcribe", "translate")
CACHE_CHOICES = ("auto", "off")
AUTO = "auto"  # --prompt-terms auto: terms from the training transcripts; --merge-alphas auto: merges after a guard refusal
NO_MERGES = ("none", "off")  # --merge-alphas none: never score merges
KEEP_GENERAL = "keep-general"
#: ``--recipe NAME``: options the preset sets (each still yours to override). keep-general is the
#: best admissible recipe of the forgetting study (docs/training.md, benchmarks/bench_forgetting.py).
RECIPES: dict[str, dict[str, Any]] = {
    KEEP_GENERAL: {"distill_base": 0.15, "replay_text": "general-english", "replay_share": 0.2},
}


def recipe_flags(name: str) -> dict[str, str]:
    """A recipe as command-line flags and values, as ``--help`` shows them and benchmarks pass them.

    >>> recipe_flags("keep-general")["--distill-base"]
    '0.15'
    """
    return {f"--{k.replace('_', '-')}": f"{v:g}" if isinstance(v, float) else str(v) for k, v in RECIPES[name].items()}

#: Options that may differ when resuming a run (they change when/where to stop, not what is learnt).
RESUME_MAY_CHANGE = frozenset(
    {
        "max_steps", "epochs", "max_train_minutes", "resume", "force", "eval_sets", "export_ct2", "export",
        "device", "num_workers", "threads", "log_every", "progress", "cache_dir", "patience", "report_to",
        "merge_alphas",
    }
)

# ``--help`` sections, in the order they are shown.
WHAT = "what to train"
TRAINS = "what trains"
HOW_LONG = "how long"
OPTIM = "optimisation"
TARGETS = "targets"
AUGMENT = "augmentation"
CTC = "CTC"
DATA = "data"
KEEP = "keeping general English"
EVAL = "evaluation and export"
RUNTIME = "runtime"


@dataclass
class TrainConfig:
    """All options of ``asrtune train`` (see ``asrtune train --help`` or docs/options.md).

    >>> TrainConfig(model="m", train=["a.jsonl", "b.jsonl"], weights=[0.9, 0.1], out="r").validate().weights
    [0.9, 0.1]
    """

    model: str = option("", group=WHAT, help="required: hub id, local model folder, CTranslate2 folder or a training run dir")
    train: list[str] = option(list, metavar="JSONL", group=WHAT, help="required: training manifest(s); several are mixed by --weights")
    weights: list[float] | None = option(None, group=WHAT,
                                         help="sampling weights of the --train manifests, e.g. 0.9,0.1 to replay general data")
    dev: str | None = option(None, metavar="JSONL", group=WHAT, help="dev manifest: WER every --eval-every steps picks best/")
    out: str = option("", metavar="DIR", group=WHAT, help="required: the run directory")

    freeze: str = option("auto", choices=FREEZE_CHOICES, group=TRAINS,
                         help="freezing preset; auto = encoder for Whisper, feature-encoder for CTC")
    adapter: str = option("none", choices=ADAPTER_CHOICES, group=TRAINS,
                          help="lora trains LoRA adapters on the decoder and any --train-encoder-top layers (merged into best/ and final/)")
    lora_r: int = option(16, group=TRAINS, help="LoRA rank")
    lora_alpha: int = option(32, group=TRAINS, help="LoRA alpha (scale = alpha / rank)")
    lora_dropout: float = option(0.05, group=TRAINS, help="LoRA dropout, in [0, 1)")
    freeze_token_embeddings: bool = option(False, group=TRAINS,
                                           help="keep the (output-tied) token embeddings fixed: faster, less forgetting")
    unfreeze_after: int | None = option(None, group=TRAINS,
                                        help="gradual unfreezing: after this many steps, make --unfreeze-top-layers trainable")
    unfreeze_top_layers: int = option(0, group=TRAINS,
                                      help="top encoder layers to train (at once, or after --unfreeze-after steps)")
    encoder_lr: float | None = option(None, group=TRAINS, help="learning rate of unfrozen encoder layers (none = lr / 10)")
    train_encoder_top: int = option(0, group=TRAINS,
                                    help="train the top K encoder layers (+ final norm) with the decoder from step 0, "
                                         "caching the frozen layers below them; subsumes --unfreeze-top-layers K "
                                         "without --unfreeze-after, and keeps the cache (with --adapter lora: LoRA on them)")

    max_steps: int | None = option(None, group=HOW_LONG, help="optimiser steps to train (--max-train-minutes may stop the run earlier)")
    epochs: float | None = option(None, group=HOW_LONG, help="epochs to train (none = 3 when --max-steps is not given)")
    max_train_minutes: float | None = option(None, group=HOW_LONG,
                                             help="stop after this many minutes of wall time (then evaluate and save)")
    patience: int | None = option(None, group=HOW_LONG,
                                  help="early stopping: dev evaluations without a WER gain before stopping (needs --dev)")

    batch_size: int = option(16, group=OPTIM, help="utterances per step and process")
    grad_accum: int = option(1, group=OPTIM, help="gradient accumulation micro-batches per step")
    lr: float = option(1e-5, group=OPTIM, help="peak learning rate")
    weight_decay: float = option(0.01, group=OPTIM, help="AdamW weight decay (matrices only)")
    warmup_steps: int = option(50, group=OPTIM, help="steps of linear warm-up")
    lr_schedule: str = option("linear", choices=SCHEDULE_CHOICES, group=OPTIM, help="learning-rate decay after warm-up")
    max_grad_norm: float = option(1.0, group=OPTIM, help="gradient clipping norm")
    precision: str = option("auto", choices=PRECISION_CHOICES, group=OPTIM,
                            help="auto = bf16/fp16 autocast on CUDA, fp32 on CPU")
    gradient_checkpointing: bool = option(False, group=OPTIM, help="recompute activations to save memory")
    seed: int = option(0, group=OPTIM, help="random seed")
    divergence_factor: float = option(4.0, group=OPTIM,
                                      help="stop when the smoothed loss exceeds this multiple of its best (and has risen by over 0.5 nats)")

    text_policy: str = option("sentence", choices=POLICIES, group=TARGETS,
                              help="target text: sentence = ALL-CAPS transcripts become sentence case ending in a full stop, keep = as written, "
                                   "lower = lower case, normalize = Whisper's English normaliser")
    language: str | None = option(None, group=TARGETS, help="language of a multilingual Whisper (none = English)")
    task: str = option("transcribe", choices=TASK_CHOICES, group=TARGETS, help="Whisper task")
    # Whisper only (CTC ignores them). Defaults: see asrtune/training/targets.py and no_speech.py.
    timestamp_fraction: float = option(0.5, group=TARGETS,
                                       help="share of examples trained in Whisper's timestamp format (<|0.00|> text <|end|>) "
                                            "so the tuned model keeps timestamped decoding; lines with timed parts "
                                            "('asrtune manifest pack' windows, 'manifest align' segments) get one "
                                            "timestamp pair per part, which long-form timestamps need; 0 = never")
    prompt_fraction: float = option(0.3, group=TARGETS,
                                    help="share of examples given the previous utterance's text (same speaker/source) "
                                         "as a <|startofprev|> prompt, so --prompt and long-form decoding keep working; 0 = never")
    prompt_terms: str | None = option(None, metavar="FILE", group=TARGETS,
                                      help="with --prompt-fraction: prompts are random subsets of these terms (one per line) "
                                           "instead of the previous utterance; 'auto' = the training transcripts' "
                                           "most frequent words (a vocabulary prompt, as users write --prompt)")
    # benchmarks/bench_timestamps.py (300 steps on speechocean762): faster-whisper on 30 noise/silence/hum clips
    # gave text on 21 with plain training, 0 with this (and the timestamp/prompt fractions); test WER within its CI.
    no_speech_fraction: float = option(0.05, group=TARGETS,
                                       help="add this share (of the first training manifest's size) of generated "
                                            "silence/noise/hum clips (1-8 s) that end right after the decoding prefix "
                                            "and train Whisper's no-speech token; 0 = none")
    # benchmarks/bench_timestamps.py: tuned on clips alone, faster-whisper found 20 segments in the 5-minute
    # long-form file (base tiny.en: 64); with the clips plus their packed windows, 54 (WER 3.60 -> 2.63 %).
    pack_windows: bool = option(False, group=TARGETS,
                                help="also train on the first --train manifest's clips packed into <= 30 s windows "
                                     "(a speaker's consecutive clips, one timed part each, as 'asrtune manifest pack'; "
                                     "written once to the cache), so timestamped targets hold several segments and "
                                     "long-form timestamps survive tuning")

    spec_augment: bool = option(False, group=AUGMENT, help="SpecAugment on the features (turns the encoder cache off)")
    speed_perturb: bool = option(False, group=AUGMENT, help="speed perturbation 0.9/1.0/1.1 (turns the encoder cache off)")
    noise_snr_db: float | None = option(None, group=AUGMENT,
                                        help="add white noise at this signal-to-noise ratio in dB (turns the encoder cache off)")

    extend_vocab: bool = option(False, group=CTC, help="add transcript characters the vocabulary lacks (new CTC-head rows)")
    char_map: str | None = option(None, group=CTC,
                                  help="rewrite or drop characters before training, e.g. \"é=e,’=',—=\" (empty right side drops)")
    mask_time_prob: float = option(0.05, group=CTC, help="with --spec-augment: share of frames masked in time")
    mask_time_length: int = option(10, group=CTC, help="with --spec-augment: frames per time mask")
    mask_feature_prob: float = option(0.0, group=CTC, help="with --spec-augment: share of feature channels masked")

    group_by_duration: bool | None = option(None, group=DATA,
                                            help="batch utterances of similar duration to cut padding (none = on for CTC, off for Whisper)")
    cache: str = option("auto", choices=CACHE_CHOICES, group=DATA,
                        help="auto = cache encoder outputs when the encoder is frozen and nothing augments, and reuse the step-0 dev/guard hypotheses of an earlier run with the same weights; off = neither")
    cache_dir: str | None = option(None, metavar="DIR", group=DATA, help="folder of the encoder-output cache and the step-0 dev/guard hypotheses (none = the asrtune cache)")
    num_workers: int = option(0, group=DATA,
                              help="threads that decode, resample and augment audio in parallel (0 = in the training thread)")

    eval_every: int = option(100, group=EVAL, help="steps between dev evaluations")
    eval_batch_size: int = option(16, group=EVAL, help="batch size of dev decoding and cache building")
    eval_sets: list[str] = option(list, metavar="JSONL", group=EVAL,
                                  help="after training: base vs tuned WER on these manifests")
    export_ct2: bool = option(False, group=EVAL, help="write a CTranslate2 int8 copy of best/ to RUN_DIR/best-ct2 (= --export ct2)")
    export: list[str] = option(list, metavar="FORMAT", group=EVAL,
                               help="at the end, export best/ to RUN_DIR/best-FORMAT for each of ct2 (int8), ggml (whisper.cpp f16), "
                                    "onnx (fp32), openai-whisper (Whisper models; pip install 'asrtune[export]')")
    save_every: int = option(100, group=EVAL, help="steps between resumable checkpoints")
    log_every: int = option(10, group=EVAL, help="steps between metrics.jsonl lines")
    report_to: str = option("none", choices=REPORT_TO, group=EVAL,
                            help="also log curves, dev WERs and decoded dev examples to tensorboard or mlflow "
                                 "(pip install 'asrtune[tracking]'); metrics.jsonl is always written")
    guard_dev: str | None = option(None, metavar="JSONL", group=EVAL,
                                   help="forgetting guard: a general-English dev manifest (never a test set) scored at "
                                        "every evaluation; best/ only from checkpoints within --guard-margin of the base")
    guard_margin: float = option(0.5, group=EVAL,
                                 help="with --guard-dev: allowed guard-WER rise over the base model, in absolute percentage points")
    merge_alphas: list[float] | str = option(AUTO, metavar="ALPHA", group=EVAL,
                                             help="after training, score weights interpolated between the base model and "
                                                  "final/ ((1-a)*base + a*final for each a; WiSE-FT) on dev and the guard; "
                                                  "one that beats best/ within the guard margin becomes best/. auto = "
                                                  f"{','.join(f'{a:g}' for a in DEFAULT_MERGE_ALPHAS)} when the "
                                                  "--guard-dev guard refused a checkpoint better on dev than best/, else "
                                                  "none; a list (e.g. 0.3,0.6) = always those; none = never")

    device: str = option("auto", group=RUNTIME, help="auto, cpu, cuda or cuda:N")
    threads: int | None = option(None, group=RUNTIME, help="torch CPU threads (none = torch's default)")
    progress: bool = option(True, group=RUNTIME, help="show progress bars")
    resume: str | None = option(None, metavar="RUN_DIR", group=RUNTIME,
                                help="continue the run in this run dir (its config.yaml is the starting point)")
    force: bool = option(False, group=RUNTIME, help="resume despite a changed config, or reuse a non-empty --out")

    recipe: str | None = option(None, choices=tuple(RECIPES), group=KEEP,
                                help="a named preset of the options below (keep-general: "
                                     + ", ".join(f"{flag} {value}" for flag, value in recipe_flags(KEEP_GENERAL).items())
                                     + "); an option you give yourself wins")
    l2_sp: float = option(0.0, metavar="STRENGTH", group=KEEP,
                          help="L2-SP: after each step pull trainable weights back towards their base values by "
                               "lr x STRENGTH x (w - w_base) (decoupled, like AdamW's decay); 1/STRENGTH is about how far "
                               "one weight may move; 0 = off")
    distill_base: float = option(0.0, metavar="WEIGHT", group=KEEP,
                                 help="learning without forgetting: add WEIGHT x T^2 x KL(base || model) per target token, "
                                      "the frozen base model's token distribution on the same audio (Whisper; one more "
                                      "decoder forward per step); 0 = off")
    distill_temperature: float = option(2.0, metavar="T", group=KEEP, help="with --distill-base: softmax temperature of both distributions")
    replay_text: str | None = option(None, metavar="FILE", group=KEEP,
                                     help="general-English sentences (one per line; general-english = the 191 asrtune ships) "
                                          "spoken once by eSpeak (asrtune synth; pip install 'asrtune[synth]') and mixed into "
                                          "training at --replay-share (Whisper)")
    replay_share: float = option(0.2, group=KEEP, help="with --replay-text: share of training utterances drawn from the replay")

    # ------------------------------------------------------------------------------------------

    def validate(self) -> "TrainConfig":
        """Check every option; raise ConfigError naming the first bad one. Returns self."""
        if not self.model:
            raise ConfigError("--model is required (a hub id such as openai/whisper-tiny.en, a folder or a run dir)")
        if not self.train:
            raise ConfigError("--train is required (one or more JSONL manifests)")
        if not self.out:
            raise ConfigError("--out is required (the run directory)")
        check_choices(self)
        self.apply_recipe()
        self._validate_weights()
        self._validate_numbers()
        self._validate_unfreeze()
        self._validate_targets()
        self._validate_encoder_top()
        self._validate_keep_general()
        self._validate_guard()
        self._validate_merge()
        self._validate_export()
        if self.noise_snr_db is not None and not math.isfinite(self.noise_snr_db):
            raise ConfigError("--noise-snr-db must be a finite number of decibels")
        if self.patience is not None and not self.dev:
            raise ConfigError("--patience (early stopping) needs a --dev manifest to evaluate on")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")
        return self

    def _validate_weights(self) -> None:
        """``--weights``: one non-negative weight per --train manifest, normalised to sum 1."""
        if self.weights is None:
            return
        if len(self.weights) != len(self.train):
            raise ConfigError(
                f"--weights has {len(self.weights)} value(s) but --train names {len(self.train)} manifest(s); give one weight per manifest"
            )
        if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ConfigError("--weights must be non-negative numbers with a positive sum")
        total = sum(self.weights)
        self.weights = [w / total for w in self.weights]
        if self.weights[0] == 0:
            raise ConfigError("--weights: the first --train manifest (the domain set) needs a positive weight")

    def _validate_numbers(self) -> None:
        """Step counts, sizes, rates and limits: positive (or >= 0) where the option says so."""
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError("give either --max-steps or --epochs, not both")
        _positive("max-steps", self.max_steps)
        _positive("epochs", self.epochs)
        _positive("max-train-minutes", self.max_train_minutes)
        for name in ("batch_size", "grad_accum", "eval_every", "save_every", "log_every", "eval_batch_size", "lora_r", "lora_alpha"):
            _positive(name.replace("_", "-"), getattr(self, name), integer=True)
        _positive("lr", self.lr)
        _positive("encoder-lr", self.encoder_lr)
        _positive("max-grad-norm", self.max_grad_norm)
        if self.divergence_factor <= 1:
            raise ConfigError(f"--divergence-factor must be > 1, got {self.divergence_factor}")
        if self.warmup_steps < 0:
            raise ConfigError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.num_workers < 0:
            raise ConfigError(f"--num-workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"--patience must be >= 1 evaluations, got {self.patience}")

    def _validate_unfreeze(self) -> None:
        """``--unfreeze-top-layers K`` / ``--unfreeze-after N``: counts, and only with --freeze encoder."""
        if self.unfreeze_top_layers < 0:
            raise ConfigError(f"--unfreeze-top-layers must be >= 0, got {self.unfreeze_top_layers}")
        if self.unfreeze_after is not None:
            if self.unfreeze_after < 0:
                raise ConfigError(f"--unfreeze-after must be >= 0 steps, got {self.unfreeze_after}")
            if self.unfreeze_top_layers == 0:
                raise ConfigError("--unfreeze-after needs --unfreeze-top-layers K (how many top encoder layers to unfreeze)")
        if self.unfreeze_top_layers and self.freeze not in ("encoder", "auto"):
            raise ConfigError(f"--unfreeze-top-layers only makes sense with --freeze encoder (got --freeze {self.freeze})")

    def _validate_targets(self) -> None:
        """The target shares (timestamps, prompts, no-speech) and ``--prompt-terms``."""
        for name in ("timestamp_fraction", "prompt_fraction", "no_speech_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be a share between 0 and 1, got {value}")
        if self.prompt_terms not in (None, AUTO) and not Path(self.prompt_terms).is_file():
            raise ConfigError(f"--prompt-terms {self.prompt_terms}: file not found")

    def apply_recipe(self) -> "TrainConfig":
        """Fill in the ``--recipe`` preset's options that are still at their defaults. Returns self.

        >>> cfg = TrainConfig(recipe="keep-general", l2_sp=5.0).apply_recipe()
        >>> cfg.l2_sp, cfg.distill_base == RECIPES["keep-general"]["distill_base"]
        (5.0, True)
        """
        if self.recipe is None:
            return self
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) == defaults[name]:
                setattr(self, name, value)
        return self

    def keep_general_settings(self) -> dict[str, Any]:
        """The forgetting remedies in force (for result.json), e.g. ``{"distill_base": 1.0,
        "distill_temperature": 2.0}``; empty when none is."""
        settings: dict[str, Any] = {"recipe": self.recipe} if self.recipe else {}
        if self.l2_sp:
            settings["l2_sp"] = self.l2_sp
        if self.distill_base:
            settings |= {"distill_base": self.distill_base, "distill_temperature": self.distill_temperature}
        if self.replay_text:
            settings |= {"replay_text": self.replay_text, "replay_share": self.replay_share}
        return settings

    def _validate_keep_general(self) -> None:
        for name in ("l2_sp", "distill_base"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0 (0 = off), got {value}")
        if self.l2_sp * self.lr * max(1.0, (self.encoder_lr or 0) / self.lr) >= 1:
            raise ConfigError(f"--l2-sp {self.l2_sp:g} x --lr {self.lr:g} >= 1: each step would pull the weights past "
                              "their base values; use a strength below 1 / lr")
        if not math.isfinite(self.distill_temperature) or self.distill_temperature <= 0:
            raise ConfigError(f"--distill-temperature must be > 0, got {self.distill_temperature}")
        if not 0 < self.replay_share < 1:
            raise ConfigError(f"--replay-share must lie strictly between 0 and 1, got {self.replay_share}")
        if self.replay_text is not None:
            text_file = replay_text_file(self.replay_text)
            if not text_file.is_file():
                raise ConfigError(f"--replay-text {self.replay_text}: file not found "
                                  f"(or use {SHIPPED_NAME}, the sentences asrtune ships)")
            try:  # the sentences synthesis will read, checked before the model loads
                read_sentence_file(text_file)
            except AsrtuneError as e:
                raise ConfigError(f"--replay-text: {e}") from None

    def _validate_encoder_top(self) -> None:
        if self.train_encoder_top < 0:
            raise ConfigError(f"--train-encoder-top must be >= 0 layers, got {self.train_encoder_top}")
        if not self.train_encoder_top:
            return
        if self.unfreeze_top_layers:
            raise ConfigError("give --train-encoder-top (top layers train from step 0, cached below) or "
                              "--unfreeze-top-layers (gradual unfreezing), not both")
        if self.freeze not in ("encoder", "auto"):
            raise ConfigError(f"--train-encoder-top only makes sense with --freeze encoder (got --freeze {self.freeze})")

    def _validate_export(self) -> None:
        self.export = parse_formats(self.export, "--export")

    def export_formats(self) -> list[str]:
        """The formats best/ is exported to at the end: ``--export``, plus ct2 for ``--export-ct2``."""
        return list(dict.fromkeys((["ct2"] if self.export_ct2 else []) + list(self.export)))

    def _validate_merge(self) -> None:
        if isinstance(self.merge_alphas, str):
            word = self.merge_alphas.strip().lower()
            if word not in (AUTO, *NO_MERGES):
                raise ConfigError(f"--merge-alphas: give numbers between 0 and 1 (e.g. 0.25,0.5,0.75), 'auto' or 'none'; "
                                  f"got {self.merge_alphas!r}")
            self.merge_alphas = AUTO if word == AUTO else []
            return
        for alpha in self.merge_alphas:
            if not 0.0 < alpha < 1.0:  # 0 is the base and 1 final/: both are scored anyway
                raise ConfigError(f"--merge-alphas: each value must lie strictly between 0 (the base model) and 1 "
                                  f"(final/), got {alpha:g}")
        if self.merge_alphas and not self.dev:
            raise ConfigError("--merge-alphas needs a --dev manifest (the interpolations are chosen by dev WER)")

    def _validate_guard(self) -> None:
        if not math.isfinite(self.guard_margin) or self.guard_margin < 0:
            raise ConfigError(f"--guard-margin must be >= 0 percentage points, got {self.guard_margin}")
        if self.guard_dev is None:
            return
        if not self.dev:
            raise ConfigError("--guard-dev needs a --dev manifest (best/ is chosen by dev WER among guarded checkpoints)")
        guard = Path(self.guard_dev).resolve()
        for option_name, paths in (("eval-sets", self.eval_sets), ("train", self.train), ("dev", [self.dev])):
            if any(Path(p).resolve() == guard for p in paths):
                raise ConfigError(f"--guard-dev {self.guard_dev} is also a --{option_name} manifest; the guard must be "
                                  "a separate general-English dev set")
        if looks_like_test_set(self.guard_dev):
            raise ConfigError(f"--guard-dev {self.guard_dev}: named like a test set; choosing checkpoints on a test "
                              "set makes its WER optimistic - use a general-English dev set")

    @property
    def may_merge(self) -> bool:
        """Whether the run may score WiSE-FT merges at its end (so it keeps the base weights)."""
        if isinstance(self.merge_alphas, str):  # auto (validate() has normalised the words)
            return self.merge_alphas == AUTO and self.guard_dev is not None
        return bool(self.merge_alphas)

    @property
    def augmenting(self) -> bool:
        """True when any input-side augmentation is on (which makes cached encoder outputs stale)."""
        return self.spec_augment or self.speed_perturb or self.noise_snr_db is not None

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping (YAML), coercing types; unknown keys raise ConfigError naming them."""
        cfg = cls()
        cfg.update(values, source)
        return cfg

    def update(self, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Set fields from a mapping (keys may use ``-`` or ``_``), checking names, types and choices."""
        update_options(self, values, source)
        return self


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping of options; errors name the file."""
    import yaml  # heavy: yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    if "config" in data or "config_file" in data:
        raise ConfigError(f"--config {path}: a config file cannot name another config file")
    return data


def save_yaml_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the effective config as YAML (atomically)."""
    import yaml  # heavy: yaml

    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True))


def config_differences(old: dict[str, Any], new: TrainConfig) -> list[str]:
    """Options (other than :data:`RESUME_MAY_CHANGE`) whose value differs between two configs."""
    current = new.to_dict()
    diffs = []
    for key in current:
        if key in RESUME_MAY_CHANGE or key == "out":
            continue
        if key in old and _normalise(old[key]) != _normalise(current[key]):
            diffs.append(f"{key}: {old[key]!r} -> {current[key]!r}")
    return diffs


# --- helpers ------------------------------------------------------------------------------------


def looks_like_test_set(path: str | os.PathLike) -> bool:
    """True when the manifest's file or folder name has a ``test`` word.

    >>> looks_like_test_set("data/librispeech-test-clean-40/manifest.jsonl"), looks_like_test_set("so/test.jsonl")
    (True, True)
    >>> looks_like_test_set("data/librivox-cmu-11/manifest.jsonl"), looks_like_test_set("contest/dev.jsonl")
    (False, False)
    """
    p = Path(path)
    words = re.split(r"[^a-z0-9]+", f"{p.parent.name} {p.stem}".lower())
    return "test" in words


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _positive(option: str, value: float | None, integer: bool = False) -> None:
    if value is None:
        return
    if integer and int(value) != value:
        raise ConfigError(f"--{option} must be a whole number, got {value!r}")
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"--{option} must be a positive number, got {value!r}")
