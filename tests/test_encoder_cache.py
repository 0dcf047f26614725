"""EncoderCache: outputs stored once, read back memory-mapped, rebuilt when the audio changes."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from asrtune.data.manifest import Utterance
from asrtune.training.encoder_cache import EncoderCache


def make_utts(tmp_path, n=3):
    utts = []
    for i in range(n):
        path = tmp_path / f"a{i}.wav"
        sf.write(path, np.full(1600, 0.01 * (i + 1), dtype=np.float32), 16000)
        utts.append(Utterance(str(path), f"utt {i}", 0.1))
    return utts


def fake_encode_calls():
    calls = []

    def encode(audios):
        calls.append(len(audios))
        # a real function of the audio: mean amplitude broadcast to the cache shape
        return np.stack([np.full((4, 2), a.mean(), dtype=np.float16) for a in audios])

    return encode, calls


def load(u):
    return sf.read(u.audio_filepath, dtype="float32")[0]


def test_build_once_then_hit(tmp_path):
    utts = make_utts(tmp_path)
    encode, calls = fake_encode_calls()
    cache = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    assert cache.build(utts, encode, load, batch_size=2, progress=False) == 3
    assert calls == [2, 1]
    again = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    assert again.missing(utts) == [] and again.build(utts, encode, load, progress=False) == 0
    np.testing.assert_allclose(again.get(utts[2]), np.float16(0.03), rtol=1e-3)
    assert isinstance(again.get(utts[0]), np.memmap) or again.get(utts[0]).base is not None


def test_changed_audio_or_weights_rebuild(tmp_path):
    utts = make_utts(tmp_path)
    encode, calls = fake_encode_calls()
    cache = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    cache.build(utts, encode, load, progress=False)
    sf.write(utts[1].audio_filepath, np.full(1600, 0.5, dtype=np.float32), 16000)
    os.utime(utts[1].audio_filepath, ns=(1, 1))  # a different mtime even on coarse clocks
    again = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    assert again.missing(utts) == [utts[1]]
    again.build(utts, encode, load, progress=False)
    np.testing.assert_allclose(again.get(utts[1]), np.float16(0.5), rtol=1e-3)
    other = EncoderCache(tmp_path / "c", {"encoder_weights": "w2"}, (4, 2))
    assert other.dir != again.dir and len(other.missing(utts)) == 3


def test_interrupted_build_keeps_finished_shards_and_resumes(tmp_path, monkeypatch):
    import pytest

    from asrtune.training import encoder_cache

    monkeypatch.setattr(encoder_cache, "SHARD_UTTERANCES", 2)
    utts = make_utts(tmp_path, n=5)
    encode, calls = fake_encode_calls()

    def dies_on_third_batch(audios):
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for a kill during the second shard
        return encode(audios)

    cache = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    with pytest.raises(KeyboardInterrupt):
        cache.build(utts, dies_on_third_batch, load, batch_size=1, progress=False)
    assert not list(cache.dir.glob(".*.partial"))  # no half-written shard left behind

    again = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    assert again.missing(utts) == utts[2:]  # the first shard survived the interruption
    assert again.build(utts, encode, load, batch_size=1, progress=False) == 3
    np.testing.assert_allclose(again.get(utts[4]), np.float16(0.05), rtol=1e-3)


def test_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    """A sparse memmap on a full disk dies of SIGBUS; the shard is allocated first to fail cleanly.

    The full disk itself cannot be made here (no loop mounts), so the allocation call fails as the
    kernel does on one: ENOSPC.
    """
    import errno

    import pytest

    from asrtune.errors import AsrtuneError

    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    utts = make_utts(tmp_path)
    encode, calls = fake_encode_calls()
    cache = EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2))
    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(AsrtuneError, match=r"no disk space for the encoder cache in .*--cache-dir.*--cache off"):
        cache.build(utts, encode, load, progress=False)
    assert calls == [] and not list((tmp_path / "c").glob("*shard-*"))
    monkeypatch.undo()
    assert EncoderCache(tmp_path / "c", {"encoder_weights": "w1"}, (4, 2)).build(utts, encode, load, progress=False) == 3
