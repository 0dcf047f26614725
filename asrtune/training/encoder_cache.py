"""Encoder-output cache: run a frozen encoder once per utterance, reuse it every epoch.

With Whisper's encoder frozen and no input augmentation, the encoder output of an utterance
never changes, yet a naive loop recomputes it every step - most of the compute of a
decoder-only fine-tune. This cache stores each output once, as float16, in memory-mapped
numpy files, so later epochs (and later runs, and the dev set) read it back for the price of
a page-cache hit.

Layout (under ``cache_dir()/encoder-outputs/<model key>/``, shared between runs)::

    fingerprint.json          what the outputs depend on (encoder weight digest, feature settings)
    shard-<id>.npy            float16 [n, frames, d_model]: one shard per build
    index.json                utterance key -> [shard, row]

The model key hashes the adapter's ``cache_fingerprint()``: other weights or feature settings
give another folder. With ``--train-encoder-top K`` the rows are the hidden states entering the
top K (trainable) layers, not the encoder's output; the fingerprint then names that split point
and digests only the frozen weights below it, so each K has its own folder. An utterance key hashes its audio path, offset, duration, file size and
mtime, so an edited or replaced audio file is encoded again. A build writes its shard fully
and only then adds it to ``index.json`` (atomic rename) under a file lock, so a killed build or
two concurrent runs never leave a row pointing at garbage. Stale entries are harmless; delete
the folder to reclaim the space.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from asrtune.errors import AsrtuneError
from asrtune.fileio import write_json_atomic

CACHE_VERSION = 1  # bump when the on-disk layout changes
#: Utterances per shard file: a killed build loses at most one shard of work (~300 MB for tiny.en).
SHARD_UTTERANCES = 256


def utterance_key(utt: Any) -> str:
    """Key of one utterance's audio: path, offset, duration, size and mtime of the file."""
    path = os.path.abspath(utt.audio_filepath)
    try:
        st = os.stat(path)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    raw = f"{path}|{utt.offset:.4f}|{utt.duration:.4f}|{stamp}"
    return hashlib.sha1(raw.encode()).hexdigest()


def _allocate(path: Path, utterances: int) -> None:
    """Give a fresh memory-mapped shard its disk blocks now, or fail with a clear error.

    ``open_memmap`` makes a sparse file; on a full disk, storing into its pages later kills the
    process with SIGBUS (no traceback, no message). Allocating up front turns that into ENOSPC here.
    """
    if not hasattr(os, "posix_fallocate"):  # macOS: no preallocation; a full disk still fails late
        return
    size = path.stat().st_size
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            free_gb = shutil.disk_usage(path.parent).free / 1e9
            raise AsrtuneError(
                f"no disk space for the encoder cache in {path.parent}: a shard of {utterances} utterances needs "
                f"{size / 1e9:.2f} GB, {free_gb:.2f} GB are free; free some space, point --cache-dir at a bigger "
                "disk, or pass --cache off") from None


class EncoderCache:
    """A folder of cached encoder outputs for one (model, feature settings) fingerprint.

    >>> cache = EncoderCache(tmp / "enc", {"encoder_weights": "abc"}, shape=(1500, 384))  # doctest: +SKIP
    >>> cache.build(utts, encode=adapter.encode, load=load_audio_of)                      # doctest: +SKIP
    >>> cache.get(utts[0]).shape                                                          # doctest: +SKIP
    (1500, 384)
    """

    def __init__(self, root: str | os.PathLike, fingerprint: dict[str, Any], shape: Sequence[int]):
        self.fingerprint = {"version": CACHE_VERSION, **fingerprint, "shape": list(shape)}
        key = hashlib.sha256(json.dumps(self.fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:20]
        self.dir = Path(root) / key
        self.shape = tuple(int(s) for s in shape)
        self.dir.mkdir(parents=True, exist_ok=True)
        fp_path = self.dir / "fingerprint.json"
        if not fp_path.exists():
            write_json_atomic(fp_path, self.fingerprint)
        self._index: dict[str, list] = self._read_index()
        self._shards: dict[str, np.ndarray] = {}
        #: utterances encoded by this object's builds (tests and logs count encoder work with it)
        self.encoded = 0

    # --- reading ------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, list]:
        path = self.dir / "index.json"
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}  # a damaged index only costs a rebuild

    def __contains__(self, utt: Any) -> bool:
        return utterance_key(utt) in self._index

    def missing(self, utts: Sequence[Any]) -> list[Any]:
        """The utterances not in the cache yet (duplicates removed)."""
        seen, out = set(), []
        for u in utts:
            k = utterance_key(u)
            if k not in self._index and k not in seen:
                seen.add(k)
                out.append(u)
        return out

    def get(self, utt: Any) -> np.ndarray:
        """The cached output of ``utt`` (a read-only memory-mapped float16 array)."""
        shard, row = self._index[utterance_key(utt)]
        if shard not in self._shards:
            self._shards[shard] = np.load(self.dir / shard, mmap_mode="r")
        return self._shards[shard][row]

    def nbytes(self, n: int) -> int:
        return int(n * np.prod(self.shape) * 2)

    # --- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def build(
        self,
        utts: Sequence[Any],
        encode: Callable[[list[np.ndarray]], np.ndarray],
        load: Callable[[Any], np.ndarray],
        batch_size: int = 16,
        progress: Any = True,
        desc: str = "encoder cache",
        map_fn: Callable = map,
    ) -> int:
        """Encode the utterances not cached yet; returns how many were encoded.

        ``progress`` is a bool (a tqdm bar or nothing) or an object with ``update(n, utts=n)`` and
        ``close()`` (the trainer's :class:`~asrtune.training.progress.Progress`).
        ``map_fn(load, chunk)`` loads a chunk of utterances: the built-in ``map`` by default, or a
        thread pool's map to decode audio in parallel.

        Outputs are committed every :data:`SHARD_UTTERANCES` utterances (a shard file renamed into
        place, then the index), so a build that is killed resumes from its last shard.
        """
        with self._locked():
            for orphan in self.dir.glob(".shard-*.partial"):  # left by a killed build; we hold the lock
                orphan.unlink(missing_ok=True)
            self._index = self._read_index()  # another run may have added entries meanwhile
            todo = self.missing(utts)
            if isinstance(progress, bool):
                bar = tqdm(total=len(todo), desc=desc, unit="utt", disable=not progress or not todo, leave=False)
            else:
                bar = progress
            for shard_start in range(0, len(todo), SHARD_UTTERANCES):
                shard_utts = todo[shard_start : shard_start + SHARD_UTTERANCES]
                self._write_shard(shard_utts, encode, load, batch_size, bar, map_fn)
            bar.close()
            self.encoded += len(todo)
            return len(todo)

    def _write_shard(self, utts: Sequence[Any], encode, load, batch_size: int, bar, map_fn: Callable = map) -> None:
        name = f"shard-{uuid.uuid4().hex[:12]}.npy"
        tmp = self.dir / f".{name}.partial"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(utts), *self.shape))
            _allocate(tmp, len(utts))
            for start in range(0, len(utts), batch_size):
                chunk = utts[start : start + batch_size]
                encoded = encode(list(map_fn(load, chunk)))
                if encoded.shape[1:] != self.shape:
                    raise ValueError(f"encoder output shape {encoded.shape[1:]} != cache shape {self.shape}")
                out[start : start + len(chunk)] = encoded
                bar.update(len(chunk))
            out.flush()
            del out
            os.replace(tmp, self.dir / name)
        finally:
            tmp.unlink(missing_ok=True)
        for row, u in enumerate(utts):
            self._index[utterance_key(u)] = [name, row]
        write_json_atomic(self.dir / "index.json", self._index, indent=None)
