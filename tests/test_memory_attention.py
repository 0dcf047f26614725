"""Cross-attention without projecting the memory gives Hugging Face's numbers, and only runs where it may."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import WhisperConfig, WhisperForConditionalGeneration

from asrtune.training.adapters import memory_attention
from asrtune.training.adapters.memory_attention import cheaper, memory_cross_attention, use_memory_attention

D_MODEL, HEADS, FRAMES = 64, 4, 1500


@pytest.fixture(scope="module")
def whisper() -> WhisperForConditionalGeneration:
    config = WhisperConfig(vocab_size=300, num_mel_bins=80, d_model=D_MODEL, encoder_layers=1, decoder_layers=2,
                           encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, max_source_positions=FRAMES, max_target_positions=64,
                           decoder_start_token_id=1, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # non-zero biases, so a dropped bias shows
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _loss_and_grads(model: nn.Module, ids: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, dict]:
    model.zero_grad()
    logits = model(decoder_input_ids=ids, encoder_outputs=(memory,), use_cache=False).logits
    logits.logsumexp(-1).mean().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_same_logits_and_gradients_as_the_hugging_face_layer(whisper, monkeypatch):
    routed = copy.deepcopy(whisper)
    assert use_memory_attention(routed) == 2
    calls = []
    monkeypatch.setattr(memory_attention, "memory_cross_attention",
                        lambda *a: calls.append(1) or memory_cross_attention(*a))
    torch.manual_seed(1)
    ids, memory = torch.randint(0, 300, (3, 7)), torch.randn(3, FRAMES, D_MODEL)
    routed.train(), whisper.train()
    want_logits, want_grads = _loss_and_grads(whisper, ids, memory)
    got_logits, got_grads = _loss_and_grads(routed, ids, memory)
    assert len(calls) == 2  # one per decoder layer: the routed path really ran
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-4)
    assert got_grads.keys() == want_grads.keys()
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)
    assert routed.state_dict().keys() == whisper.state_dict().keys()  # saved checkpoints unchanged


def test_long_targets_and_generation_keep_the_layer_own_path(whisper, monkeypatch):
    routed = copy.deepcopy(whisper)
    use_memory_attention(routed)
    attn = routed.model.decoder.layers[0].encoder_attn
    tokens_limit = D_MODEL // (HEADS - 1)  # tokens x (heads - 1) < d_model
    assert cheaper(attn, tokens_limit) and not cheaper(attn, tokens_limit + 1)
    monkeypatch.setattr(memory_attention, "memory_cross_attention", lambda *a: pytest.fail("routed"))
    torch.manual_seed(2)
    ids, memory = torch.randint(0, 300, (2, tokens_limit + 1)), torch.randn(2, FRAMES, D_MODEL)
    routed.eval(), whisper.eval()
    with torch.no_grad():
        torch.testing.assert_close(routed(decoder_input_ids=ids, encoder_outputs=(memory,), use_cache=False).logits,
                                   whisper(decoder_input_ids=ids, encoder_outputs=(memory,), use_cache=False).logits)
        # generation passes a KV cache: Hugging Face projects the memory once and reuses it
        out = routed.model.decoder(input_ids=ids[:, :3], encoder_hidden_states=memory, use_cache=True)
        want = whisper.model.decoder(input_ids=ids[:, :3], encoder_hidden_states=memory, use_cache=True)
    torch.testing.assert_close(out.last_hidden_state, want.last_hidden_state)


def test_a_lora_key_projection_keeps_the_layer_own_path(whisper, monkeypatch):
    routed = copy.deepcopy(whisper)
    use_memory_attention(routed)

    class Wrapped(nn.Module):  # stands in for a LoRA layer: not a plain nn.Linear
        def __init__(self, inner: nn.Linear):
            super().__init__()
            self.inner = inner
            self.weight = inner.weight

        def forward(self, x):
            return self.inner(x)

    for layer in routed.model.decoder.layers:
        layer.encoder_attn.k_proj = Wrapped(layer.encoder_attn.k_proj)
    monkeypatch.setattr(memory_attention, "memory_cross_attention", lambda *a: pytest.fail("routed"))
    ids, memory = torch.randint(0, 300, (2, 5)), torch.randn(2, FRAMES, D_MODEL)
    with torch.no_grad():
        routed(decoder_input_ids=ids, encoder_outputs=(memory,), use_cache=False)
