"""Small randomly initialised wav2vec2 CTC models, built locally (no download).

For smoke tests, benchmarks and from-scratch experiments: the default config has ~2 M
parameters and a 4-layer convolutional stem with the real model's stride (320 samples = 20 ms,
50 frames/s), so it runs every code path of a real wav2vec2 and trains on a CPU in minutes.

>>> import tempfile
>>> folder = save_random_wav2vec2(tempfile.mkdtemp())
>>> sorted(p.name for p in folder.iterdir())
['config.json', 'model.safetensors']
>>> # asrtune train --model FOLDER --freeze none ...  (vocabulary built from --train)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

TINY_WAV2VEC2: dict[str, Any] = dict(
    hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
    conv_dim=(32, 64, 64, 64), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16,
    # no dropout: a model this small over-fits a handful of utterances faster without it
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0,
    layerdrop=0.0, mask_time_prob=0.0, feat_extract_norm="layer", do_stable_layer_norm=True,
)


def save_random_wav2vec2(folder: str | os.PathLike, vocab_size: int = 32, seed: int = 0, **overrides: Any) -> Path:
    """Save a random ``Wav2Vec2ForCTC`` (config + weights, no tokenizer) in ``folder``.

    ``overrides`` replace entries of :data:`TINY_WAV2VEC2`. Training from such a folder builds a
    character vocabulary from the training manifests (and resizes the head to it).
    """
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=vocab_size, **{**TINY_WAV2VEC2, **overrides}))
    model.save_pretrained(folder)
    return Path(folder)
