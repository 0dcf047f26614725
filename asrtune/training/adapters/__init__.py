"""One adapter class per model family (see ``base.py`` for the interface)."""

from __future__ import annotations

from asrtune.errors import ConfigError
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.adapters.ctc import CTCAdapter
from asrtune.training.adapters.whisper import WhisperAdapter

ADAPTERS: dict[str, type[ModelAdapter]] = {"whisper": WhisperAdapter, "ctc": CTCAdapter}


def adapter_class(family: str) -> type[ModelAdapter]:
    """The adapter for a ``ResolvedModel.family``.

    >>> adapter_class("ctc").__name__
    'CTCAdapter'
    """
    if family not in ADAPTERS:
        raise ConfigError(f"--model: no trainer for model family {family!r} (known: {', '.join(ADAPTERS)})")
    return ADAPTERS[family]
