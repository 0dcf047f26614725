"""`asrtune synth`: speak domain text in many voices -> 16 kHz FLAC + manifest (text-only adaptation)."""

from __future__ import annotations

import argparse

from asrtune.cli import add_subparser
from asrtune.errors import ConfigError
from asrtune.synth import SynthConfig, list_variants, list_voices, read_sentence_file, synthesize_corpus
from asrtune.synth.corpus import DEFAULT_PITCHES, DEFAULT_RATES, DEFAULT_VOICES

MAX_LINES_SHOWN = 10  # line numbers listed in the skipped-lines note; the count is always complete

DESCRIPTION = """\
Text-only domain adaptation. You have domain text (glossaries, letters, term lists) but little
transcribed audio: synth speaks each sentence (one per line in --text, '#' comments skipped)
with eSpeak NG in several voices, speaking rates and pitches, adds light background noise, and
writes 16 kHz FLAC under OUT/audio/ plus OUT/manifest.jsonl (relative paths; speaker = voice;
extra fields voice, rate, pitch, snr_db). Train on it with `asrtune train` as on real audio.

Transcripts are kept as written; digits and capital acronyms are expanded for speech only
(2.5 -> "two point five", ECG -> "E C G"). Voices are LANGUAGE[+VARIANT]: languages such as
en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-us-nyc, en-029; variants f1-f5, m1-m8 (timbres).
`--list-voices` prints them. eSpeak comes from the espeakng-loader package: no system install.
"""

EXAMPLES = """\
  asrtune synth --text manifests/clinic/train.txt --out synth/clinic_train
  asrtune synth --text glossary.txt --out synth/g --voices en-us en-gb+f3 en-029+m3 --rates 150 180 --variants-per-sentence 2
  asrtune synth --text terms.txt --out synth/clean --noise-snr-db none
  asrtune synth --text notes.txt --out synth/packed --pack-seconds 25     # ~25 s clips, several sentences each
  asrtune synth --list-voices
"""


def _snr_range(value: str) -> tuple[float, float] | None:
    if value.lower() in ("none", "off", "clean"):
        return None
    try:
        low, _, high = value.partition("..")
        low_f = float(low)
        high_f = float(high) if high else low_f
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW..HIGH in dB (e.g. 20..35) or 'none', got {value!r}") from None
    if low_f > high_f:
        raise argparse.ArgumentTypeError(f"low {low_f} is above high {high_f}")
    return (low_f, high_f)


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "synth", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("--text", help="domain text file, one sentence per line")
    p.add_argument("--out", help="output folder (audio/ and manifest.jsonl)")
    p.add_argument("--voices", nargs="+", default=list(DEFAULT_VOICES), metavar="VOICE", help="eSpeak voices, cycled")
    p.add_argument("--rates", nargs="+", type=int, default=list(DEFAULT_RATES), metavar="WPM", help="speaking rates (words/min), drawn at random")
    p.add_argument("--pitches", nargs="+", type=int, default=list(DEFAULT_PITCHES), metavar="P", help="pitches 0..100, drawn at random")
    p.add_argument("--variants-per-sentence", type=int, default=3, metavar="N", help="renderings per sentence, each a different voice")
    p.add_argument("--noise-snr-db", type=_snr_range, default="20..35", metavar="LOW..HIGH", help="background noise SNR range in dB, or 'none'")
    p.add_argument("--pack-seconds", type=float, default=None, metavar="S",
                   help="join sentences of one voice into clips of up to S seconds (<= 30; cheaper frozen-encoder caching)")
    p.add_argument("--pack-max-sentences", type=int, default=8, metavar="N", help="with --pack-seconds: at most N sentences per clip")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed: same voices, rates, pitches, pauses and noise levels)")
    p.add_argument("--list-voices", action="store_true", help="print the available English languages and variants, then exit")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.list_voices:
        print("languages:", " ".join(list_voices("en")))
        print("variants: ", " ".join(list_variants()))
        return 0
    if not args.text or not args.out:
        raise ConfigError("--text and --out are required (or --list-voices)")
    config = SynthConfig(
        voices=args.voices,
        rates=args.rates,
        pitches=args.pitches,
        variants_per_sentence=args.variants_per_sentence,
        noise_snr_db=args.noise_snr_db,
        seed=args.seed,
        pack_seconds=args.pack_seconds,
        pack_max_sentences=args.pack_max_sentences,
    )
    text = read_sentence_file(args.text)
    sentences = text.sentences
    utts = synthesize_corpus(sentences, args.out, config)
    hours = sum(u.duration for u in utts) / 3600
    print(f"wrote {len(utts)} files ({hours * 60:.1f} min of audio, {len(sentences)} sentences x "
          f"{config.variants_per_sentence} renderings) to {args.out}/manifest.jsonl")
    if text.unspeakable_lines:
        shown = ", ".join(map(str, text.unspeakable_lines[:MAX_LINES_SHOWN]))
        more = " ..." if len(text.unspeakable_lines) > MAX_LINES_SHOWN else ""
        print(f"skipped {len(text.unspeakable_lines)} line(s) of {args.text} with no speakable word (line {shown}{more})")
    return 0
