"""Text-only domain adaptation: synthesise training audio from domain text with eSpeak NG.

>>> from asrtune.synth import SynthConfig, synthesize_corpus, read_sentences
>>> synthesize_corpus(read_sentences("manifests/clinic/train.txt"), "synth/train")  # doctest: +SKIP
"""

from asrtune.synth.corpus import (
    DEFAULT_PITCHES,
    DEFAULT_RATES,
    DEFAULT_SNR_DB,
    DEFAULT_VOICES,
    SynthConfig,
    add_noise,
    synthesize_corpus,
)
from asrtune.synth.espeak import EspeakEngine, get_engine, list_variants, list_voices
from asrtune.synth.text import SentenceFile, has_word, number_to_words, read_sentence_file, read_sentences, speakable

__all__ = [
    "DEFAULT_PITCHES",
    "DEFAULT_RATES",
    "DEFAULT_SNR_DB",
    "DEFAULT_VOICES",
    "EspeakEngine",
    "SentenceFile",
    "SynthConfig",
    "add_noise",
    "get_engine",
    "has_word",
    "list_variants",
    "list_voices",
    "number_to_words",
    "read_sentence_file",
    "read_sentences",
    "speakable",
    "synthesize_corpus",
]
