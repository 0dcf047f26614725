"""`asrtune manifest`: import, validate, describe, split, pack and align JSONL manifests (thin over asrtune.data)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asrtune.cli import HelpFormatter, add_subparser
from asrtune.cli.manifest_align import add_align_parser
from asrtune.data.importers import FORMATS, import_manifest
from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.data.pack import MAX_WINDOW_S, pack_utterances, plan_windows
from asrtune.data.split import split_manifest
from asrtune.data.stats import manifest_stats, plot_duration_histogram, pyplot
from asrtune.data.validate import validate_manifests
from asrtune.errors import AsrtuneError, ConfigError
from asrtune.fileio import check_file_output

DESCRIPTION = """\
Work with NeMo-style JSONL manifests: one JSON object per line with audio_filepath (relative
paths resolve against the manifest's folder), text, duration in seconds, optional offset, and
any extra fields (speaker, age, ...), which are kept.
"""

EXAMPLES = """\
  asrtune manifest import librispeech LibriSpeech/test-clean --out data/test-clean.jsonl
  asrtune manifest import csv corpus/meta.tsv --out data/all.jsonl --audio-column path --text-column sentence
  asrtune manifest validate data/all.jsonl --fix data/clean.jsonl
  asrtune manifest stats data/clean.jsonl --plot durations.png
  asrtune manifest split data/clean.jsonl --out data/ --by-speaker --seed 0
  asrtune manifest align episode.mp3 episode.txt --model openai/whisper-tiny.en --out data/episode.jsonl
  asrtune manifest pack data/train.jsonl --out data/train_packed.jsonl
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "manifest", summary, DESCRIPTION, EXAMPLES)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
    sub = p.add_subparsers(dest="manifest_command", metavar="ACTION")

    formats = "\n".join(f"  {name:<12} {desc}" for name, (_, desc) in FORMATS.items())
    imp = sub.add_parser(
        "import",
        help="convert a corpus (csv, kaldi, librispeech, audiofolder, folder, hf, jsonl, subtitles) to a JSONL manifest",
        description="Convert a corpus to a JSONL manifest. Durations are measured from the audio files.\n\nformats:\n" + formats,
        epilog="examples:\n"
        "  asrtune manifest import kaldi kaldi/data/train --out data/train.jsonl\n"
        "  asrtune manifest import audiofolder my_audiofolder/ --out data/all.jsonl\n"
        "  asrtune manifest import hf saved_dataset/ --out data/all.jsonl --split train   # audio -> data/all_audio/*.flac\n"
        "  asrtune manifest import subtitles episodes/ --out data/episodes.jsonl --clean markup,speakers   # ep1.mp3 + ep1.srt\n",
        formatter_class=HelpFormatter,
    )
    imp.add_argument("format", choices=list(FORMATS), help="source layout")
    imp.add_argument("src", help="source file or folder")
    imp.add_argument("--out", required=True, help="output JSONL manifest")
    imp.add_argument("--audio-column", help="csv/hf: column with the audio path (default: first of audio_filepath, audio, path, file_name, ...)")
    imp.add_argument("--text-column", help="csv/audiofolder/hf: column with the transcript (default: text, transcription, sentence, ...)")
    imp.add_argument("--speaker-column", help="csv/hf: column kept as the 'speaker' field")
    imp.add_argument("--delimiter", help="csv: field delimiter (default by extension: .tsv -> tab, else comma; 'tab' accepted)")
    imp.add_argument("--split", help="hf: which split of a DatasetDict (or parquet files named after it)")
    imp.add_argument("--audio-dir", help="hf: where decoded FLAC files go (default: OUT_STEM_audio/ beside --out)")
    imp.add_argument("--clean", help="subtitles: cleaning rules, comma-separated from markup (<i>, {\\an8}), speakers (JOHN:, >>, "
                     "'- '), sound-tags ([music], (laughs), ♪); 'all' (the default) or 'none'")
    imp.add_argument("--max-gap", type=float, help="subtitles: seconds of silence between cues that always end a segment (default 2)")
    imp.set_defaults(func=run_import)

    val = sub.add_parser(
        "validate",
        help="check every line (JSON, fields, audio readable and complete, durations, text, duplicates)",
        description="Check every line of one or more manifests and print one line per problem, then a summary.\n"
        "Exit code 0 when everything is fine, 1 when any line has a problem, 2 when a manifest cannot be\n"
        "checked at all (missing, not UTF-8 text, empty). Audio is fully decoded by\n"
        "default (a truncated FLAC keeps a valid header); --quick reads headers only.",
        epilog="examples:\n  asrtune manifest validate data/train.jsonl data/dev.jsonl\n"
        "  asrtune manifest validate data/all.jsonl --fix data/clean.jsonl   # + data/rejected.jsonl\n",
        formatter_class=HelpFormatter,
    )
    val.add_argument("manifests", nargs="+", metavar="MANIFEST")
    val.add_argument("--fix", metavar="OUT", help="write good lines to OUT and bad ones, with reasons, to rejected.jsonl beside it")
    val.add_argument("--duration-tolerance", type=float, default=0.1, help="seconds a stated duration may differ from the file's")
    val.add_argument("--quick", action="store_true", help="read audio headers only (no full decode; misses truncated FLACs)")
    val.add_argument("--jobs", type=int, default=None, help="decode threads (default: min(4, CPUs))")
    val.add_argument("--json", action="store_true", help="print the summary as JSON")
    val.add_argument("--max-print", type=int, default=1000, help="stop printing problems after this many (all are still counted)")
    val.set_defaults(func=run_validate)

    st = sub.add_parser(
        "stats",
        help="hours, utterances, speakers, duration spread, character set",
        description="Describe one or more manifests.",
        epilog="examples:\n  asrtune manifest stats data/train.jsonl --plot train_durations.png\n",
        formatter_class=HelpFormatter,
    )
    st.add_argument("manifests", nargs="+", metavar="MANIFEST")
    st.add_argument("--plot", metavar="PNG", help="save a duration histogram")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    st.set_defaults(func=run_stats)

    sp = sub.add_parser(
        "split",
        help="deterministic train/dev/test split, optionally speaker-disjoint",
        description="Split a manifest into DIR/train.jsonl, DIR/dev.jsonl and DIR/test.jsonl.",
        epilog="examples:\n  asrtune manifest split data/all.jsonl --out data/ --ratios 0.8,0.1,0.1 --by-speaker\n",
        formatter_class=HelpFormatter,
    )
    sp.add_argument("manifest", metavar="MANIFEST")
    sp.add_argument("--out", required=True, metavar="DIR")
    sp.add_argument("--ratios", default="0.8,0.1,0.1", help="train,dev[,test] fractions summing to 1")
    sp.add_argument("--by-speaker", action="store_true", help="keep each speaker in one split (needs a speaker field)")
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=run_split)

    pk = sub.add_parser(
        "pack",
        help="join each speaker's consecutive clips into <= 30 s windows with timed parts (multi-segment timestamp training)",
        description="Join each speaker's consecutive clips (manifest order) into windows of at most --max-duration\n"
        "seconds, one FLAC each, and list every clip as a part under 'segments' (start/end in window time,\n"
        "its own text). Trained beside the clips, the windows teach Whisper's multi-segment timestamp\n"
        "format, which a tune on single clips forgets: see docs/training.md, 'Timestamps, prompts and silence'.\n"
        "Unreadable clips are reported and left out.",
        epilog="examples:\n  asrtune manifest pack data/train.jsonl --out data/train_packed.jsonl\n"
        "  asrtune train --model openai/whisper-tiny.en --train data/train.jsonl data/train_packed.jsonl --out runs/ts\n",
        formatter_class=HelpFormatter,
    )
    pk.add_argument("manifests", nargs="+", metavar="MANIFEST")
    pk.add_argument("--out", required=True, help="output JSONL manifest")
    pk.add_argument("--audio-dir", help="where window FLACs go (default: OUT_STEM_audio/ beside --out)")
    pk.add_argument("--max-duration", type=float, default=MAX_WINDOW_S, metavar="SECONDS",
                    help=f"longest window (Whisper's window is {MAX_WINDOW_S:g} s)")
    pk.add_argument("--gap", type=float, default=0.0, metavar="SECONDS",
                    help="silence inserted between clips (their own leading and trailing silence is kept)")
    pk.set_defaults(func=run_pack)

    add_align_parser(sub)


def run_import(args: argparse.Namespace) -> int:
    options = {
        "audio_column": args.audio_column,
        "text_column": args.text_column,
        "speaker_column": args.speaker_column,
        "delimiter": args.delimiter,
        "split": args.split,
        "audio_dir": args.audio_dir,
        "clean": args.clean,
        "max_gap": args.max_gap,
    }
    count = import_manifest(args.format, args.src, args.out, progress=True, **options)
    print(f"wrote {count} utterances to {args.out}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    if args.max_print < 0:
        raise ConfigError(f"--max-print must be >= 0, got {args.max_print}")

    printed = 0

    def show(problem) -> None:
        nonlocal printed
        printed += 1
        if printed <= args.max_print:
            print(problem.format())
        elif printed == args.max_print + 1:
            print(f"... more problems not printed (--max-print {args.max_print}); see the summary")

    report = validate_manifests(
        args.manifests,
        fix_out=args.fix,
        duration_tolerance=args.duration_tolerance,
        quick=args.quick,
        jobs=args.jobs,
        on_problem=show,
        progress=True,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    if args.fix:
        print(f"wrote {report.utterances} good lines to {args.fix} and {report.bad_lines} rejected to rejected.jsonl beside it", file=sys.stderr)
    return 0 if report.ok else 1


def run_stats(args: argparse.Namespace) -> int:
    if args.plot:
        check_file_output(args.plot, "--plot")
        pyplot()  # without matplotlib: one line naming the extra, before the statistics
    stats = manifest_stats(args.manifests)
    print(json.dumps(stats.to_dict(), indent=2, ensure_ascii=False) if args.json else stats.format())
    if args.plot:
        plot_duration_histogram(stats, args.plot)
        print(f"wrote duration histogram to {args.plot}", file=sys.stderr)
    return 0


def run_pack(args: argparse.Namespace) -> int:
    plan_windows([], args.max_duration, args.gap)  # option errors before any audio is read
    utts = [u for manifest in args.manifests for u in load_manifest(manifest)]
    out = Path(args.out)
    audio_dir = Path(args.audio_dir) if args.audio_dir else out.with_name(f"{out.stem}_audio")
    lines, summary = pack_utterances(utts, audio_dir, args.max_duration, args.gap, progress=sys.stderr.isatty())
    if not lines:
        first = f" (first: {summary.skipped[0][1]})" if summary.skipped else ""
        raise AsrtuneError(f"{', '.join(args.manifests)}: no clip could be read, nothing packed{first}")
    for path, reason in summary.skipped[:10]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    write_manifest(out, lines)
    print(f"{summary.line()} -> {out}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    counts = split_manifest(args.manifest, args.out, args.ratios, args.by_speaker, args.seed)
    print("  ".join(f"{name}: {n}" for name, n in counts.items()) + f"  -> {args.out}")
    return 0
