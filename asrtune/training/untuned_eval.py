"""The starting model's hypotheses on an evaluation set, kept across runs.

Every run decodes dev (and the ``--guard-dev`` set) with its untuned weights at step 0: the base
is the first candidate for ``best/`` and sets the guard's base WER. Runs of the same model on the
same sets (a learning-rate sweep, a rerun with another recipe) repeat exactly that work, and it is
not small: Whisper base spent 10 minutes of a 50-minute 2-core budget there (it loops on accented
clips, and the loop fallback decodes them again). The hypotheses are kept in
``cache_dir()/step0-hypotheses/<key>.json``; the WER is recomputed from them, so the score is
the one decoding would give.

The key names everything the hypotheses depend on: a digest of the model's weights, every
utterance (:func:`~asrtune.training.encoder_cache.utterance_key`: path, span, size, mtime), the
decoding settings the trainer passes, and the asrtune source with the torch and transformers
versions (any code change decodes afresh).

>>> key = hypotheses_key("w1", [], {"language": None})
>>> len(key), key == hypotheses_key("w2", [], {"language": None})
(20, False)
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from asrtune.fileio import write_json_atomic
from asrtune.models.cache import KEY_LENGTH
from asrtune.training.encoder_cache import utterance_key

FOLDER = "step0-hypotheses"  # under the cache root
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # asrtune/


@functools.cache
def source_digest() -> str:
    """sha256 of every ``.py`` file of the asrtune package (path and bytes) and the torch and
    transformers versions: what decoding code a set of hypotheses came from."""
    import torch
    import transformers

    digest = hashlib.sha256(f"torch {torch.__version__} transformers {transformers.__version__}".encode())
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def hypotheses_key(weights: str, utts: Sequence[Any], settings: dict[str, Any]) -> str:
    """The cache key of one evaluation: model weight digest, utterances (in order), decoding settings."""
    raw = json.dumps({"weights": weights, "utterances": [utterance_key(u) for u in utts], "settings": settings,
                      "source": source_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:KEY_LENGTH]


def load_hypotheses(root: Path, key: str, count: int) -> list[str] | None:
    """The kept hypotheses for ``key``, or None (never stored, unreadable, or not ``count`` of them)."""
    try:
        hyps = json.loads((root / f"{key}.json").read_text(encoding="utf-8"))["hypotheses"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return hyps if isinstance(hyps, list) and len(hyps) == count and all(isinstance(h, str) for h in hyps) else None


def save_hypotheses(root: Path, key: str, hyps: list[str]) -> None:
    """Keep ``hyps`` for ``key`` (atomically; a read-only cache only means decoding again next time)."""
    try:
        write_json_atomic(root / f"{key}.json", {"hypotheses": hyps}, indent=None)
    except OSError:
        pass
