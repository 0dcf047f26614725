"""Small randomly initialised wav2vec2 CTC models for tests (seconds to build, no downloads)."""

from __future__ import annotations

from pathlib import Path

# Small enough to train on a CPU: ~2 M parameters, a 4-layer conv stem (stride 320 = 50 frames/s).
TINY_W2V2 = dict(
    hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
    conv_dim=(32, 64, 64, 64), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0,
    layerdrop=0.0, mask_time_prob=0.0, feat_extract_norm="layer", do_stable_layer_norm=True,
)


def save_tiny_w2v2(folder: Path, vocab_size: int = 32, seed: int = 0) -> Path:
    """A random wav2vec2 CTC model folder with config + weights only (no tokenizer)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=vocab_size, **TINY_W2V2))
    model.save_pretrained(folder)
    return Path(folder)


def tiny_ctc_model(folder: Path, vocab_text: str = "abcdefghijklmnopqrstuvwxyz'", seed: int = 0):
    """``(model, processor)`` of a random wav2vec2 with a lower-case vocabulary, saved in ``folder``."""
    from transformers import Wav2Vec2ForCTC

    from asrtune.models.ctc_vocab import build_vocab, make_processor

    vocab = build_vocab([vocab_text])
    save_tiny_w2v2(folder, vocab_size=len(vocab), seed=seed)
    processor = make_processor(vocab, folder)
    return Wav2Vec2ForCTC.from_pretrained(folder), processor
