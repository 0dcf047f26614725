"""``--replay-text``: general-English text, spoken once by eSpeak, mixed into a fine-tune.

Forgetting in a decoder-only tune is largely the decoder's language model drifting towards the
domain's sentences. Replaying general sentences keeps it exercised on general English without
any general-English audio: eSpeak NG (:mod:`asrtune.synth`) speaks each sentence once, the
renderings are kept in the asrtune cache (keyed by the text and the synthesis settings, so every
run with the same file reuses them), and the trainer draws ``--replay-share`` of every epoch
from them.

``--replay-text general-english`` names the sentences asrtune ships (:data:`SHIPPED_FILE`: 191
everyday sentences, CC0); any other value is a file of your own.

>>> replay_text_file("general-english").name
'general_english.txt'
>>> replay_weights([0.75, 0.25], [100, 50], 0.2)
[0.6, 0.2, 0.2]
>>> replay_weights(None, [300, 100], 0.2)
[0.6, 0.2, 0.2]
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from asrtune.data.manifest import Utterance, load_manifest
from asrtune.fileio import atomic_directory
from asrtune.synth import SynthConfig, read_sentences, synthesize_corpus

FOLDER = "replay"  # under the cache root (or --cache-dir)
VARIANTS_PER_SENTENCE = 1  # one rendering each: the text, not the voice, is what is replayed
SHIPPED_NAME = "general-english"  # the --replay-text value that names the shipped sentences
SHIPPED_FILE = Path(__file__).with_name("general_english.txt")


def replay_text_file(value: str | Path) -> Path:
    """The file ``--replay-text value`` reads: the shipped sentences for ``general-english``."""
    return SHIPPED_FILE if str(value) == SHIPPED_NAME else Path(value)


def replay_weights(weights: list[float] | None, sizes: list[int], share: float) -> list[float]:
    """Sampling weights for the ``--train`` sources followed by the replay source: the domain
    keeps its proportions (``weights``, else the sources' sizes) in ``1 - share`` of each epoch."""
    domain = weights if weights is not None else [n / sum(sizes) for n in sizes]
    total = sum(domain)
    return [round((1 - share) * w / total, 12) for w in domain] + [share]


def replay_utterances(text_file: str | Path, cache_root: Path, seed: int = 0) -> list[Utterance]:
    """The eSpeak renderings of ``text_file``'s sentences, synthesised on first use."""
    sentences = read_sentences(replay_text_file(text_file))
    config = SynthConfig(variants_per_sentence=VARIANTS_PER_SENTENCE, seed=seed)
    key = hashlib.sha256(("\n".join(sentences) + repr(config)).encode()).hexdigest()[:16]
    folder = cache_root / FOLDER / key
    if not (folder / "manifest.jsonl").is_file():
        with atomic_directory(folder) as tmp:  # a run killed mid-synthesis leaves nothing half-made
            synthesize_corpus(sentences, tmp, config, progress=False)
    return load_manifest(folder / "manifest.jsonl")
