"""CTranslate2 model.bin reader/writer: round trips, dequantisation, clear errors on bad files."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from asrtune.errors import AsrtuneError
from asrtune.models.ct2_format import Ct2Model, bf16_to_f32, read_model_bin
from ct2_writer import write_model_bin


def synthetic_spec() -> Ct2Model:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((7, 4)).astype(np.float16)
    bf16_bits = (rng.standard_normal(5).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return Ct2Model(
        "WhisperSpec",
        3,
        {
            "decoder/embeddings/weight": emb,
            "encoder/conv1/weight": rng.standard_normal((3, 2, 3)).astype(np.float32),
            "encoder/layer_0/ffn/linear_0/weight": rng.integers(-127, 128, (6, 4)).astype(np.int8),
            "encoder/layer_0/ffn/linear_0/weight_scale": np.array([2.0, 4, 8, 16, 32, 64], np.float32),
            "decoder/num_heads": np.array(6, np.int16),
            "decoder/alignment_layer": np.array(-1, np.int32),
            "decoder/activation": np.array(1, np.int8),
            "decoder/scale": bf16_bits,
        },
        {"decoder/projection/weight": "decoder/embeddings/weight"},
        bfloat16={"decoder/scale"},
    )


def test_round_trip_preserves_every_array_dtype_shape_and_alias(tmp_path):
    spec = synthetic_spec()
    path = tmp_path / "model.bin"
    write_model_bin(path, spec)
    back = read_model_bin(path)
    assert (back.spec_name, back.revision) == ("WhisperSpec", 3)
    assert back.aliases == spec.aliases
    assert back.bfloat16 == {"decoder/scale"}
    assert list(back.variables) == list(spec.variables)
    for name, array in spec.variables.items():
        assert back.variables[name].dtype == array.dtype, name
        assert back.variables[name].shape == array.shape, name
        np.testing.assert_array_equal(back.variables[name], array)
    np.testing.assert_array_equal(back.get("decoder/projection/weight"), spec.variables["decoder/embeddings/weight"])
    # Writing what was read gives the same bytes: nothing is lost or reordered.
    write_model_bin(tmp_path / "again.bin", back)
    assert (tmp_path / "again.bin").read_bytes() == path.read_bytes()


def test_float32_dequantizes_int8_rows_and_widens_bf16():
    spec = synthetic_spec()
    w = spec.float32("encoder/layer_0/ffn/linear_0/weight")
    q = spec.variables["encoder/layer_0/ffn/linear_0/weight"].astype(np.float32)
    np.testing.assert_allclose(w[3], q[3] / 16.0)
    bits = spec.variables["decoder/scale"]
    np.testing.assert_array_equal(bf16_to_f32(bits), (bits.astype(np.uint32) << 16).view(np.float32))
    assert spec.float32("decoder/projection/weight").dtype == np.float32


def test_header_layout_matches_the_documented_format(tmp_path):
    path = tmp_path / "model.bin"
    write_model_bin(path, Ct2Model("WhisperSpec", 3, {"a": np.arange(3, dtype=np.float32)}))
    raw = path.read_bytes()
    assert struct.unpack("<I", raw[:4])[0] == 6
    assert struct.unpack("<H", raw[4:6])[0] == len("WhisperSpec") + 1
    assert raw[6:18] == b"WhisperSpec\0"
    # revision, count, name "a", rank 1, dim 3, dtype 0 (f32), 12 bytes, data, 0 aliases
    assert raw[18:26] == struct.pack("<II", 3, 1)
    assert raw[26:30] == struct.pack("<H", 2) + b"a\0"
    assert raw[30:40] == struct.pack("<BIBI", 1, 3, 0, 12)
    assert len(raw) == 40 + 12 + 4


@pytest.mark.parametrize("cut", [3, 20, 45, -5])
def test_truncated_file_is_named_in_the_error(tmp_path, cut):
    path = tmp_path / "model.bin"
    write_model_bin(path, synthetic_spec())
    raw = path.read_bytes()
    path.write_bytes(raw[:cut])
    with pytest.raises(AsrtuneError, match=r"model\.bin.*(truncated|corrupt)"):
        read_model_bin(path)


def test_garbage_and_wrong_version_and_missing_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"not a model at all, just text")
    with pytest.raises(AsrtuneError, match=str(path) + r".*version"):
        read_model_bin(path)
    with pytest.raises(AsrtuneError, match="not found"):
        read_model_bin(tmp_path / "absent.bin")


def test_inconsistent_byte_count_and_unknown_dtype_are_corrupt(tmp_path):
    path = tmp_path / "model.bin"
    write_model_bin(path, Ct2Model("WhisperSpec", 3, {"a": np.arange(3, dtype=np.float32)}))
    raw = bytearray(path.read_bytes())
    bad_count = bytearray(raw)
    bad_count[36:40] = struct.pack("<I", 16)
    path.write_bytes(bytes(bad_count))
    with pytest.raises(AsrtuneError, match="corrupt.*12 bytes"):
        read_model_bin(path)
    bad_dtype = bytearray(raw)
    bad_dtype[35] = 9
    path.write_bytes(bytes(bad_dtype))
    with pytest.raises(AsrtuneError, match="unknown dtype code 9"):
        read_model_bin(path)
