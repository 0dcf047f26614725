"""A CTranslate2 ``model.bin`` writer for tests: the counterpart of :mod:`asrtune.models.ct2_format`.

asrtune only reads ``model.bin`` (real exports go through ctranslate2's own converter); the tests
write hand-made files with this to check the reader on every dtype, alias and corruption.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

import numpy as np

from asrtune.errors import AsrtuneError
from asrtune.fileio import atomic_open
from asrtune.models.ct2_format import BFLOAT16, BINARY_VERSION, DTYPES, Ct2Model

CODES: dict[np.dtype, int] = {dt: code for code, dt in DTYPES.items() if code != BFLOAT16}


def _write_string(f: BinaryIO, s: str) -> None:
    raw = s.encode("utf-8") + b"\0"
    f.write(struct.pack("<H", len(raw)))
    f.write(raw)


def write_model_bin(path: str | os.PathLike, model: Ct2Model) -> None:
    """Write ``model`` as a CTranslate2 ``model.bin`` (atomically: no half file on failure)."""
    with atomic_open(path, "wb") as f:
        f.write(struct.pack("<I", BINARY_VERSION))
        _write_string(f, model.spec_name)
        f.write(struct.pack("<II", model.revision, len(model.variables)))
        for name, array in model.variables.items():
            array = np.asarray(array)  # (np.ascontiguousarray would turn scalars into 1-d arrays)
            if name in model.bfloat16:
                code, array = BFLOAT16, array.astype("<u2")
            else:
                dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
                if dtype == np.dtype(bool):
                    dtype = np.dtype("i1")
                if dtype not in CODES:
                    raise AsrtuneError(f"cannot write {name}: dtype {array.dtype} has no CTranslate2 code")
                code, array = CODES[dtype], array.astype(dtype)
            _write_string(f, name)
            f.write(struct.pack("<B", array.ndim))
            f.write(struct.pack(f"<{array.ndim}I", *array.shape))
            f.write(struct.pack("<BI", code, array.nbytes))
            f.write(array.tobytes())
        f.write(struct.pack("<I", len(model.aliases)))
        for alias, target in model.aliases.items():
            _write_string(f, alias)
            _write_string(f, target)
