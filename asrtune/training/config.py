"""``TrainConfig``: every training option, in one place, with one spelling.

A field name is the CLI option with ``-`` turned into ``_`` and is also the YAML key:
``--max-steps 200`` == ``max_steps: 200`` in ``--config cfg.yaml``. The command line overrides
the YAML file, which overrides the defaults here. An unknown YAML key, a wrong type or an
impossible combination raises :class:`~asrtune.errors.ConfigError` naming the option.

The effective config is written to ``RUN_DIR/config.yaml``; ``--resume RUN_DIR`` compares
against it and refuses a changed config (unless ``--force``), except for the options in
:data:`RESUME_MAY_CHANGE` (how long to train, where to evaluate at the end, ...).

>>> cfg = TrainConfig(model="openai/whisper-tiny.en", train=["train.jsonl"], out="runs/a")
>>> cfg.freeze, cfg.text_policy, cfg.lr
('auto', 'sentence', 1e-05)
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asrtune.errors import ConfigError

FREEZE_CHOICES = ("auto", "encoder", "feature-encoder", "none")
ADAPTER_CHOICES = ("none", "lora")
SCHEDULE_CHOICES = ("linear", "cosine", "constant")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
TEXT_POLICY_CHOICES = ("sentence", "keep", "normalize", "lower")
CACHE_CHOICES = ("auto", "off")

#: Options that may differ when resuming a run (they change when/where to stop, not what is learnt).
RESUME_MAY_CHANGE = frozenset(
    {
        "max_steps", "epochs", "max_train_minutes", "resume", "force", "eval_sets", "export_ct2",
        "device", "num_workers", "threads", "log_every", "progress", "cache_dir", "patience",
    }
)


@dataclass
class TrainConfig:
    """All options of ``asrtune train`` (see ``asrtune train --help`` for each one's meaning).

    >>> TrainConfig(model="m", train=["a.jsonl", "b.jsonl"], weights=[0.9, 0.1], out="r").validate().weights
    [0.9, 0.1]
    """

    # what to train, on what, where to write
    model: str = ""
    train: list[str] = field(default_factory=list)
    weights: list[float] | None = None
    dev: str | None = None
    out: str = ""
    # what trains
    #: "auto" = the model family's default: encoder (Whisper), feature-encoder (CTC)
    freeze: str = "auto"
    adapter: str = "none"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    freeze_token_embeddings: bool = False
    unfreeze_after: int | None = None
    unfreeze_top_layers: int = 0
    encoder_lr: float | None = None
    # how long
    max_steps: int | None = None
    epochs: float | None = None
    max_train_minutes: float | None = None
    # optimisation
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int = 50
    lr_schedule: str = "linear"
    max_grad_norm: float = 1.0
    precision: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0
    # targets
    text_policy: str = "sentence"
    language: str | None = None
    task: str = "transcribe"
    # augmentation (all off by default; any of them disables the encoder cache)
    spec_augment: bool = False
    speed_perturb: bool = False
    noise_snr_db: float | None = None
    # CTC models (wav2vec2 family; see asrtune/training/adapters/ctc.py and asrtune/models/ctc_vocab.py)
    extend_vocab: bool = False
    char_map: str | None = None
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_feature_prob: float = 0.0
    group_by_duration: bool | None = None
    # encoder-output cache
    cache: str = "auto"
    cache_dir: str | None = None
    # evaluation, checkpoints, early stopping
    eval_every: int = 100
    eval_batch_size: int = 16
    patience: int | None = None
    save_every: int = 100
    log_every: int = 10
    divergence_factor: float = 4.0
    eval_sets: list[str] = field(default_factory=list)
    export_ct2: bool = False
    # runtime
    device: str = "auto"
    num_workers: int = 0
    threads: int | None = None
    progress: bool = True
    resume: str | None = None
    force: bool = False

    # ------------------------------------------------------------------------------------------

    def validate(self) -> "TrainConfig":
        """Check every option; raise ConfigError naming the first bad one. Returns self."""
        if not self.model:
            raise ConfigError("--model is required (a hub id such as openai/whisper-tiny.en, a folder or a run dir)")
        if not self.train:
            raise ConfigError("--train is required (one or more JSONL manifests)")
        if not self.out:
            raise ConfigError("--out is required (the run directory)")
        _choice("freeze", self.freeze, FREEZE_CHOICES)
        _choice("adapter", self.adapter, ADAPTER_CHOICES)
        _choice("lr-schedule", self.lr_schedule, SCHEDULE_CHOICES)
        _choice("precision", self.precision, PRECISION_CHOICES)
        _choice("text-policy", self.text_policy, TEXT_POLICY_CHOICES)
        _choice("cache", self.cache, CACHE_CHOICES)
        if self.weights is not None:
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
        if self.unfreeze_top_layers < 0:
            raise ConfigError(f"--unfreeze-top-layers must be >= 0, got {self.unfreeze_top_layers}")
        if self.unfreeze_after is not None:
            if self.unfreeze_after < 0:
                raise ConfigError(f"--unfreeze-after must be >= 0 steps, got {self.unfreeze_after}")
            if self.unfreeze_top_layers == 0:
                raise ConfigError("--unfreeze-after needs --unfreeze-top-layers K (how many top encoder layers to unfreeze)")
        if self.unfreeze_top_layers and self.freeze not in ("encoder", "auto"):
            raise ConfigError(f"--unfreeze-top-layers only makes sense with --freeze encoder (got --freeze {self.freeze})")
        if self.noise_snr_db is not None and not math.isfinite(self.noise_snr_db):
            raise ConfigError("--noise-snr-db must be a finite number of decibels")
        if self.patience is not None and not self.dev:
            raise ConfigError("--patience (early stopping) needs a --dev manifest to evaluate on")
        if self.task not in ("transcribe", "translate"):
            raise ConfigError(f"--task must be transcribe or translate, got {self.task!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")
        return self

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
        """Set fields from a mapping (keys may use ``-`` or ``_``), checking names and types."""
        known = {f.name: f for f in dataclasses.fields(self)}
        hints = typing.get_type_hints(type(self))
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                close = _closest(name, known)
                hint = f" (did you mean {close!r}?)" if close else ""
                raise ConfigError(f"{source}: unknown option {key!r}{hint}")
            setattr(self, name, _coerce(name, value, hints[name], source))
        return self


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping of options; errors name the file."""
    import yaml

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
    import yaml

    from asrtune.fileio import write_text_atomic

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


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"--{option} must be one of {', '.join(choices)}; got {value!r}")


def _positive(option: str, value: float | None, integer: bool = False) -> None:
    if value is None:
        return
    if integer and int(value) != value:
        raise ConfigError(f"--{option} must be a whole number, got {value!r}")
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"--{option} must be a positive number, got {value!r}")


def _closest(name: str, known: dict) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1)
    return match[0].replace("_", "-") if match else None


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """Coerce a YAML/CLI value to the field's type; ConfigError naming the option when impossible."""
    option = name.replace("_", "-")
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: option {option!r} cannot be empty")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = args[0]
        origin = typing.get_origin(hint)
    try:
        if origin is list:
            (item_type,) = typing.get_args(hint)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [_scalar(item_type, v) for v in value]
        return _scalar(hint, value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: option {option!r} expects {_type_name(hint)}, got {value!r}") from None


def _scalar(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        return str(value).strip() if isinstance(value, str) else str(value)
    return value


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is list:
        return f"a list of {_type_name(typing.get_args(kind)[0])}"
    return {bool: "true/false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))
