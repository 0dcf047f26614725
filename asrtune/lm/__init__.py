"""Word n-gram language models for CTC beam search (``asrtune lm build``).

- :mod:`asrtune.lm.ngram`: interpolated modified Kneser-Ney estimation, written as ARPA;
- :mod:`asrtune.lm.lexicon`: text cleaning, spellings (``lexicon.txt``), ``tokens.txt``;
- :mod:`asrtune.lm.build`: text -> LM folder (``lm.arpa``, ``lexicon.txt``, ``tokens.txt``, ``lm.json``);
- :mod:`asrtune.lm.hotwords`: hotword boosting inside flashlight's lexicon decoder.

Decoding with an LM folder lives in :mod:`asrtune.inference.ctc`.
"""

from asrtune.lm.build import build_lm, load_lm_info
from asrtune.lm.ngram import estimate_kneser_ney

__all__ = ["build_lm", "estimate_kneser_ney", "load_lm_info"]
