"""Small randomly initialised wav2vec2 CTC models for tests (seconds to build, no downloads)."""

from __future__ import annotations

from pathlib import Path

from asrtune.models.random_ctc import save_random_wav2vec2

__all__ = ["save_random_wav2vec2", "tiny_ctc_model"]


def tiny_ctc_model(folder: Path, vocab_text: str = "abcdefghijklmnopqrstuvwxyz'", seed: int = 0):
    """``(model, processor)`` of a random wav2vec2 with a lower-case vocabulary, saved in ``folder``."""
    from transformers import Wav2Vec2ForCTC

    from asrtune.models.ctc_vocab import build_vocab, make_processor

    vocab = build_vocab([vocab_text])
    save_random_wav2vec2(folder, vocab_size=len(vocab), seed=seed)
    processor = make_processor(vocab, folder)
    return Wav2Vec2ForCTC.from_pretrained(folder), processor
