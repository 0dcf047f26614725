"""Character vocabularies for CTC models: build, check, extend, save.

A CTC model predicts one character (or blank) per ~20 ms frame, so its vocabulary is a small
character table. asrtune uses the layout of the wav2vec2 checkpoints on the hub:

    <pad>  id 0, also the CTC blank
    <unk>  anything the table lacks (only ever produced for text we failed to check)
    |      the word delimiter (a space in the transcript)
    a b c ' ...  the characters of the training text, sorted

Case policy. A vocabulary built from the training manifests is lower-case: transcripts are
lower-cased first (halves the table and the data each character needs; the word error rate
reported by ``asrtune eval`` is case-insensitive after normalisation anyway). A checkpoint's
own vocabulary keeps its case: ``facebook/wav2vec2-base-960h`` is upper-case, so transcripts
are upper-cased for it; a mixed-case vocabulary gets the text as written.

Text containing characters outside the vocabulary is an error that lists them and names the
two fixes: ``--extend-vocab`` (add rows to the CTC head, initialised from similar characters)
or ``--char-map "é=e,’='"`` (rewrite or, with an empty right side, drop characters).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from asrtune.errors import ConfigError

PAD_TOKEN = "<pad>"  # id 0: padding and the CTC blank
UNK_TOKEN = "<unk>"
WORD_DELIMITER = "|"  # stands for the space between words
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER)
# Tokens of hub checkpoints that are never emitted for text (bos/eos of wav2vec2-base-960h).
NON_TEXT_TOKENS = frozenset({PAD_TOKEN, UNK_TOKEN, "<s>", "</s>"})
# New CTC-head rows start this many logits below the lowest existing bias, so an untrained
# character is never preferred over the characters the model already knows.
NEW_ROW_BIAS_MARGIN = 2.0  # logits

_SPACES = re.compile(r"\s+")


def parse_char_map(spec: str | dict[str, str] | None) -> dict[str, str]:
    """Parse ``--char-map``: comma-separated ``from=to`` pairs; an empty ``to`` drops the character.

    >>> parse_char_map("é=e,’=',—=")
    {'é': 'e', '’': "'", '—': ''}
    """
    if not spec:
        return {}
    if isinstance(spec, dict):
        return {str(k): str(v) for k, v in spec.items()}
    mapping: dict[str, str] = {}
    for item in spec.split(","):
        if not item:
            continue
        if "=" not in item[1:]:
            raise ConfigError(f"--char-map: {item!r} is not 'from=to' (example: --char-map \"é=e,’=',—=\")")
        # the first '=' after the first character splits, so "==x" maps '=' to 'x'
        split_at = item.index("=", 1)
        source, target = item[:split_at], item[split_at + 1 :]
        mapping[source] = target
    return mapping


def vocab_case(vocab: dict[str, int]) -> str:
    """``"lower"``, ``"upper"`` or ``"mixed"``: which letters the vocabulary has."""
    letters = [t for t in vocab if len(t) == 1 and t.isalpha() and t.lower() != t.upper()]
    has_lower = any(t.islower() for t in letters)
    has_upper = any(t.isupper() for t in letters)
    if has_upper and not has_lower:
        return "upper"
    if has_lower and not has_upper:
        return "lower"
    return "mixed"


def prepare_text(text: str, case: str = "lower", char_map: dict[str, str] | None = None) -> str:
    """The transcript as the CTC model should spell it: mapped, cased, single-spaced.

    >>> prepare_text("  Café’s   menu ", "upper", {"’": "'", "é": "e"})
    "CAFE'S MENU"
    """
    text = unicodedata.normalize("NFC", text)
    for source, target in (char_map or {}).items():
        text = text.replace(source, target)
    if case == "lower":
        text = text.lower()
    elif case == "upper":
        text = text.upper()
    return _SPACES.sub(" ", text).strip()


def build_vocab(texts: Iterable[str]) -> dict[str, int]:
    """A fresh vocabulary from prepared transcripts: specials first, then the characters sorted.

    >>> build_vocab(["ab ba", "c'a"])
    {'<pad>': 0, '<unk>': 1, '|': 2, "'": 3, 'a': 4, 'b': 5, 'c': 6}
    """
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    chars.discard(" ")
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in sorted(chars - set(SPECIAL_TOKENS)):
        vocab[char] = len(vocab)
    return vocab


@dataclass
class MissingChars:
    """Characters of the text that the vocabulary lacks, with a count and first place seen.

    >>> m = MissingChars(); m.add("naïve", "train.jsonl:3", {"n": 1, "a": 2, "v": 3, "e": 4})
    >>> m.counts
    Counter({'ï': 1})
    """

    counts: Counter = field(default_factory=Counter)
    first_seen: dict[str, str] = field(default_factory=dict)

    def add(self, text: str, where: str, vocab: dict[str, int]) -> None:
        for char in text:
            if char != " " and char not in vocab:
                self.counts[char] += 1
                self.first_seen.setdefault(char, where)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def describe(self, limit: int = 12) -> str:
        items = [f"{c!r} x{n} (first at {self.first_seen[c]})" for c, n in self.counts.most_common(limit)]
        more = len(self.counts) - limit
        return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def find_missing_chars(texts: Iterable[tuple[str, str]], vocab: dict[str, int]) -> MissingChars:
    """Scan ``(prepared_text, where)`` pairs for characters outside ``vocab``."""
    missing = MissingChars()
    for text, where in texts:
        missing.add(text, where, vocab)
    return missing


def out_of_vocab_error(missing: MissingChars, model_name: str) -> ConfigError:
    """The one error for text the model cannot spell, naming both fixes."""
    chars = "".join(sorted(missing.counts))
    example = ",".join(f"{c}=" for c in sorted(missing.counts)[:3])
    return ConfigError(
        f"transcripts contain {len(missing.counts)} character(s) that the vocabulary of {model_name} lacks: "
        f"{missing.describe()}. Either add them to the model with --extend-vocab, or rewrite/drop them with "
        f'--char-map (e.g. --char-map "{example}" drops them; "é=e" rewrites). Missing: {chars!r}'
    )


def similar_chars(char: str, vocab: dict[str, int]) -> list[str]:
    """Vocabulary entries that look like ``char``: its other case and its unaccented base letter.

    >>> similar_chars("é", {"e": 4, "E": 5, "a": 6})
    ['e', 'E']
    """
    candidates = [char.lower(), char.upper()]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and base != char:
        candidates += [base, base.lower(), base.upper()]
    seen: list[str] = []
    for c in candidates:
        if c != char and c in vocab and c not in seen:
            seen.append(c)
    return seen


def extend_ctc_head(model, vocab: dict[str, int], new_chars: Iterable[str]) -> dict[str, int]:
    """Append ``new_chars`` to ``vocab`` and grow the model's CTC head (``lm_head``) to match.

    A new row is the mean of the rows of similar characters (``é`` starts as ``e``), else the
    mean of all character rows; its bias starts ``NEW_ROW_BIAS_MARGIN`` below the lowest
    existing bias so the character is learnt rather than guessed. Returns the new vocabulary.
    """
    import torch  # heavy: torch

    vocab = dict(vocab)
    new_chars = [c for c in dict.fromkeys(new_chars) if c not in vocab]
    if not new_chars:
        return vocab
    head = model.lm_head
    old_rows = head.weight.shape[0]
    if max(vocab.values()) + 1 > old_rows:
        raise ConfigError(f"the vocabulary has {max(vocab.values()) + 1} entries but the CTC head only {old_rows} rows")
    char_ids = [i for t, i in vocab.items() if t not in NON_TEXT_TOKENS and t != WORD_DELIMITER and i < old_rows]
    new_head = torch.nn.Linear(head.in_features, old_rows + len(new_chars), bias=head.bias is not None)
    new_head.to(device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        new_head.weight[:old_rows] = head.weight
        if head.bias is not None:
            new_head.bias[:old_rows] = head.bias
            low_bias = head.bias.min() - NEW_ROW_BIAS_MARGIN
        for k, char in enumerate(new_chars):
            row = old_rows + k
            similar = [vocab[c] for c in similar_chars(char, vocab)] or char_ids or list(range(old_rows))
            new_head.weight[row] = head.weight[similar].mean(dim=0)
            if head.bias is not None:
                new_head.bias[row] = low_bias
            vocab[char] = row
    model.lm_head = new_head
    model.config.vocab_size = new_head.out_features
    return vocab


def resize_ctc_head(model, vocab_size: int) -> None:
    """Give a (randomly initialised) model a CTC head of ``vocab_size`` rows, keeping what fits."""
    import torch  # heavy: torch

    head = model.lm_head
    if head.out_features == vocab_size:
        return
    new_head = torch.nn.Linear(head.in_features, vocab_size, bias=head.bias is not None)
    new_head.to(device=head.weight.device, dtype=head.weight.dtype)
    keep = min(vocab_size, head.out_features)
    with torch.no_grad():
        new_head.weight[:keep] = head.weight[:keep]
        if head.bias is not None:
            new_head.bias[:keep] = head.bias[:keep]
    model.lm_head = new_head
    model.config.vocab_size = vocab_size


def make_processor(vocab: dict[str, int], folder: str | Path, sampling_rate: int = 16_000, feature_extractor=None):
    """Write ``vocab.json`` to ``folder`` and return a ``Wav2Vec2Processor`` saved there.

    ``feature_extractor`` defaults to a fresh normalising one (zero mean, unit variance), which
    is what wav2vec2-family models expect.
    """
    # heavy: transformers
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_path = folder / "vocab.json"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_path),
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        word_delimiter_token=WORD_DELIMITER,
        bos_token=None,
        eos_token=None,
        do_lower_case=False,
    )
    if feature_extractor is None:
        feature_extractor = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
        )
    processor = Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    processor.save_pretrained(str(folder))
    return processor


def vocab_tokens(vocab: dict[str, int]) -> list[str]:
    """Tokens in id order (what a flashlight ``tokens.txt`` lists, one per line)."""
    size = max(vocab.values()) + 1
    tokens = [""] * size
    for token, idx in vocab.items():
        tokens[idx] = token
    return [t if t else f"<unused{i}>" for i, t in enumerate(tokens)]
