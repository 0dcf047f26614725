"""Where converted models live, keyed by what they were made from.

A conversion is cached under ``cache_dir()/<kind>/<key>`` where ``key`` is a hash of the source
files' contents, so a changed source never reuses a stale conversion and the same weights are
converted once however they are named. Hashing a 75 MB ``model.bin`` takes a fraction of a
second; the digest is remembered per (path, size, mtime) so repeated resolves cost nothing.
Conversions are written through :func:`asrtune.fileio.atomic_directory`: a killed conversion
leaves no half model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

from asrtune.fileio import atomic_directory, write_json_atomic

CACHE_ENV = "ASRTUNE_CACHE"
HASH_CHUNK = 1 << 20  # bytes read per update: large enough to be fast, small enough for memory
KEY_LENGTH = 20  # hex digits of sha256 kept in folder names (80 bits: collisions are not a concern)


def cache_dir() -> Path:
    """The cache root: ``$ASRTUNE_CACHE`` if set, else ``~/.cache/asrtune``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "asrtune"


def _hash_memo_path() -> Path:
    return cache_dir() / "file_hashes.json"


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, remembered per (absolute path, size, mtime_ns)."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    memo_path = _hash_memo_path()
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    memo[str(path)] = {"stamp": stamp, "sha256": digest.hexdigest()}
    try:
        write_json_atomic(memo_path, memo, indent=None)
    except OSError:
        pass  # a read-only cache still works, it just re-hashes next time
    return digest.hexdigest()


def content_key(files: Iterable[str | os.PathLike], salt: str = "") -> str:
    """A short key naming the contents of ``files`` (in order) plus ``salt`` (e.g. options)."""
    digest = hashlib.sha256(salt.encode())
    for f in files:
        digest.update(Path(f).name.encode() + b"\0" + file_sha256(f).encode() + b"\n")
    return digest.hexdigest()[:KEY_LENGTH]


def cached_build(kind: str, key: str, build: Callable[[Path], None], marker: str = "config.json") -> Path:
    """Return ``cache_dir()/kind/key``, building it with ``build(tmp_dir)`` if it is not there.

    ``build`` writes into a temporary folder which is renamed into place only when it returns;
    a folder without ``marker`` (never produced by this function) is rebuilt.
    """
    dst = cache_dir() / kind / key
    if (dst / marker).exists():
        return dst
    with atomic_directory(dst) as tmp:
        build(tmp)
    return dst
