"""Models: find them (``resolve_model``), load them, convert between CTranslate2 and HF formats."""

from asrtune.models.cache import cache_dir
from asrtune.models.convert import ct2_to_hf, hf_to_ct2
from asrtune.models.loading import load_ctc, load_whisper
from asrtune.models.registry import ResolvedModel, ct2_copy_for, resolve_model

__all__ = [
    "ResolvedModel",
    "cache_dir",
    "ct2_copy_for",
    "ct2_to_hf",
    "hf_to_ct2",
    "load_ctc",
    "load_whisper",
    "resolve_model",
]
