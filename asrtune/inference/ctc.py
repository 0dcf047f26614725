"""CTC recognition (wav2vec2, HuBERT, WavLM, data2vec-audio): greedy, or beam search with an LM.

Decoding runs in two steps. The acoustic model turns a batch of clips into per-frame
log-probabilities over its characters (:func:`ctc_log_probs`; clips are sorted by length so a
batch pads little). Then each clip is decoded on its own:

* **greedy**: best character per frame, repeats merged, blanks dropped (no LM, fastest);
* **beam search** (:class:`BeamSearchDecoder`): torchaudio's ``ctc_decoder``, i.e. flashlight's
  C++ ``LexiconDecoder``, constrained to the words of a lexicon and scored with a word n-gram
  KenLM model built by ``asrtune lm build``. Hotwords (the LM folder's terms plus ``terms=``)
  get a log-probability bonus through :class:`asrtune.lm.hotwords.HotwordLM`. With
  ``beam_size > 1`` and no LM it is a lexicon-free beam search (no word constraint).

torchaudio 2.11's ``ctc_decoder`` works with the pip ``flashlight-text`` wheel, whose KenLM
binding reads ARPA files directly, so no binary LM conversion step is needed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from asrtune.alignment.ctc import align_words, frame_seconds
from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.errors import ConfigError
from asrtune.extras import needs_extra
from asrtune.inference.base import Hypothesis, Recognizer, batches, check_clips
from asrtune.lm.build import DEFAULT_BEAM_SIZE, load_lm_info  # DEFAULT_BEAM_SIZE: hypotheses kept per frame with an LM
from asrtune.lm.lexicon import clean_line, read_lexicon_words, spell
from asrtune.models.ctc_vocab import vocab_case, vocab_tokens
from asrtune.models.loading import load_ctc

BEAM_SEARCH = "CTC beam search (--beam-size > 1 or --lm)"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def ctc_log_probs(model, processor, audios: Sequence[np.ndarray], batch_size: int = 16, device: str = "cpu", progress=None) -> list[np.ndarray]:
    """Per-clip ``[frames, vocab]`` float32 log-probabilities, in input order.

    Clips are batched longest-first so each batch pads to similar lengths; the padded frames
    are cut off each output using the model's own frame-count formula.
    """
    order = sorted(range(len(audios)), key=lambda i: -len(audios[i]))
    out: list[np.ndarray | None] = [None] * len(audios)
    feature_extractor = processor.feature_extractor
    use_mask = bool(getattr(feature_extractor, "return_attention_mask", False))
    model.eval()
    with torch.inference_mode():
        for batch_ids in batches(order, batch_size):
            clips = [audios[i] for i in batch_ids]
            inputs = feature_extractor(
                clips, sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt", padding=True, return_attention_mask=use_mask
            )
            values = inputs["input_values"].to(device)
            kwargs = {"attention_mask": inputs["attention_mask"].to(device)} if use_mask else {}
            logits = model(values, **kwargs).logits.float()
            log_probs = torch.log_softmax(logits, dim=-1).cpu()
            lengths = model._get_feat_extract_output_lengths(torch.tensor([len(c) for c in clips])).tolist()
            for row, (i, n) in enumerate(zip(batch_ids, lengths)):
                out[i] = log_probs[row, : min(int(n), log_probs.shape[1])].numpy()
            if progress is not None:
                progress.update(len(batch_ids))
    return out  # type: ignore[return-value]


def greedy_decode(log_probs: np.ndarray, tokenizer) -> str:
    """Best path: argmax per frame, merge repeats, drop blanks (the tokenizer's ``decode``).

    Non-text tokens (``<s>``, ``</s>``, ``<unk>``) are treated as blanks: they never belong in
    a transcript, and an untrained model can emit them.
    """
    ids = np.asarray(log_probs).argmax(axis=-1)
    blank = tokenizer.pad_token_id
    for token in ("<s>", "</s>", "<unk>"):
        idx = tokenizer.get_vocab().get(token)
        if idx is not None and idx != blank:
            ids[ids == idx] = blank
    return " ".join(tokenizer.decode(ids.tolist()).split())


@contextlib.contextmanager
def _quiet_stderr():
    """Silence KenLM's C++ loading banner (it writes straight to file descriptor 2)."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


class BeamSearchDecoder:
    """flashlight beam search over one model's vocabulary, with an optional LM folder and hotwords.

    >>> dec = BeamSearchDecoder(tokenizer.get_vocab(), lm_dir="lm/", terms=["grafana"])  # doctest: +SKIP
    >>> dec.decode(log_probs)                                                           # doctest: +SKIP
    'open grafana dashboards'
    """

    def __init__(
        self,
        vocab: dict[str, int],
        lm_dir: str | os.PathLike | None = None,
        terms: Sequence[str] | None = None,
        beam_size: int = DEFAULT_BEAM_SIZE,
        lm_weight: float | None = None,
        word_score: float | None = None,
        hotword_boost: float | None = None,
        blank_token: str = "<pad>",
        word_delimiter: str = "|",
    ):
        with needs_extra("lm", BEAM_SEARCH, "flashlight-text"):
            # flashlight first: without it torchaudio raises a RuntimeError, not an ImportError
            import flashlight.lib.text.decoder  # noqa: F401
            from torchaudio.models.decoder import ctc_decoder

        self.tokens = vocab_tokens(vocab)
        self.blank_token, self.word_delimiter = blank_token, word_delimiter
        for token in (blank_token, word_delimiter):
            if token not in vocab:
                raise ConfigError(f"the CTC vocabulary has no {token!r} token; beam search needs a blank and a word delimiter")
        self.beam_size = int(beam_size)
        self.lm_dir = Path(lm_dir) if lm_dir is not None else None
        self.hotwords: list[str] = []
        self.lexicon_words = 0
        self._tmp = None
        if self.lm_dir is None:
            if terms:
                raise ConfigError(
                    "hotword boosting (--bias-terms) for a CTC model needs a word LM (--lm DIR); "
                    "build one with `asrtune lm build --text domain.txt --terms terms.txt --out DIR`"
                )
            self.lm_weight, self.word_score, self.hotword_boost = 0.0, 0.0, 0.0
            self.decoder = ctc_decoder(
                lexicon=None, tokens=self.tokens, lm=None, beam_size=self.beam_size,
                blank_token=blank_token, sil_token=word_delimiter,
            )
            return
        self.decoder = self._lexicon_decoder(vocab, terms, lm_weight, word_score, hotword_boost)

    def _lexicon_decoder(self, vocab, terms, lm_weight, word_score, hotword_boost):
        with needs_extra("lm", BEAM_SEARCH, "flashlight-text"):
            try:
                from flashlight.lib.text.decoder.kenlm import KenLM
            except ImportError:  # flashlight-text < 0.0.7 kept it here
                from flashlight.lib.text.decoder import KenLM
            from flashlight.lib.text.dictionary import create_word_dict, load_words
            from torchaudio.models.decoder import ctc_decoder

            from asrtune.lm.hotwords import HotwordLM  # a torchaudio CTCDecoderLM: flashlight too

        lm_dir, info = load_lm_info(self.lm_dir)
        defaults = info.get("decoder", {})
        self.lm_weight = float(lm_weight if lm_weight is not None else defaults.get("lm_weight", 1.0))
        self.word_score = float(word_score if word_score is not None else defaults.get("word_score", 0.0))
        self.hotword_boost = float(hotword_boost if hotword_boost is not None else info.get("hotword_boost", 2.0))
        lm_case = info.get("case", "lower")
        hotwords = list(info.get("hotwords", []))
        for term in terms or []:
            for word in clean_line(term, lm_case, info.get("char_map") or {}, None):
                if word not in hotwords:
                    hotwords.append(word)
        self.hotwords = hotwords

        # Respell every LM word (and hotword) in *this* model's tokens and case, so an LM built
        # without --tokens-from, or for a model of the other case, still fits.
        model_case = vocab_case(vocab)
        words = list(dict.fromkeys(read_lexicon_words(lm_dir / info["lexicon"]) + hotwords))
        self._tmp = tempfile.TemporaryDirectory(prefix="asrtune-lexicon-")
        lexicon_path = Path(self._tmp.name) / "lexicon.txt"
        spelled = 0
        with open(lexicon_path, "w", encoding="utf-8") as f:
            for word in words:
                spelling = spell(word, vocab, model_case)
                if spelling is not None:
                    f.write(f"{word}\t{' '.join(spelling)}\n")
                    spelled += 1
        if spelled == 0:
            raise ConfigError(f"--lm {self.lm_dir}: none of its words can be spelled with this model's characters")
        self.lexicon_words = spelled
        word_dict = create_word_dict(load_words(str(lexicon_path)))
        with _quiet_stderr():
            kenlm = KenLM(str(lm_dir / info["arpa"]), word_dict)
        lm = kenlm
        if hotwords and self.hotword_boost:
            ids = {word_dict.get_index(w) for w in hotwords if word_dict.contains(w)}
            lm = HotwordLM(kenlm, ids, self.hotword_boost)
        self._lm = lm  # keep referenced for the C++ decoder's lifetime
        return ctc_decoder(
            lexicon=str(lexicon_path), tokens=self.tokens, lm=lm, beam_size=self.beam_size,
            lm_weight=self.lm_weight, word_score=self.word_score,
            blank_token=self.blank_token, sil_token=self.word_delimiter, unk_word="<unk>",
        )

    def decode(self, log_probs: np.ndarray) -> str:
        """The best hypothesis for one clip's ``[frames, vocab]`` log-probabilities."""
        emissions = torch.from_numpy(np.ascontiguousarray(log_probs, dtype=np.float32))[None]
        if emissions.shape[1] == 0:
            return ""
        hypotheses = self.decoder(emissions)[0]
        if not hypotheses:
            return ""
        best = hypotheses[0]
        if self.lm_dir is not None:
            return " ".join(best.words)
        tokens = self.decoder.idxs_to_tokens(best.tokens)
        text = "".join(" " if t == self.word_delimiter else t for t in tokens if t != self.blank_token)
        return " ".join(text.split())

    def describe(self) -> dict:
        return {
            "decoder": "beam+lm" if self.lm_dir else "beam",
            "beam_size": self.beam_size,
            "lm": str(self.lm_dir) if self.lm_dir else None,
            "lm_weight": self.lm_weight,
            "word_score": self.word_score,
            "lexicon_words": self.lexicon_words,
            "hotwords": len(self.hotwords),
            "hotword_boost": self.hotword_boost if self.hotwords else None,
        }


class CTCRecognizer(Recognizer):
    """A wav2vec2-family CTC model behind the :class:`Recognizer` interface.

    ``beam_size=1`` and no ``lm`` decode greedily. With ``lm`` (a folder from
    ``asrtune lm build``) decoding is lexicon + LM beam search; ``beam_size=1`` then means the
    LM folder's default beam (50). ``terms`` are boosted hotwords (need ``lm``).

    >>> rec = CTCRecognizer(resolve_model("facebook/wav2vec2-base-960h"), lm="lm/")  # doctest: +SKIP
    >>> rec.transcribe([load_audio("clip.flac")])                                    # doctest: +SKIP
    ['open grafana dashboards']
    """

    engine = "ctc"
    family = "ctc"

    def __init__(
        self,
        resolved,
        device: str = "cpu",
        batch_size: int = 16,
        lm: str | os.PathLike | None = None,
        terms: Sequence[str] | None = None,
        beam_size: int = 1,
        lm_weight: float | None = None,
        word_score: float | None = None,
        hotword_boost: float | None = None,
        model=None,
        processor=None,
        word_timestamps: bool = False,
        no_speech_threshold: float | None = None,
        log_prob_threshold: float | None = None,
    ):
        # no_speech_threshold and log_prob_threshold are Whisper's (CTC has no no-speech token):
        # accepted and ignored, so one set of RecognizerOptions builds any recogniser
        self.word_timestamps = bool(word_timestamps)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        if model is None or processor is None:
            model, processor = load_ctc(resolved, device=self.device)
        self.model, self.processor = model.to(self.device).eval(), processor
        self.name = getattr(resolved, "name", str(resolved))
        self.source = getattr(resolved, "source", "memory")
        tokenizer = processor.tokenizer
        self.decoder: BeamSearchDecoder | None = None
        if lm is not None or beam_size > 1 or terms:
            self.decoder = BeamSearchDecoder(
                dict(tokenizer.get_vocab()),
                lm_dir=lm,
                terms=list(terms) if terms else None,
                beam_size=beam_size if beam_size > 1 else DEFAULT_BEAM_SIZE,
                lm_weight=lm_weight,
                word_score=word_score,
                hotword_boost=hotword_boost,
                blank_token=tokenizer.pad_token,
                word_delimiter=getattr(tokenizer, "word_delimiter_token", "|"),
            )

    def log_probs(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The acoustic model's per-frame log-probabilities (what both decoders consume)."""
        return ctc_log_probs(self.model, self.processor, check_clips(audios), self.batch_size, self.device)

    def decode_log_probs(self, log_probs: Sequence[np.ndarray]) -> list[str]:
        """Transcripts from :meth:`log_probs` output (greedy, or the beam-search decoder)."""
        if self.decoder is None:
            return [greedy_decode(lp, self.processor.tokenizer) for lp in log_probs]
        return [self.decoder.decode(lp) for lp in log_probs]

    def decode(self, audios: Sequence[np.ndarray], word_timestamps: bool = False) -> list[Hypothesis]:
        if len(audios) == 0:
            return []
        log_probs = self.log_probs(audios)
        texts = self.decode_log_probs(log_probs)
        if not word_timestamps:
            return [Hypothesis(text) for text in texts]

        tokenizer = self.processor.tokenizer
        vocab, step = dict(tokenizer.get_vocab()), frame_seconds(self.model.config)
        delimiter = getattr(tokenizer, "word_delimiter_token", "|")
        return [
            Hypothesis(text, align_words(lp, text, vocab, tokenizer.pad_token_id, step, delimiter))
            for lp, text in zip(log_probs, texts)
        ]

    def describe(self) -> dict:
        info = super().describe()
        info.update({"device": self.device, "decoder": "greedy"})
        if self.decoder is not None:
            info.update(self.decoder.describe())
        return info
