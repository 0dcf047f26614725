"""Hugging Face Whisper weights under openai-whisper's names, and its ``.pt`` checkpoint.

openai-whisper's module tree (``encoder.blocks.0.attn.query``, ``decoder.token_embedding``) is
also what whisper.cpp's model file names its tensors after, so :func:`openai_state_dict` serves
both the ``openai-whisper`` and the ``ggml`` export.

Name differences the mapping undoes (HF → openai-whisper):
- ``model.encoder.layers.N`` → ``encoder.blocks.N``; ``self_attn.{q,k,v,out}_proj`` →
  ``attn.{query,key,value,out}``; ``encoder_attn`` → ``cross_attn``; ``fc1``/``fc2`` →
  ``mlp.0``/``mlp.2``; ``*_layer_norm`` → ``attn_ln``/``cross_attn_ln``/``mlp_ln``;
- ``embed_positions.weight`` → ``positional_embedding``; ``embed_tokens`` → ``token_embedding``;
  the final norms are ``encoder.ln_post`` and ``decoder.ln``; ``proj_out`` is tied to the token
  embedding and not stored.

>>> openai_name("model.decoder.layers.3.encoder_attn.k_proj.weight")
'decoder.blocks.3.cross_attn.key.weight'
>>> openai_name("model.encoder.layer_norm.bias"), openai_name("proj_out.weight")
('encoder.ln_post.bias', None)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.models.whisper_spec import ENGLISH_ONLY_VOCAB_SIZE

CHECKPOINT_FILE = "model.pt"
#: vocabulary sizes of the released tokenizers (English-only, multilingual, large-v3): openai-whisper
#: and whisper.cpp rebuild the special tokens from the size, so a grown vocabulary cannot travel
STANDARD_VOCAB_SIZES = (ENGLISH_ONLY_VOCAB_SIZE, 51865, 51866)

_LAYER_PARTS = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln", "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln",
}
_TOP_LEVEL = {
    "encoder.layer_norm": "encoder.ln_post", "decoder.layer_norm": "decoder.ln",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.embed_tokens": "decoder.token_embedding",
}
_LAYER = re.compile(r"^model\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def openai_name(hf_name: str) -> str | None:
    """openai-whisper's name for a HF Whisper parameter; None for one it does not store (``proj_out``)."""
    if hf_name == "proj_out.weight":
        return None
    if m := _LAYER.match(hf_name):
        side, index, part, kind = m.groups()
        if part not in _LAYER_PARTS:
            raise AsrtuneError(f"{hf_name}: not a Whisper layer parameter")
        return f"{side}.blocks.{index}.{_LAYER_PARTS[part]}.{kind}"
    name = hf_name.removeprefix("model.")
    for hf, oa in _TOP_LEVEL.items():
        if name == hf or name.startswith(hf + "."):
            return oa + name[len(hf):]
    if name.startswith(("encoder.conv1.", "encoder.conv2.")):
        return name
    raise AsrtuneError(f"{hf_name}: not a Whisper parameter")


def openai_state_dict(hf_state: dict[str, Any]) -> dict[str, Any]:
    """``{openai-whisper name: tensor}`` for a HF ``WhisperForConditionalGeneration`` state dict."""
    out = {}
    for name, tensor in hf_state.items():
        mapped = openai_name(name)
        if mapped is not None:
            out[mapped] = tensor
    return out


def openai_dims(config: dict) -> dict[str, int]:
    """openai-whisper's ``ModelDimensions`` from a HF ``config.json``."""
    return {
        "n_mels": int(config["num_mel_bins"]), "n_vocab": int(config["vocab_size"]),
        "n_audio_ctx": int(config["max_source_positions"]), "n_audio_state": int(config["d_model"]),
        "n_audio_head": int(config["encoder_attention_heads"]), "n_audio_layer": int(config["encoder_layers"]),
        "n_text_ctx": int(config["max_target_positions"]), "n_text_state": int(config["d_model"]),
        "n_text_head": int(config["decoder_attention_heads"]), "n_text_layer": int(config["decoder_layers"]),
    }


def read_hf_config(src: Path) -> dict:
    try:
        return json.loads((Path(src) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AsrtuneError(f"{src / 'config.json'}: cannot read the model config ({e})") from None


def check_standard_vocabulary(config: dict, src: Path, runtime: str) -> None:
    """ConfigError for a grown vocabulary (``train --extend-vocab``): ``runtime`` rebuilds its
    special tokens from the vocabulary size, so the ids would not line up."""
    if int(config["vocab_size"]) not in STANDARD_VOCAB_SIZES:
        raise ConfigError(f"{src}: vocabulary of {config['vocab_size']} tokens (a grown vocabulary); {runtime} "
                          f"only reads Whisper's own vocabularies ({', '.join(map(str, STANDARD_VOCAB_SIZES))} tokens)")


def check_openai_layout(config: dict, src: Path, runtime: str) -> None:
    """ConfigError for a model ``runtime`` cannot represent: openai-whisper and whisper.cpp fix the
    MLP width at 4 x d_model and read only Whisper's own vocabularies."""
    check_standard_vocabulary(config, src, runtime)
    width = 4 * int(config["d_model"])
    if int(config["encoder_ffn_dim"]) != width or int(config["decoder_ffn_dim"]) != width:
        raise ConfigError(f"{src}: MLP width {config['encoder_ffn_dim']}/{config['decoder_ffn_dim']} is not 4 x d_model "
                          f"({width}); {runtime} only builds Whisper's own layer shapes")


def load_hf_state(src: str | os.PathLike) -> dict[str, np.ndarray]:
    """float32 numpy copies of a HF Whisper folder's weights (``model.safetensors`` or ``pytorch_model.bin``)."""
    src = Path(src)
    if (src / "model.safetensors").is_file():
        from safetensors.numpy import load_file  # heavy: safetensors, only for a .safetensors checkpoint

        return {k: v.astype(np.float32) for k, v in load_file(str(src / "model.safetensors")).items()}
    # heavy: torch + transformers, only for a .bin checkpoint (the ggml export shares this module)
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(src, dtype=torch.float32)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def write_openai_checkpoint(src: str | os.PathLike, dst_file: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write HF Whisper folder ``src`` as an openai-whisper checkpoint (``whisper.load_model(dst_file)``).

    float32 weights (lossless); ``extra`` (alignment heads, suppress tokens: openai-whisper has no
    slot for them) is stored under the checkpoint's ``asrtune`` key, which ``load_model`` ignores.
    """
    import torch  # heavy: torch; the ggml export shares this module and needs none

    src = Path(src)
    config = read_hf_config(src)
    check_openai_layout(config, src, "openai-whisper")
    state = openai_state_dict(load_hf_state(src))
    checkpoint = {"dims": openai_dims(config),
                  "model_state_dict": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                  "asrtune": dict(extra or {})}
    dst_file = Path(dst_file)
    torch.save(checkpoint, dst_file)
    return dst_file
