"""Word times for Whisper through CTranslate2: its built-in ``Whisper.align`` (the cross-attention
DTW of :mod:`asrtune.alignment.cross_attention`, done in C++ over the alignment heads stored in
the converted model's config.json), as faster-whisper uses it, then the shared token -> word
grouping.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from asrtune.alignment.cross_attention import SECONDS_PER_ENCODER_FRAME
from asrtune.alignment.dtw import MEDIAN_FILTER_WIDTH
from asrtune.alignment.words import Word, words_from_alignment


def check_alignment_heads(ct2_dir: str | Path) -> bool:
    """Whether a CTranslate2 Whisper folder names its alignment heads; warn when it does not
    (CTranslate2 then aligns with the heads of the top half of the decoder layers)."""
    config = Path(ct2_dir) / "config.json"
    try:
        heads = json.loads(config.read_text()).get("alignment_heads")
    except (OSError, ValueError):
        heads = None
    if not heads:
        warnings.warn(f"{config}: no alignment_heads; word times use the top decoder layers' heads (less precise)",
                      RuntimeWarning, stacklevel=2)
    return bool(heads)


def align_tokens(
    model,
    encoded,
    start_sequence: Sequence[int],
    text_tokens: Sequence[Sequence[int]],
    mel_frames: Sequence[int],
    decode: Callable[[list[int]], str],
) -> list[tuple[list[Word], list[float]]]:
    """Words (seconds from each clip's start) and each text token's probability (teacher-forced)
    for a batch already encoded by ``model``.

    ``start_sequence`` is ``<|startoftranscript|>`` [+ language + task], without
    ``<|notimestamps|>`` (CTranslate2 adds it); ``mel_frames`` are each clip's log-mel frames
    (10 ms) holding audio. Clips with no text get no words.
    """
    results = model.align(
        encoded, list(start_sequence), [list(t) for t in text_tokens], [int(n) for n in mel_frames],
        median_filter_width=MEDIAN_FILTER_WIDTH,
    )
    out: list[tuple[list[Word], list[float]]] = []
    for result, tokens in zip(results, text_tokens):
        if not tokens:
            out.append(([], []))
            continue
        pairs = np.asarray(result.alignments, dtype=np.int64).reshape(-1, 2)
        probs = list(result.text_token_probs)
        out.append((words_from_alignment(list(tokens), decode, pairs[:, 0], pairs[:, 1], probs, SECONDS_PER_ENCODER_FRAME), probs))
    return out
