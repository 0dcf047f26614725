"""Read CTranslate2's ``model.bin`` with numpy (binary format version 6).

faster-whisper checkpoints (the ones the weights packages carry) are a ``model.bin`` plus
``config.json`` and ``tokenizer.json``. ctranslate2 itself can write such files but not read
them back into arrays, so asrtune parses the format here (the tests keep a writer for it in
``tests/ct2_writer.py``); it is small and stable:

    u32 version | string spec_name | u32 revision | u32 n_variables
    n_variables x (string name | u8 rank | rank x u32 dim | u8 dtype | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (string alias | string target)

A string is a u16 length (counting a trailing NUL) then the bytes. Everything is little-endian.

>>> read_model_bin("faster-whisper-tiny.en/model.bin").spec_name        # doctest: +SKIP
'WhisperSpec'
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from asrtune.errors import AsrtuneError

BINARY_VERSION = 6  # what ctranslate2 >= 3 writes and what this reader understands

# CTranslate2 dtype codes (include/ctranslate2/types.h).
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: numpy has no bf16, so the raw 16-bit patterns are kept
}
BFLOAT16 = 5


@dataclass
class Ct2Model:
    """The content of a ``model.bin``: spec name, revision, named arrays and aliases.

    >>> Ct2Model("WhisperSpec", 3, {"decoder/embeddings/weight": np.zeros((4, 2), np.float16)},
    ...          {"decoder/projection/weight": "decoder/embeddings/weight"}).get("decoder/projection/weight").shape
    (4, 2)

    ``bfloat16`` arrays are kept as their raw ``uint16`` bit patterns; their names are listed in
    ``bfloat16`` so they can be written back unchanged or widened with :func:`bf16_to_f32`.
    """

    spec_name: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    bfloat16: set[str] = field(default_factory=set)

    def get(self, name: str) -> np.ndarray:
        """The array called ``name``, following an alias when there is one."""
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def float32(self, name: str) -> np.ndarray:
        """``name`` as float32, dequantizing int8/int16 weights with their ``weight_scale``."""
        real = self.aliases.get(name, name)
        array = self.variables[real]
        if real in self.bfloat16:
            return bf16_to_f32(array)
        if array.dtype in (np.int8, np.int16) and real.endswith("weight"):
            scale_name = real + "_scale"
            if scale_name not in self.variables:
                raise AsrtuneError(f"{real} is quantized ({array.dtype}) but {scale_name} is missing")
            scale = self.variables[scale_name].astype(np.float32)
            # CTranslate2 stores one scale per output row: w_float = w_int / scale.
            scale = scale.reshape(-1, *([1] * (array.ndim - 1))) if scale.ndim else scale
            return array.astype(np.float32) / scale
        return array.astype(np.float32)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bit patterns (uint16) to float32 exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class _Reader:
    """Bounds-checked little-endian reads that name the file when it ends early."""

    def __init__(self, f: BinaryIO, path: str, size: int):
        self.f, self.path, self.size = f, path, size

    def bytes(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise AsrtuneError(
                f"{self.path}: truncated CTranslate2 model.bin (file ends while reading {what}; "
                f"{self.size} bytes in all). Re-install or re-convert the model."
            )
        return data

    def u(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.bytes(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.u("H", what)
        raw = self.bytes(n, what)
        if n == 0 or raw[-1:] != b"\0":
            raise AsrtuneError(f"{self.path}: corrupt CTranslate2 model.bin (bad string while reading {what})")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise AsrtuneError(f"{self.path}: corrupt CTranslate2 model.bin (non-UTF-8 {what})") from None


def read_model_bin(path: str | os.PathLike) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` into numpy arrays.

    Raises :class:`AsrtuneError` naming the file when it is missing, truncated, of another
    binary version, or corrupt (unknown dtype, sizes that do not match the shape).
    """
    path = Path(path)
    if not path.is_file():
        raise AsrtuneError(f"{path}: CTranslate2 model.bin not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        r = _Reader(f, str(path), size)
        version = r.u("I", "the format version")
        if version != BINARY_VERSION:
            raise AsrtuneError(
                f"{path}: unsupported CTranslate2 model.bin version {version} (asrtune reads version "
                f"{BINARY_VERSION}); it may be corrupt, or re-convert it with ctranslate2 >= 3"
            )
        spec_name = r.string("the spec name")
        revision = r.u("I", "the spec revision")
        n_vars = r.u("I", "the variable count")
        variables: dict[str, np.ndarray] = {}
        bf16: set[str] = set()
        for i in range(n_vars):
            name = r.string(f"variable #{i} name")
            rank = r.u("B", f"{name} rank")
            shape = tuple(r.u("I", f"{name} shape") for _ in range(rank))
            code = r.u("B", f"{name} dtype")
            if code not in DTYPES:
                raise AsrtuneError(f"{path}: corrupt CTranslate2 model.bin (unknown dtype code {code} for {name})")
            dtype = DTYPES[code]
            n_bytes = r.u("I", f"{name} byte count")
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if n_bytes != expected:
                raise AsrtuneError(
                    f"{path}: corrupt CTranslate2 model.bin ({name} has shape {list(shape)} of {dtype} "
                    f"= {expected} bytes, but the file says {n_bytes})"
                )
            data = r.bytes(n_bytes, f"the data of {name}")
            variables[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
            if code == BFLOAT16:
                bf16.add(name)
        aliases: dict[str, str] = {}
        if f.tell() < size:  # older writers (< revision with aliases) may stop here
            n_aliases = r.u("I", "the alias count")
            for i in range(n_aliases):
                alias = r.string(f"alias #{i}")
                aliases[alias] = r.string(f"alias #{i} target")
        for alias, target in aliases.items():
            if target not in variables:
                raise AsrtuneError(f"{path}: corrupt CTranslate2 model.bin (alias {alias} -> missing {target})")
        if f.tell() != size:
            raise AsrtuneError(f"{path}: corrupt CTranslate2 model.bin ({size - f.tell()} unexpected trailing bytes)")
    return Ct2Model(spec_name, revision, variables, aliases, bf16)
