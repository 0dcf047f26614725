"""Word times for Whisper through transformers: DTW over the alignment heads' cross-attention.

openai-whisper's method (``whisper/timing.py``): after decoding, run the decoder once more over
prefix + text tokens + end-of-text, take the cross-attention weights of the checkpoint's
*alignment heads* (the heads whose attention follows the audio monotonically; the checkpoint's
``generation_config.alignment_heads``), normalise each head over the tokens, median-filter along
time, average the heads and find the monotonic token-to-frame path with DTW.

transformers' default attention (SDPA) returns no weights, so :class:`CrossAttentionRecorder`
recomputes the pre-softmax scores of just the alignment heads from each cross-attention layer's
inputs, with forward pre-hooks. It costs two small matrix products per layer and needs no
change to how the model was loaded.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from asrtune.alignment.dtw import MEDIAN_FILTER_WIDTH, dtw, median_filter
from asrtune.alignment.words import Word, words_from_alignment

SECONDS_PER_ENCODER_FRAME = 0.02  # Whisper's encoder: 1500 frames per 30 s window
MEL_FRAMES_PER_ENCODER_FRAME = 2  # the encoder's stride-2 convolution


def alignment_heads(generation_config, n_layers: int, n_heads: int, model_name: str = "model") -> list[tuple[int, int]]:
    """(layer, head) pairs to align with: the checkpoint's, else every head of the top half of the
    decoder layers (openai-whisper's fallback), with a warning.

    >>> class Config: alignment_heads = [[2, 0], [3, 1]]
    >>> alignment_heads(Config(), 4, 6)
    [(2, 0), (3, 1)]
    """
    heads = getattr(generation_config, "alignment_heads", None)
    if heads:
        return [(int(layer), int(head)) for layer, head in heads]
    warnings.warn(
        f"{model_name} has no alignment_heads in generation_config.json; word times use all cross-attention "
        "heads of the top half of the decoder layers (less precise)",
        RuntimeWarning,
        stacklevel=2,
    )
    return [(layer, head) for layer in range(n_layers // 2, n_layers) for head in range(n_heads)]


class CrossAttentionRecorder:
    """Records the pre-softmax cross-attention scores of chosen heads during one decoder pass.

    >>> with CrossAttentionRecorder(model, [(2, 0), (3, 1)]) as rec:   # doctest: +SKIP
    ...     model.model.decoder(input_ids=ids, encoder_hidden_states=enc)
    >>> rec.scores().shape                                             # doctest: +SKIP
    (batch, 2, tokens, 1500)
    """

    def __init__(self, model, heads: Sequence[tuple[int, int]]):
        self.model, self.heads = model, list(heads)
        self._by_layer: dict[int, list[int]] = {}
        for layer, head in self.heads:
            self._by_layer.setdefault(layer, []).append(head)
        self._scores: dict[int, object] = {}
        self._handles: list = []

    def __enter__(self) -> "CrossAttentionRecorder":
        layers = self.model.model.decoder.layers
        for layer in self._by_layer:
            hook = self._hook(layer)
            self._handles.append(layers[layer].encoder_attn.register_forward_pre_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, layer: int) -> Callable:
        heads = self._by_layer[layer]

        def record(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            memory = kwargs["key_value_states"]
            q = self._split(module.q_proj(hidden) * module.scaling, module)[:, heads]
            k = self._split(module.k_proj(memory), module)[:, heads]
            self._scores[layer] = (q @ k.transpose(-1, -2)).float()

        return record

    @staticmethod
    def _split(x, module):
        batch, length, _ = x.shape
        return x.view(batch, length, module.num_heads, module.head_dim).transpose(1, 2)

    def scores(self) -> np.ndarray:
        """``(batch, heads, tokens, frames)`` scores of the last pass, heads in the order given."""
        position = {layer: 0 for layer in self._by_layer}
        picked = []
        for layer, _ in self.heads:
            picked.append(self._scores[layer][:, position[layer]])
            position[layer] += 1
        return torch.stack(picked, dim=1).cpu().numpy()


def token_path(scores: np.ndarray, rows: slice, n_frames: int, width: int = MEDIAN_FILTER_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """DTW path (row, encoder frame) for one clip's ``(heads, tokens, frames)`` attention scores.

    ``rows`` selects the decoder positions that predict the text tokens and end-of-text; the
    normalisation runs over all positions given (as openai-whisper normalises over its whole
    sequence) and ``n_frames`` encoder frames (the clip's audio, not the padding).
    """
    n_frames = max(1, min(n_frames, scores.shape[-1]))
    logits = scores[..., :n_frames].astype(np.float64)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    mean, std = weights.mean(axis=-2, keepdims=True), weights.std(axis=-2, keepdims=True)
    weights = (weights - mean) / np.maximum(std, 1e-10)
    matrix = median_filter(weights, width).mean(axis=0)[rows]
    return dtw(-matrix)


def words_from_scores(
    scores: np.ndarray,
    rows: slice,
    n_frames: int,
    text_tokens: Sequence[int],
    token_probs: Sequence[float],
    decode: Callable[[list[int]], str],
) -> list[Word]:
    """Words with times (seconds from the clip start) from one clip's recorded scores."""
    if not text_tokens:
        return []
    text_indices, time_indices = token_path(scores, rows, n_frames)
    return words_from_alignment(text_tokens, decode, text_indices, time_indices, token_probs, SECONDS_PER_ENCODER_FRAME)
