"""A small random Whisper for tests that need real layouts but not real weights."""

from __future__ import annotations

import shutil


def random_whisper(folder, tokenizer_source):
    """A small random Whisper (2+2 layers, d_model 64, MLP 4 x 64 as every Whisper: whisper.cpp
    assumes it) with the real tokenizer and processor files from ``tokenizer_source``, saved as HF."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=256,
                           decoder_ffn_dim=256, max_source_positions=1500, max_target_positions=448,
                           decoder_start_token_id=50257, pad_token_id=50256, bos_token_id=50256, eos_token_id=50256)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # non-trivial biases and norms, so a dropped or misplaced tensor shows
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    for f in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json"):
        shutil.copy(tokenizer_source / f, folder / f)
    return model
