"""Hugging Face Whisper → whisper.cpp model file (the ``ggml`` export).

whisper.cpp reads one little-endian binary file, in this order:

1. the magic ``0x67676d6c`` ("ggml") and eleven int32 hyper-parameters: n_vocab, n_audio_ctx,
   n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
   n_text_layer, n_mels, ftype (the weight type; a quantised file adds 1000 x the
   quantisation-format version);
2. the mel filterbank: int32 n_mels, int32 n_fft_bins, then float32 ``[n_mels, n_fft_bins]``
   (whisper.cpp computes its own log-mel spectrogram with these filters);
3. the vocabulary: int32 count, then per token an int32 byte length and the token's raw bytes
   (byte-level BPE undone); whisper.cpp derives the special tokens from n_vocab itself;
4. every tensor under openai-whisper's name (:mod:`asrtune.models.openai_whisper`): int32
   n_dims, int32 name length, int32 tensor type, the dims innermost first, the name, the data.

Weight types follow whisper.cpp's own tools: 1-D tensors, the conv biases (stored ``[n, 1]``) and
the positional embeddings stay float32; the conv kernels are float16; the other 2-D weights are
float16, or q8_0 / q5_0 blocks (quantised with the ``gguf`` package, which implements ggml's
block formats).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.extras import install_hint
from asrtune.models.openai_whisper import check_openai_layout, load_hf_state, openai_state_dict, read_hf_config

GGML_MAGIC = 0x67676D6C
MODEL_FILE = "ggml-model.bin"
N_FFT = 400  # Whisper's STFT window (25 ms at 16 kHz)
QUANT_VERSION = 2  # ggml's quantisation-format version, recorded in the file's ftype
QUANT_VERSION_FACTOR = 1000
# ggml tensor type ids and whisper.cpp file-type ids
TYPE_F32, TYPE_F16, TYPE_Q5_0, TYPE_Q8_0 = 0, 1, 6, 8
GGML_QUANTIZATIONS = {  # --quantization -> (file ftype, type of the quantisable 2-D weights)
    "f16": (1, TYPE_F16),
    "q8_0": (7, TYPE_Q8_0),
    "q5_0": (8, TYPE_Q5_0),
}
KEEP_F32 = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding")


def tensor_type(name: str, shape: tuple[int, ...], weight_type: int) -> int:
    """The ggml type a tensor is stored in for a file whose 2-D weights are ``weight_type``.

    >>> tensor_type("decoder.ln.weight", (384,), TYPE_Q8_0), tensor_type("encoder.conv1.weight", (384, 80, 3), TYPE_Q8_0)
    (0, 1)
    >>> tensor_type("decoder.blocks.0.mlp.0.weight", (1536, 384), TYPE_Q8_0)
    8
    """
    if len(shape) < 2 or name in KEEP_F32:
        return TYPE_F32
    if len(shape) != 2:  # conv kernels: whisper.cpp's convolution takes float16 kernels only
        return TYPE_F16
    return weight_type


def mel_filters(n_mels: int) -> np.ndarray:
    """Whisper's mel filterbank ``[n_mels, 201]`` (librosa's slaney filters, as openai-whisper's assets)."""
    import librosa  # heavy: librosa's filters load scipy

    return librosa.filters.mel(sr=16000, n_fft=N_FFT, n_mels=n_mels).astype(np.float32)


def byte_alphabet() -> dict[int, str]:
    """Byte-level BPE's byte -> character table: printable Latin-1 bytes stand for themselves,
    the others (control characters, space, ...) take the characters from U+0100 on, in byte order.

    >>> table = byte_alphabet()
    >>> table[ord("a")], table[ord(" ")], len(set(table.values()))
    ('a', 'Ġ', 256)
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    for offset, b in enumerate(shifted):
        table[b] = chr(256 + offset)
    return table


def vocabulary_bytes(tokenizer_json: Path) -> list[bytes]:
    """The byte-level BPE vocabulary of ``tokenizer.json`` as raw bytes, ordered by id."""
    try:
        vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AsrtuneError(f"{tokenizer_json}: not a byte-level BPE tokenizer.json ({e})") from None
    to_byte = {ch: b for b, ch in byte_alphabet().items()}
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise AsrtuneError(f"{tokenizer_json}: vocabulary ids are not 0..n-1")
    return [bytes(to_byte[ch] for ch in token) if all(ch in to_byte for ch in token) else token.encode() for token, _ in ordered]


def _write_ints(f: BinaryIO, *values: int) -> None:
    f.write(struct.pack(f"<{len(values)}i", *values))


def _tensor_bytes(name: str, data: np.ndarray, ttype: int) -> bytes:
    if ttype == TYPE_F32:
        return np.ascontiguousarray(data, dtype="<f4").tobytes()
    if ttype == TYPE_F16:
        return np.ascontiguousarray(data, dtype="<f2").tobytes()
    # optional extra [export] (gguf), checked by check_packages for quantised formats
    from gguf.quants import GGMLQuantizationType, quantize

    qtype = GGMLQuantizationType.Q8_0 if ttype == TYPE_Q8_0 else GGMLQuantizationType.Q5_0
    try:
        return quantize(np.ascontiguousarray(data, dtype=np.float32), qtype).tobytes()
    except Exception as e:  # gguf raises its own error for rows not divisible by the block size
        raise AsrtuneError(f"{name}: cannot quantise a {data.shape} tensor to {qtype.name} ({e})") from None


def write_ggml(src: str | os.PathLike, dst_file: str | os.PathLike, quantization: str = "f16") -> Path:
    """Write HF Whisper folder ``src`` as a whisper.cpp model file ``dst_file``."""
    src, dst_file = Path(src), Path(dst_file)
    if quantization not in GGML_QUANTIZATIONS:
        raise ConfigError(f"--quantization {quantization}: ggml takes {', '.join(GGML_QUANTIZATIONS)}")
    if quantization in ("q8_0", "q5_0"):
        try:
            # optional extra [export] (gguf): probed for a clear error
            import gguf  # noqa: F401
        except ImportError:
            raise ConfigError(f"ggml {quantization} needs the gguf package: {install_hint('export')}") from None
    config = read_hf_config(src)
    check_openai_layout(config, src, "whisper.cpp")
    if not (src / "tokenizer.json").is_file():
        raise AsrtuneError(f"{src}: tokenizer.json missing; the ggml file carries the vocabulary")
    file_type, weight_type = GGML_QUANTIZATIONS[quantization]
    if weight_type in (TYPE_Q8_0, TYPE_Q5_0):
        file_type += QUANT_VERSION * QUANT_VERSION_FACTOR
    n_mels = int(config["num_mel_bins"])
    vocab = vocabulary_bytes(src / "tokenizer.json")
    state = openai_state_dict(load_hf_state(src))
    with open(dst_file, "wb") as f:
        _write_ints(f, GGML_MAGIC, int(config["vocab_size"]), int(config["max_source_positions"]), int(config["d_model"]),
                    int(config["encoder_attention_heads"]), int(config["encoder_layers"]), int(config["max_target_positions"]),
                    int(config["d_model"]), int(config["decoder_attention_heads"]), int(config["decoder_layers"]),
                    n_mels, file_type)
        filters = mel_filters(n_mels)
        _write_ints(f, *filters.shape)
        f.write(np.ascontiguousarray(filters, dtype="<f4").tobytes())
        _write_ints(f, len(vocab))
        for token in vocab:
            _write_ints(f, len(token))
            f.write(token)
        for name, data in state.items():
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(-1, 1)  # whisper.cpp adds them as [n_state, 1] columns
            ttype = tensor_type(name, data.shape, weight_type)
            encoded = name.encode()
            _write_ints(f, data.ndim, len(encoded), ttype)
            _write_ints(f, *reversed(data.shape))
            f.write(encoded)
            f.write(_tensor_bytes(name, data, ttype))
    return dst_file
