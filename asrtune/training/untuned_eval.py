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
decoding settings the trainer passes (:func:`decoding_settings`), and the asrtune source with the
torch and transformers versions (any code change decodes afresh).

A run also keeps its own step-0 hypotheses in memory, clip by clip (:class:`StartingHypotheses`):
the base-vs-tuned comparison at the end (``--eval-sets``, :mod:`asrtune.training.compare`)
reads the base model's hypotheses of dev and guard clips from there, and those of an eval set
from the kept files under the same key, instead of decoding the base again.

>>> key = hypotheses_key("w1", [], {"language": None})
>>> len(key), key == hypotheses_key("w2", [], {"language": None})
(20, False)
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from asrtune.fileio import write_json_atomic
from asrtune.models.cache import KEY_LENGTH, content_key
from asrtune.training.encoder_cache import utterance_key

FOLDER = "step0-hypotheses"  # under the cache root
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # asrtune/


@functools.cache
def source_digest() -> str:
    """sha256 of every ``.py`` file of the asrtune package (path and bytes) and the torch and
    transformers versions: what decoding code a set of hypotheses came from."""
    import transformers  # heavy: transformers (after train's input checks)

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


def decoding_settings(family: str, language: str | None, device: str, model_path: str | Path, eval_batch_size: int,
                      encoder_cache: dict[str, Any] | None) -> dict[str, Any]:
    """The decoding settings a step-0 key names: family, language, device type, the model folder's
    configs (generation config with its suppressed tokens, processor, tokenizer), the batch size,
    and the encoder cache's fingerprint when the clips are decoded from cached encoder outputs."""
    return {"family": family, "language": language, "device": device,
            "configs": content_key(sorted(Path(model_path).glob("*.json"))),
            "eval_batch_size": eval_batch_size, "encoder_cache": encoder_cache}


@dataclass
class StartingHypotheses:
    """The starting model's hypotheses one run holds: the clips it decoded (or read back) at step 0,
    by utterance key, and where earlier runs' are kept (``root``; None with ``--cache off``, so
    nothing is read back or written).

    >>> from asrtune.data.manifest import Utterance
    >>> known = StartingHypotheses(root=None)
    >>> known.remember([Utterance("a.wav", "hi", 1.0)], ["hi"])
    >>> known.recall([Utterance("a.wav", "hi", 1.0), Utterance("b.wav", "yo", 1.0)])
    ['hi', None]
    """

    root: Path | None
    weights: str | None = None  # digest of the starting weights, once a step-0 evaluation computed it
    clips: dict[str, str] = field(default_factory=dict)  # utterance key -> hypothesis

    def remember(self, utts: Sequence[Any], hyps: Sequence[str]) -> None:
        self.clips.update((utterance_key(u), h) for u, h in zip(utts, hyps))

    def recall(self, utts: Sequence[Any]) -> list[str | None]:
        """This run's step-0 hypothesis of each utterance, None where it has none."""
        return [self.clips.get(utterance_key(u)) for u in utts]

    def load(self, key: str, count: int) -> list[str] | None:
        return load_hypotheses(self.root, key, count) if self.root is not None else None

    def save(self, key: str, hyps: list[str]) -> None:
        if self.root is not None:
            save_hypotheses(self.root, key, hyps)
