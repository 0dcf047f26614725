"""Hotword boosting for flashlight's lexicon beam search.

flashlight's ``LexiconDecoder`` has no hotword option, so boosting is done in the language
model: :class:`HotwordLM` is a torchaudio ``CTCDecoderLM`` (a Python LM the C++ decoder calls)
that wraps the KenLM model and adds ``boost`` (log10 units, before ``lm_weight``) to the score
of every hotword. Three things follow from doing it in the LM:

* the lexicon trie is "smeared" with each word's unigram score from this LM when the decoder
  is built, so hypotheses that are *spelling* a hotword get the bonus as look-ahead and survive
  beam pruning before the word is complete (prefix boosting for free);
* a hotword the LM never saw (scored as ``<unk>``) becomes reachable: it is added to the
  lexicon, and the boost lifts it above the ``<unk>`` floor;
* multi-word terms boost each of their words (a per-word bonus, not a phrase bonus).

The cost is a Python call per word hypothesis (not per frame), a few microseconds each.
"""

from __future__ import annotations

from torchaudio.models.decoder import CTCDecoderLM


class HotwordLM(CTCDecoderLM):
    """KenLM scores plus ``boost`` for the word ids in ``hotword_ids``.

    >>> from flashlight.lib.text.decoder import KenLM                      # doctest: +SKIP
    >>> lm = HotwordLM(KenLM("lm.arpa", word_dict), {word_dict.get_index("grafana")}, 2.0)  # doctest: +SKIP
    """

    def __init__(self, inner, hotword_ids: set[int], boost: float):
        CTCDecoderLM.__init__(self)
        self.inner = inner  # kept referenced: the C++ decoder holds only a raw pointer
        self.hotword_ids = frozenset(hotword_ids)
        self.boost = float(boost)

    def start(self, start_with_nothing: bool):
        return self.inner.start(start_with_nothing)

    def score(self, state, usr_token_idx: int):
        next_state, score = self.inner.score(state, usr_token_idx)
        if usr_token_idx in self.hotword_ids:
            score += self.boost
        return next_state, score

    def finish(self, state):
        return self.inner.finish(state)
