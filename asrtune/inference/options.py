"""``RecognizerOptions``: how to decode, declared once for eval, transcribe, serve, training's
dev evaluation and the Python API.

The CLI flags of ``asrtune eval`` and ``asrtune transcribe`` are generated from these fields
(:func:`asrtune.options.add_options`), so both commands take the same decoding flags, and
:func:`asrtune.inference.load_recognizer` takes the dataclass (or its field names as keywords).

>>> opts = RecognizerOptions(engine="ct2", beam_size=5)
>>> opts.validate().engine, opts.compute_type
('ct2', 'int8')
>>> RecognizerOptions(beam_size=0).validate()
Traceback (most recent call last):
asrtune.errors.ConfigError: --beam-size must be between 1 and 500, got 0
>>> RecognizerOptions(beam_size=64).validate().check_family("whisper", 51864)
Traceback (most recent call last):
asrtune.errors.ConfigError: --beam-size 64: Whisper decodes with at most 32 beams (5 is the usual width)
>>> RecognizerOptions.from_dict({"engine": "ct2", "beam_size": 2}) == RecognizerOptions(engine="ct2", beam_size=2)
True
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from asrtune.errors import ConfigError
from asrtune.inference.whisper_common import (
    COMPRESSION_RATIO_THRESHOLD, FEATURE_STYLES, LOG_PROB_THRESHOLD, NO_SPEECH_THRESHOLD, check_language_name,
    check_thresholds, prompt_token_limit,
)
from asrtune.models.whisper_spec import is_multilingual
from asrtune.options import check_choices, option, update_options

ENGINES = ("hf", "ct2", "whispercpp", "onnx")
EXPORT_ENGINES = ("whispercpp", "onnx")  # run export folders (asrtune export --to ggml | onnx); greedy, CPU
DEFAULT_TERM_BOOST = 2.0  # nats added to the logits of tokens that continue a bias term (see biasing.py)
MAX_TERM_BOOST_NATS = 10.0  # x22,000 odds: past this a term is forced whatever the audio says
# Whisper keeps beam_size x batch_size decoder rows in memory for up to 448 steps; past ~5 beams
# its word error rate stops improving (openai-whisper and faster-whisper use 5).
MAX_WHISPER_BEAM_SIZE = 32
MAX_BEAM_SIZE = 500  # CTC beam search with an LM (flashlight): 50 by default, a few hundred at most in practice
GROUP = "decoding"
PROMPT_HELP = (f"Whisper initial prompt: domain words, spelling, style. Only its last {prompt_token_limit()} tokens "
               "are used (half of Whisper's 448-token context, as in openai-whisper and faster-whisper); "
               "special-token text such as <|endoftext|> is read as plain text")


@dataclass
class RecognizerOptions:
    """Decoding options shared by every command that runs a model."""

    engine: str = option("hf", choices=ENGINES, group=GROUP,
                         help="Whisper engine: hf = transformers (supports --bias-terms), ct2 = CTranslate2 copy (converted once, cached), "
                              "whispercpp = whisper.cpp (a ggml export, or a model converted once to f16), onnx = ONNX Runtime "
                              "(an onnx export, or a model converted once to fp32); whispercpp and onnx decode greedily on the CPU")
    device: str = option("cpu", group=GROUP, help="cpu, cuda or cuda:N")
    compute_type: str = option("int8", group=GROUP, help="CTranslate2 compute type for --engine ct2 (int8, int8_float32, float32, float16, ...)")
    batch_size: int = option(16, group=GROUP, help="clips decoded together")
    beam_size: int = option(1, group=GROUP, help=f"beam width (1 = greedy; Whisper: at most {MAX_WHISPER_BEAM_SIZE}; "
                                                 f"CTC with --lm: 1 means the LM's default beam, at most {MAX_BEAM_SIZE})")
    language: str | None = option(None, group=GROUP, help="language of a multilingual Whisper, as a code or name (none = English); "
                                                          "an English-only (.en) model takes only English")
    prompt: str | None = option(None, group=GROUP, help=PROMPT_HELP)
    # A file on the command line; the Python API also takes the list of terms itself.
    bias_terms: str | list[str] | None = option(
        None, metavar="FILE", group=GROUP,
        help="file of terms, one per line, that decoding is biased towards (Whisper hf engine: "
             "logit bonus; CTC: beam-search hotwords, needs --lm)")
    term_boost: float = option(DEFAULT_TERM_BOOST, group=GROUP,
                               help=f"logit bonus in nats (0 to {MAX_TERM_BOOST_NATS:g}) for tokens continuing a --bias-terms term")
    features: str = option("hf", choices=FEATURE_STYLES, group=GROUP,
                           help="log-mel style: hf (audio padded to 30 s, as training sees it) or faster-whisper (token-exact with faster-whisper)")
    lm: str | None = option(None, metavar="DIR", group=GROUP, help="n-gram LM folder (asrtune lm build) for CTC beam search")
    threads: int | None = option(None, group=GROUP, help="CPU threads of the decoder (none = all cores)")
    word_timestamps: bool = option(False, group=GROUP,
                                   help="time every word (Whisper: cross-attention DTW; CTC: forced alignment); adds words to json/jsonl and word-timed subtitles")
    no_speech_threshold: float = option(NO_SPEECH_THRESHOLD, group=GROUP,
                                        help="Whisper: a segment whose no-speech probability is above this AND whose mean token "
                                             "log-probability is below --log-prob-threshold is silence (empty text); 1 turns it off")
    log_prob_threshold: float = option(LOG_PROB_THRESHOLD, group=GROUP,
                                       help="Whisper: mean token log-probability (nats, <= 0) under which a likely no-speech segment is dropped")
    flash_attention: bool = option(False, group=GROUP,
                                   help="whisper.cpp's flash attention for --engine whispercpp: faster, but it computes attention "
                                        "in float16 and changes more clips' words (its cost is in docs/export.md's parity table)")
    compression_ratio_threshold: float = option(
        COMPRESSION_RATIO_THRESHOLD, group=GROUP,
        help="Whisper: a transcript that compresses more than this (gzip ratio: a repetition loop) is decoded again: "
             "with a --prompt first greedily without it, then by sampling at temperatures 0.2 ... 1.0, best of 5, "
             "seeded; 0 turns it off")

    def validate(self) -> "RecognizerOptions":
        """Check every option; raise ConfigError naming the first bad one. Returns self.

        Needs no model: the CLI, the server (per request too), eval and the API call it before
        one loads. :meth:`check_family` adds the checks that depend on the model's family."""
        check_choices(self)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ConfigError(f"--beam-size must be between 1 and {MAX_BEAM_SIZE}, got {self.beam_size}")
        if not 0 <= self.term_boost <= MAX_TERM_BOOST_NATS:  # NaN fails too
            raise ConfigError(f"--term-boost must be between 0 and {MAX_TERM_BOOST_NATS:g} nats, got {self.term_boost}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.language is not None:
            check_language_name(self.language)
        check_thresholds(self.no_speech_threshold, self.log_prob_threshold, self.compression_ratio_threshold)
        if self.engine == "ct2" and self.bias_terms:
            raise ConfigError("--bias-terms needs --engine hf: CTranslate2 has no logits-processor hook")
        if self.flash_attention and self.engine != "whispercpp":
            raise ConfigError(f"--flash-attention is whisper.cpp's; it needs --engine whispercpp, not {self.engine}")
        if self.engine in EXPORT_ENGINES:
            self._check_export_engine()
        return self

    def check_family(self, family: str, vocab_size: int | None = None) -> "RecognizerOptions":
        """The checks that need the model's family (``whisper`` or ``ctc``) and, for Whisper, its
        vocabulary size (English-only or multilingual): known once it is resolved, before it loads."""
        if family == "whisper":
            if vocab_size is not None and self.language is not None and not is_multilingual(vocab_size) \
                    and check_language_name(self.language) != "en":
                raise ConfigError(f"--language {self.language}: this is an English-only Whisper model; use a multilingual one")
            if self.beam_size > MAX_WHISPER_BEAM_SIZE:
                raise ConfigError(f"--beam-size {self.beam_size}: Whisper decodes with at most {MAX_WHISPER_BEAM_SIZE} beams "
                                  "(5 is the usual width)")
            if self.lm is not None:
                raise ConfigError("--lm is for CTC models; Whisper decodes with its own language model")
            return self
        if self.prompt is not None:
            raise ConfigError("--prompt is a Whisper option; CTC models take no prompt")
        if self.language is not None:
            raise ConfigError("--language is a Whisper option; a CTC model transcribes the language it was trained on")
        return self

    def _check_export_engine(self) -> None:
        """What the whispercpp and onnx engines cannot do, each named with the engine that can."""
        unsupported = [
            (self.bias_terms, "--bias-terms needs --engine hf"),
            (self.beam_size > 1, "--beam-size > 1 needs --engine hf or ct2 (this engine decodes greedily)"),
            (self.word_timestamps, "--word-timestamps needs --engine hf or ct2"),
            (self.device != "cpu", "--device: this engine runs on the CPU; use --engine ct2 or hf on a GPU"),
            (self.engine == "whispercpp" and self.features != "hf",
             "--features: whisper.cpp computes its own log-mel features"),
        ]
        for bad, message in unsupported:
            if bad:
                raise ConfigError(f"--engine {self.engine}: {message}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "options") -> "RecognizerOptions":
        """Build from a mapping of field names (``-`` or ``_``), checking names, types and choices."""
        return update_options(cls(), values, source)

    def replace(self, **changes: Any) -> "RecognizerOptions":
        """A copy with ``changes``; unknown names raise ConfigError naming them."""
        return update_options(dataclasses.replace(self), changes, "options")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (a path given in code becomes a string): for reports and workers."""
        return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in dataclasses.asdict(self).items()}
