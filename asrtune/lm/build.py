"""``asrtune lm build``: domain text → ARPA LM + lexicon + tokens + ``lm.json``.

The output folder is what :class:`asrtune.inference.ctc.CTCRecognizer` takes as ``lm=``::

    lm/lm.arpa      word n-gram LM (interpolated modified Kneser-Ney, see asrtune.lm.ngram)
    lm/lexicon.txt  word → spelling in the model's tokens, ending with "|"
    lm/tokens.txt   the model's CTC tokens in id order (from --tokens-from, else from the text)
    lm/lm.json      what the files are, how the text was cleaned, hotwords and decoder defaults

Terms (``--terms FILE``, one term per line, multi-word allowed) are added to the LM text once
each, so even a term the text never mentions is in the vocabulary, and listed as hotwords that
the decoder boosts (see asrtune.lm.hotwords).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from asrtune.data.terms import load_terms
from asrtune.data.textfile import iter_text_lines
from asrtune.errors import ConfigError
from asrtune.fileio import atomic_directory, check_folder_output, write_json_atomic
from asrtune.lm.lexicon import clean_line, load_vocab_from, write_lexicon, write_tokens
from asrtune.lm.ngram import check_order, estimate_kneser_ney
from asrtune.models.ctc_vocab import build_vocab, parse_char_map, vocab_case

LM_FORMAT = "asrtune-lm/1"
DEFAULT_ORDER = 3
# Added to a hotword's LM score (log10 units, so +2.0 makes it look 100x likelier) at decode time.
DEFAULT_HOTWORD_BOOST = 2.0
# Decoder defaults recorded in lm.json; tuned on speechocean762-like data, override per run.
DEFAULT_LM_WEIGHT = 1.0
DEFAULT_WORD_SCORE = 0.0
DEFAULT_BEAM_SIZE = 50  # hypotheses kept per frame by CTC beam search with an LM


def _read_lines(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        yield from (line for _, line in iter_text_lines(path))


def build_lm(
    text: str | os.PathLike | list,
    out: str | os.PathLike,
    order: int = DEFAULT_ORDER,
    terms: str | os.PathLike | list[str] | None = None,
    tokens_from: str | None = None,
    char_map: str | dict | None = None,
    hotword_boost: float = DEFAULT_HOTWORD_BOOST,
) -> dict:
    """Build the decoder's LM folder ``out`` from plain text file(s); returns the ``lm.json`` dict.

    >>> info = build_lm("domain.txt", "lm/", order=3, terms="terms.txt")   # doctest: +SKIP
    >>> info["vocabulary"], info["hotwords"][:2]                            # doctest: +SKIP
    (2841, ['kubernetes', 'grafana'])
    """
    check_order(order)
    check_folder_output(out, "--out")
    paths = [Path(p) for p in (text if isinstance(text, list) else [text])]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"--text {path}: file not found")
    if isinstance(terms, (str, os.PathLike)) and not Path(terms).is_file():
        raise ConfigError(f"--terms {terms}: file not found")
    mapping = parse_char_map(char_map)
    vocab = load_vocab_from(tokens_from) if tokens_from else None
    case = vocab_case(vocab) if vocab else "lower"
    if case == "mixed":
        case = "keep"  # a mixed-case vocabulary gets the text's own case

    sentences: list[list[str]] = []
    # disable=None: no progress bar when stderr is not a terminal (logs, pipes, CI)
    for line in tqdm(_read_lines(paths), desc="reading LM text", unit=" lines", leave=False, disable=None):
        words = clean_line(line, case, mapping, vocab)
        if words:
            sentences.append(words)
    term_list = load_terms(terms) if isinstance(terms, (str, os.PathLike)) else list(terms or [])
    hotwords: list[str] = []
    for term in term_list:
        words = clean_line(term, case, mapping, vocab)
        if words:
            sentences.append(words)
            hotwords.extend(w for w in words if w not in hotwords)
    if not sentences:
        raise ConfigError(f"--text {', '.join(map(str, paths))}: no words found")

    if vocab is None:
        vocab = build_vocab(" ".join(s) for s in sentences)
    model = estimate_kneser_ney(sentences, order)
    word_counts = Counter(w for s in sentences for w in s)

    out = Path(out)
    with atomic_directory(out) as tmp:
        model.write_arpa(tmp / "lm.arpa")
        skipped, unspellable = write_lexicon(tmp / "lexicon.txt", sorted(word_counts), vocab)
        write_tokens(tmp / "tokens.txt", vocab)
        info = {
            "format": LM_FORMAT,
            "arpa": "lm.arpa",
            "lexicon": "lexicon.txt",
            "tokens": "tokens.txt",
            "order": order,
            "case": case,
            "char_map": mapping,
            "tokens_from": str(tokens_from) if tokens_from else None,
            "text": [str(p) for p in paths],
            "sentences": len(sentences),
            "words": sum(word_counts.values()),
            "vocabulary": len(word_counts),
            "unspellable_words": skipped,
            "unspellable_chars": dict(unspellable.most_common()),
            "discounts": [list(d) for d in model.discounts],
            "hotwords": hotwords,
            "hotword_boost": hotword_boost,
            "decoder": {"lm_weight": DEFAULT_LM_WEIGHT, "word_score": DEFAULT_WORD_SCORE, "beam_size": DEFAULT_BEAM_SIZE},
        }
        write_json_atomic(tmp / "lm.json", info)
    return info


def load_lm_info(lm_dir: str | os.PathLike) -> tuple[Path, dict]:
    """Read ``lm.json`` of an LM folder (or the folder holding a given ``lm.json``)."""
    path = Path(lm_dir)
    if path.is_file() and path.name == "lm.json":
        path = path.parent
    info_path = path / "lm.json"
    if not info_path.is_file():
        raise ConfigError(f"--lm {lm_dir}: no lm.json there; build one with `asrtune lm build --text domain.txt --out {lm_dir}`")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    for key in ("arpa", "lexicon"):
        if not (path / info[key]).is_file():
            raise ConfigError(f"--lm {lm_dir}: {info[key]} named in lm.json is missing")
    return path, info
