"""Models: find them (``resolve_model``), load them, convert between CTranslate2 and HF formats,
interpolate a tuned model with its base (``interpolate_folders``)."""

from asrtune.models.cache import cache_dir
from asrtune.models.convert import ct2_to_hf, hf_to_ct2
from asrtune.models.interpolate import interpolate_folders
from asrtune.models.loading import load_ctc, load_whisper
from asrtune.models.registry import ResolvedModel, ct2_copy_for, resolve_model

__all__ = [
    "ResolvedModel",
    "cache_dir",
    "ct2_copy_for",
    "ct2_to_hf",
    "hf_to_ct2",
    "interpolate_folders",
    "load_ctc",
    "load_whisper",
    "resolve_model",
]
