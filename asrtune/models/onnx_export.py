"""Hugging Face Whisper → two ONNX graphs for ONNX Runtime (the ``onnx`` export).

- ``encoder_model.onnx``: ``input_features`` float32 ``[batch, n_mels, 3000]`` →
  ``cross_kv`` float32 ``[layers, 2, batch, heads, 1500, head_dim]``: the encoder output already
  projected to every decoder layer's cross-attention keys and values, so decoding never
  recomputes them.
- ``decoder_model.onnx``: ``input_ids`` int64 ``[batch, n]``, ``self_kv`` float32
  ``[layers, 2, batch, heads, past, head_dim]`` (``past`` = 0 on the first call) and ``cross_kv``
  → ``logits`` float32 ``[batch, n, vocab]`` and ``present_kv`` (``self_kv`` with the ``n`` new
  positions appended): one graph serves the prompt and every following step (decoder with past).

The decoder is written out from the HF modules' own weights (layer norms, projections, GELU),
in the same order of operations, so fp32 results match transformers to float rounding. ``int8``
applies ONNX Runtime's dynamic quantisation (int8 weights, activations quantised per call) to
both graphs. The folder also gets the HF config, generation config (alignment heads, suppress
tokens) and tokenizer files, which the runtime reads.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import WhisperForConditionalGeneration

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.extras import install_hint

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
ONNX_QUANTIZATIONS = ("fp32", "int8")
OPSET = 17
#: HF files the runtime needs beside the graphs (tokenizer, feature extractor, generation settings)
CARRIED_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
                 "merges.txt", "normalizer.json", "added_tokens.json", "special_tokens_map.json",
                 "preprocessor_config.json", "processor_config.json")


def _modules():
    class EncoderGraph(nn.Module):
        """Encoder + every decoder layer's cross-attention key/value projections."""

        def __init__(self, model):
            super().__init__()
            self.encoder = model.model.encoder
            self.cross = nn.ModuleList(layer.encoder_attn for layer in model.model.decoder.layers)
            self.heads = model.config.decoder_attention_heads

        def forward(self, input_features):
            hidden = self.encoder(input_features).last_hidden_state
            batch, frames, width = hidden.shape
            split = lambda t: t.view(batch, frames, self.heads, width // self.heads).transpose(1, 2)  # noqa: E731
            return torch.stack([torch.stack([split(a.k_proj(hidden)), split(a.v_proj(hidden))]) for a in self.cross])

    class DecoderGraph(nn.Module):
        """Whisper's decoder over explicit key/value tensors (self: grown per call, cross: fixed)."""

        def __init__(self, model):
            super().__init__()
            decoder = model.model.decoder
            self.embed_tokens, self.embed_positions = decoder.embed_tokens, decoder.embed_positions
            self.layers, self.norm = decoder.layers, decoder.layer_norm
            self.heads = model.config.decoder_attention_heads

        def _attend(self, attn, query, keys, values, mask=None):
            batch, n, width = query.shape
            head_dim = width // self.heads
            q = attn.q_proj(query).view(batch, n, self.heads, head_dim).transpose(1, 2)
            scores = torch.matmul(q, keys.transpose(2, 3)) * (head_dim ** -0.5)
            if mask is not None:
                scores = scores + mask
            out = torch.matmul(torch.softmax(scores, dim=-1), values).transpose(1, 2).reshape(batch, n, width)
            return attn.out_proj(out)

        def _split(self, t, batch, n):
            return t.view(batch, n, self.heads, -1).transpose(1, 2)

        def forward(self, input_ids, self_kv, cross_kv):
            batch, n = input_ids.shape
            past = self_kv.shape[4]
            positions = torch.arange(n, device=input_ids.device) + past
            x = self.embed_tokens(input_ids) + self.embed_positions.weight[positions]
            keys_at = torch.arange(past + n, device=input_ids.device)
            mask = torch.where(keys_at[None, :] <= positions[:, None], 0.0, float("-inf")).to(x.dtype)
            presents = []
            for i, layer in enumerate(self.layers):
                h = layer.self_attn_layer_norm(x)
                k = torch.cat([self_kv[i, 0], self._split(layer.self_attn.k_proj(h), batch, n)], dim=2)
                v = torch.cat([self_kv[i, 1], self._split(layer.self_attn.v_proj(h), batch, n)], dim=2)
                presents.append(torch.stack([k, v]))
                x = x + self._attend(layer.self_attn, h, k, v, mask)
                h = layer.encoder_attn_layer_norm(x)
                x = x + self._attend(layer.encoder_attn, h, cross_kv[i, 0], cross_kv[i, 1])
                h = layer.final_layer_norm(x)
                x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
            x = self.norm(x)
            # (vocab, width) @ (batch, width, n): shares the embedding matrix instead of storing its transpose
            logits = torch.matmul(self.embed_tokens.weight, x.transpose(1, 2)).transpose(1, 2)
            return logits, torch.stack(presents)

    return EncoderGraph, DecoderGraph


def check_onnx_packages() -> None:
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"the onnx export needs the {module} package: {install_hint('export')}") from None


def write_onnx(src: str | os.PathLike, dst: str | os.PathLike, quantization: str = "fp32") -> Path:
    """Export HF Whisper folder ``src`` into folder ``dst`` (which must exist): two graphs + HF files."""
    if quantization not in ONNX_QUANTIZATIONS:
        raise ConfigError(f"--quantization {quantization}: onnx takes {', '.join(ONNX_QUANTIZATIONS)}")
    check_onnx_packages()

    src, dst = Path(src), Path(dst)
    try:
        model = WhisperForConditionalGeneration.from_pretrained(src, dtype=torch.float32, attn_implementation="eager").eval()
    except (OSError, ValueError) as e:
        raise AsrtuneError(f"{src}: cannot load the Whisper model to export ({e})") from None
    EncoderGraph, DecoderGraph = _modules()
    config = model.config
    layers, heads = config.decoder_layers, config.decoder_attention_heads
    head_dim = config.d_model // heads
    features = torch.zeros(1, config.num_mel_bins, 2 * config.max_source_positions)
    build = dst / ".fp32" if quantization == "int8" else dst
    build.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        cross = EncoderGraph(model)(features)
        _export(EncoderGraph(model), (features,), build / ENCODER_FILE, ["input_features"], ["cross_kv"],
                {"input_features": {0: "batch"}, "cross_kv": {2: "batch"}})
        ids = torch.tensor([[0, 1]], dtype=torch.long)
        past = torch.zeros(layers, 2, 1, heads, 3, head_dim)
        _export(DecoderGraph(model), (ids, past, cross), build / DECODER_FILE, ["input_ids", "self_kv", "cross_kv"],
                ["logits", "present_kv"],
                {"input_ids": {0: "batch", 1: "tokens"}, "self_kv": {2: "batch", 4: "past"}, "cross_kv": {2: "batch"},
                 "logits": {0: "batch", 1: "tokens"}, "present_kv": {2: "batch", 4: "total"}})
    if quantization == "int8":
        # optional extra [export], checked by check_onnx_packages
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser advises pre-processing on the root logger; it is noise here
        try:
            for name in (ENCODER_FILE, DECODER_FILE):
                quantize_dynamic(build / name, dst / name, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        shutil.rmtree(build)
    for name in CARRIED_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return dst


def _export(module, args, path: Path, inputs: list[str], outputs: list[str], axes: dict) -> None:
    try:
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    except Exception as e:  # the exporter raises many types; any is a failed export of this model
        raise AsrtuneError(f"ONNX export of {path.name} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
