"""Per-request Whisper prompt and language on one loaded model.

The OpenAI API takes ``prompt`` and ``language`` with every request, but a recogniser builds its
decoder prefix (``<|startoftranscript|>``, language, ``<|startofprev|>`` + prompt tokens) once,
at load time. :class:`PromptSwitch` checks a request's prompt/language with the served
:class:`~asrtune.inference.options.RecognizerOptions` rules and builds its prefix with the
recogniser's own ``build_prefix`` (the one prompt rule: plain text, the last 223 tokens) up
front, so a bad language is a 400 before anything is queued, and swaps it in around one model
call, in the model's worker thread, so requests with different prompts never share a batch or race.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Hashable, Iterator

from asrtune.errors import ConfigError
from asrtune.inference.options import RecognizerOptions
from asrtune.inference.whisper_common import using_prefix


class PromptSwitch:
    """Knows the served model's default prefix and builds (cached) prefixes for other prompts."""

    def __init__(self, recognizer: Any, options: RecognizerOptions | None = None):
        self.recognizer = recognizer
        self.options = options or RecognizerOptions()
        self.default = (getattr(recognizer, "prompt_text", None), getattr(recognizer, "language", None))
        self._prefixes: dict[tuple, Any] = {}

    @property
    def switchable(self) -> bool:
        """Whether this engine's prefix can be swapped (Whisper engines; CTC models take no prompt)."""
        return callable(getattr(self.recognizer, "build_prefix", None)) and hasattr(self.recognizer, "prompt")

    def key(self, prompt: str | None, language: str | None) -> Hashable:
        """The batching key for a request; raises ConfigError for a prompt/language this model cannot take."""
        prompt = (prompt or "").strip() or self.default[0]
        language = (language or "").strip().lower() or self.default[1]
        key = (prompt, language)
        if key == self.default or key in self._prefixes:
            return key
        if not self.switchable:
            raise ConfigError(f"this model ({getattr(self.recognizer, 'family', '?')}) takes no per-request prompt or language")
        self.options.replace(prompt=prompt, language=language).validate()
        self._prefixes[key] = self.recognizer.build_prefix(prompt, language)
        return key

    @contextmanager
    def using(self, key: Hashable) -> Iterator[None]:
        """Decode with ``key``'s prefix inside the block (worker thread only)."""
        if key == self.default or key not in self._prefixes:
            yield
            return
        with using_prefix(self.recognizer, self._prefixes[key]):
            yield
