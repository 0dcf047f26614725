"""Whisper's cross-attention over a fixed memory, without projecting the memory.

Training a decoder on cached encoder outputs (1,500 frames per utterance) spends most of its
compute in cross-attention's key and value projections: every step multiplies all 1,500 frames
by ``W_k`` and ``W_v`` in every decoder layer, forward and backward, although a short target
(a sentence is 15-30 tokens) only reads them through attention. The same numbers come out of
projecting the *queries* instead, per head ``h`` (``E``: the frames, ``P``: the softmax weights):

    q_h . (W_k,h e)  =  (W_k,h^T q_h) . e         the scores
    P (E W_v,h^T + b_v,h)  =  (P E) W_v,h^T + b_v,h   the values (each row of P sums to 1)

which costs ``heads x tokens x frames x d_model`` multiply-adds per layer where the projections
cost ``frames x d_model^2``: fewer whenever ``tokens x (heads - 1) < d_model`` (tiny: about 77
tokens, base: 73). A decoder step on speechocean762 sentences (13 tokens, tiny.en, batch 16,
two CPU threads) then runs 2.7x faster (``benchmarks/bench_time_to_quality.py --levers``), with
logits equal to float rounding (tests/test_memory_attention.py holds them to the Hugging Face
layer's).

:func:`use_memory_attention` routes each decoder cross-attention layer through
:func:`memory_cross_attention` when that is cheaper and exact: no KV cache (generation keeps
Hugging Face's path, which projects the memory once and reuses it), no attention mask, no
dropout while training, and plain ``nn.Linear`` key/value projections (a LoRA adapter on them
changes the weights the identity needs). Anything else goes to the layer's own ``forward``.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import torch
from torch import nn


def memory_cross_attention(attn: nn.Module, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of ``queries`` ``[B, T, D]`` over ``memory`` ``[B, S, D]`` with the
    weights of Hugging Face's ``WhisperAttention`` ``attn`` (its output projection applied)."""
    batch, tokens, width = queries.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    q = (attn.q_proj(queries) * attn.scaling).view(batch, tokens, heads, head_dim)
    # each head's query mapped back into the memory's space: [B, H, T, D]
    q_memory = torch.einsum("bthe,hed->bhtd", q, attn.k_proj.weight.view(heads, head_dim, width))
    # [B, H*T, S]; a key bias (Whisper has none) would add the same q.b_k to a whole row: softmax ignores it
    scores = q_memory.reshape(batch, heads * tokens, width) @ memory.transpose(1, 2)
    weights = scores.view(batch, heads, tokens, -1).softmax(dim=-1).view(batch, heads * tokens, -1)
    read = (weights @ memory).view(batch, heads, tokens, width)  # P E, per head
    values = torch.einsum("bhtd,hed->bthe", read, attn.v_proj.weight.view(heads, head_dim, width))
    if attn.v_proj.bias is not None:
        values = values + attn.v_proj.bias.view(heads, head_dim)
    return attn.out_proj(values.reshape(batch, tokens, width))


def cheaper(attn: nn.Module, tokens: int) -> bool:
    """Whether projecting the queries costs fewer multiply-adds than projecting the memory."""
    return tokens * (attn.num_heads - 1) < attn.num_heads * attn.head_dim


def _routed_forward(attn: nn.Module, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None = None,
                    *args: Any, **kwargs: Any) -> Any:
    """The layer's ``forward``, taking :func:`memory_cross_attention` when it is exact and cheaper."""
    exact = (
        key_value_states is not None
        and not args
        and all(value is None or value is False for value in kwargs.values())  # no cache, mask, head mask
        and (attn.dropout == 0 or not attn.training)
        and type(attn.k_proj) is nn.Linear and type(attn.v_proj) is nn.Linear
    )
    if exact and cheaper(attn, hidden_states.shape[1]):
        return memory_cross_attention(attn, hidden_states, key_value_states), None
    return type(attn).forward(attn, hidden_states, key_value_states, *args, **kwargs)


def use_memory_attention(model: nn.Module) -> int:
    """Route the decoder cross-attention layers of a Hugging Face Whisper ``model`` through
    :func:`memory_cross_attention` where it applies; returns how many layers were routed (0 with
    a ``transformers`` whose attention layer returns another tuple than ``(output, weights)``)."""
    layers = [layer.encoder_attn for layer in model.model.decoder.layers]
    if not layers or "cache" not in inspect.signature(type(layers[0]).forward).parameters:
        return 0  # older transformers (past_key_value, three outputs): keep its own path
    for attn in layers:
        attn.forward = types.MethodType(_routed_forward, attn)
    return len(layers)
