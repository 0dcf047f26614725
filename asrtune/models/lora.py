"""A LoRA adapter folder (``peft``'s ``save_pretrained``: ``adapter_config.json`` + adapter weights)
merged into its base Whisper model, so it exports and runs like any model folder.

asrtune's own runs already save LoRA merged (``best/``, ``final/``); this is for adapters trained
elsewhere. The merged folder is built once per adapter content and base model, in the cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.models.cache import cached_build, content_key
from asrtune.models.registry import resolve_model

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
#: files of the base folder the merged model keeps (tokenizer, feature extractor, generation settings)
BASE_FILES = ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
              "normalizer.json", "added_tokens.json", "special_tokens_map.json", "preprocessor_config.json",
              "processor_config.json")


def is_adapter_folder(folder: Path) -> bool:
    """A peft adapter folder: ``adapter_config.json`` and no model ``config.json`` of its own."""
    folder = Path(folder)
    return folder.is_dir() and (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()


def adapter_base(folder: Path) -> str:
    """The base model an adapter folder names (``base_model_name_or_path``)."""
    try:
        base = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise AsrtuneError(f"{folder / ADAPTER_CONFIG}: unreadable ({e})") from None
    if not base:
        raise ConfigError(f"{folder / ADAPTER_CONFIG}: names no base_model_name_or_path; set it to the Whisper model "
                          "the adapter was trained on")
    return base


def merged_adapter(folder: str | Path) -> Path:
    """A Hugging Face folder holding the base model with the adapter in ``folder`` merged in (cached)."""
    folder = Path(folder)
    weights = [folder / w for w in ADAPTER_WEIGHTS if (folder / w).is_file()]
    if not weights:
        raise AsrtuneError(f"{folder}: adapter_config.json but no {' or '.join(ADAPTER_WEIGHTS)}")
    base = resolve_model(adapter_base(folder))
    if base.family != "whisper":
        raise ConfigError(f"{folder}: the adapter's base {base.name} is a {base.family} model; asrtune merges Whisper adapters")
    base_files = sorted(p for p in base.path.iterdir() if p.suffix in (".json", ".safetensors"))
    key = content_key([folder / ADAPTER_CONFIG, *weights, *base_files], salt="lora-merge:v1")
    return cached_build("lora-merged", key, lambda tmp: _merge(folder, base.path, tmp))


def _merge(adapter: Path, base: Path, dst: Path) -> None:
    # heavy: torch + peft, only when an adapter is merged
    import torch
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    try:
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise AsrtuneError(f"{adapter}: cannot apply this LoRA adapter to {base} ({e})") from None
    merged.save_pretrained(dst, safe_serialization=True)
    for name in BASE_FILES:
        if (base / name).is_file():
            shutil.copyfile(base / name, dst / name)
