"""Per-request Whisper prompt and language on one loaded model.

The OpenAI API takes ``prompt`` and ``language`` with every request, but a recogniser builds its
decoder prefix (``<|startoftranscript|>``, language, ``<|startofprev|>`` + prompt tokens) once,
at load time. :class:`PromptSwitch` builds the prefix for a request's prompt/language up front
(so a bad language is a 400 before anything is queued) and swaps it in around one model call,
in the model's worker thread, so requests with different prompts never share a batch or race.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Hashable, Iterator

from asrtune.errors import ConfigError

MAX_DECODER_TOKENS = 448  # Whisper's decoder positions, prompt included


class PromptSwitch:
    """Knows the served model's default prefix and builds (cached) prefixes for other prompts."""

    def __init__(self, recognizer: Any, model_path=None):
        self.recognizer = recognizer
        self.default = (getattr(recognizer, "prompt_text", None), getattr(recognizer, "language", None))
        self._prefixes: dict[tuple, Any] = {}
        self._tokenizer = getattr(recognizer, "tokenizer", None) or getattr(getattr(recognizer, "processor", None), "tokenizer", None)
        self._vocab_size = _vocab_size(model_path) if model_path is not None else None

    @property
    def switchable(self) -> bool:
        """Whether this engine's prefix can be swapped (Whisper engines; CTC models take no prompt)."""
        return self._tokenizer is not None and self._vocab_size is not None and hasattr(self.recognizer, "prompt")

    def key(self, prompt: str | None, language: str | None) -> Hashable:
        """The batching key for a request; raises ConfigError for a prompt/language this model cannot take."""
        prompt = (prompt or "").strip() or self.default[0]
        language = (language or "").strip().lower() or self.default[1]
        key = (prompt, language)
        if key == self.default or key in self._prefixes:
            return key
        if not self.switchable:
            raise ConfigError(f"this model ({getattr(self.recognizer, 'family', '?')}) takes no per-request prompt or language")
        from asrtune.inference.whisper_common import build_prompt

        self._prefixes[key] = build_prompt(self._tokenizer, self._vocab_size, language, prompt, MAX_DECODER_TOKENS)
        return key

    @contextmanager
    def using(self, key: Hashable) -> Iterator[None]:
        """Decode with ``key``'s prefix inside the block (worker thread only)."""
        if key == self.default or key not in self._prefixes:
            yield
            return
        saved = self.recognizer.prompt
        self.recognizer.prompt = self._prefixes[key]
        try:
            yield
        finally:
            self.recognizer.prompt = saved


def _vocab_size(model_path) -> int | None:
    try:
        return int(json.loads((model_path / "config.json").read_text())["vocab_size"])
    except (OSError, KeyError, ValueError, TypeError):
        return None
