"""Word times for CTC models: force-align the transcript's characters to the frame log-probabilities.

torchaudio's ``forced_align`` (a Viterbi pass over the CTC topology) finds the most likely frame
of every character of the decoded transcript; ``merge_tokens`` turns the frame labels into
character spans, and the spans between word delimiters make a word. A frame lasts the product
of the feature encoder's convolution strides in samples (320 = 20 ms for wav2vec2).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torchaudio.functional as F

from asrtune.alignment.words import Word
from asrtune.data.audio import SAMPLE_RATE_HZ


def frame_seconds(config) -> float:
    """Seconds per output frame of a wav2vec2-family model: the conv strides' product / sample rate.

    >>> class Config: conv_stride = (5, 2, 2, 2, 2, 2, 2)
    >>> frame_seconds(Config())
    0.02
    """
    return math.prod(int(s) for s in config.conv_stride) / SAMPLE_RATE_HZ


def transcript_targets(text: str, vocab: dict[str, int], word_delimiter: str = "|") -> list[int]:
    """Vocabulary ids of ``text``'s characters, spaces as the word delimiter; characters the
    vocabulary lacks (in either case) are dropped.

    >>> transcript_targets("ab c", {"a": 1, "b": 2, "c": 3, "|": 4})
    [1, 2, 4, 3]
    """
    targets = []
    for ch in " ".join(text.split()):
        key = word_delimiter if ch == " " else ch
        for candidate in (key, key.upper(), key.lower()):
            if candidate in vocab:
                targets.append(vocab[candidate])
                break
    return targets


def align_words(log_probs: np.ndarray, text: str, vocab: dict[str, int], blank_id: int, seconds_per_frame: float,
                word_delimiter: str = "|") -> list[Word]:
    """One :class:`Word` per word of ``text`` with its times in seconds from the clip start, from one
    clip's ``[frames, vocab]`` CTC log-probabilities. Probability = mean character probability."""
    words = text.split()
    targets = transcript_targets(text, vocab, word_delimiter)
    if not words or not targets or log_probs.shape[0] == 0:
        return []
    emissions = torch.from_numpy(np.ascontiguousarray(log_probs, dtype=np.float32))[None]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchaudio's deprecation notice for forced_align
            labels, scores = F.forced_align(emissions, torch.tensor([targets], dtype=torch.int32), blank=blank_id)
    except RuntimeError:  # more characters than frames: the text cannot be placed on this audio
        return []
    spans = F.merge_tokens(labels[0], scores[0].exp())
    delimiter = vocab.get(word_delimiter)
    groups: list[list] = [[]]
    for span in spans:
        if span.token == delimiter:
            groups.append([])
        else:
            groups[-1].append(span)
    groups = [g for g in groups if g]
    if len(groups) != len(words):  # a word spelled only with characters outside the vocabulary
        return []
    return [
        Word(word, g[0].start * seconds_per_frame, g[-1].end * seconds_per_frame, float(np.mean([s.score for s in g])))
        for word, g in zip(words, groups)
    ]
