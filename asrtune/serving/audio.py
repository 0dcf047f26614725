"""An upload becomes 16 kHz audio: spooled to a temporary file that never outlives the request.

Size and duration limits are checked as early as they can be (the declared length before the
body is read, the bytes while copying, the header's duration before decoding) so an oversized
upload costs the server as little as possible.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ, audio_info, load_audio
from asrtune.errors import AudioError
from asrtune.serving.errors import APIError
from asrtune.serving.settings import BYTES_PER_MB, ServerSettings

COPY_CHUNK_BYTES = 1024 * 1024


def too_large(size_bytes: int, settings: ServerSettings) -> APIError:
    return APIError(413, f"file is {size_bytes / BYTES_PER_MB:.1f} MiB; this server takes at most "
                         f"{settings.max_upload_mb:g} MiB", param="file", code="file_too_large")


def too_long(seconds: float, settings: ServerSettings) -> APIError:
    return APIError(413, f"audio is {seconds:.1f} s long; this server takes at most {settings.max_audio_seconds:g} s",
                    param="file", code="audio_too_long")


def read_upload(upload: BinaryIO, filename: str | None, settings: ServerSettings) -> np.ndarray:
    """Decode an uploaded file (any format the loaders read) to mono float32 at 16 kHz.

    Raises :class:`APIError` 413 over the size or duration limit, 400 when it is not audio.
    Blocking: call it from a worker thread.
    """
    suffix = Path(filename or "").suffix.lower()[:16]  # the decoder may need the extension (mp3, m4a)
    with tempfile.NamedTemporaryFile(prefix="asrtune-upload-", suffix=suffix) as spool:
        size = _copy_limited(upload, spool, settings)
        spool.flush()
        if size == 0:
            raise APIError(400, "the uploaded file is empty", param="file", code="invalid_file")
        try:
            duration, _, _ = audio_info(spool.name)
            if duration > settings.max_audio_seconds:
                raise too_long(duration, settings)
            audio = load_audio(spool.name)
        except AudioError as e:
            name = filename or "the upload"
            # the decoder names the spooled copy; the client knows only its own file name
            reason = e.reason.replace(spool.name, name)
            raise APIError(400, f"cannot decode {name}: {reason}", param="file", code="invalid_file") from None
    seconds = len(audio) / SAMPLE_RATE_HZ
    if seconds > settings.max_audio_seconds:  # headers can understate (VBR mp3)
        raise too_long(seconds, settings)
    return audio


def _copy_limited(src: BinaryIO, dst: BinaryIO, settings: ServerSettings) -> int:
    size = 0
    src.seek(0)
    while chunk := src.read(COPY_CHUNK_BYTES):
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise too_large(size + _remaining(src), settings)
        dst.write(chunk)
    return size


def _remaining(src: BinaryIO) -> int:
    try:
        here = src.tell()
        return src.seek(0, os.SEEK_END) - here
    except (OSError, ValueError):
        return 0


__all__ = ["read_upload", "too_large", "too_long"]
