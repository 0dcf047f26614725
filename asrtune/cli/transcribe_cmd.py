"""`asrtune transcribe`: batch transcription of files, folders and manifests (long-form, resumable)."""

from __future__ import annotations

import argparse
import sys

from asrtune.cli import add_subparser
from asrtune.inference.options import RecognizerOptions
from asrtune.options import add_options, given_options, update_options
from asrtune.transcription import transcribe
from asrtune.transcription.batch import DEFAULT_FORMATS
from asrtune.transcription.subtitles import SubtitleOptions
from asrtune.transcription.vad import MAX_SEGMENT_S, VAD_METHODS
from asrtune.transcription.writers import ALL_FORMATS

DESCRIPTION = """\
Transcribe audio files, folders (searched recursively), JSONL manifests (each utterance's audio,
offset and duration) or a list of paths on stdin (`-`). A voice-activity detector (Silero VAD)
finds the speech in every file (no speech: an empty transcript) and cuts long audio at pauses into
segments of up to 30 s; segments from many files are decoded together in batches, and each keeps
its start/end time. Whisper drops a segment it judges silent (no-speech probability > 0.6 and mean
token log-probability < -1, as faster-whisper).
--word-timestamps adds every word's time to the json/jsonl output and builds subtitle cues
from word times (--max-line-width, --max-line-count, --max-cue-seconds).

Outputs go to --out: one file per input and format (txt, srt, vtt, json; names mirror the input
folders), plus transcripts.jsonl (one line per file: file, duration, text, segments), errors.jsonl
(files that failed, with the reason) and summary.json (audio hours, real-time factor).
Everything is written atomically; --resume skips files already in transcripts.jsonl, so a killed
run picks up where it stopped. Exit code 0 when every file was transcribed, 1 when any failed.
"""

EXAMPLES = """\
  asrtune transcribe recordings/ --model runs/acc/best --out transcripts --format txt,srt
  asrtune transcribe talk.mp3 --model openai/whisper-tiny.en --engine ct2 --out out --format srt,vtt
  asrtune transcribe data/test.jsonl --model runs/acc/best --out out --bias-terms terms.txt --term-boost 2
  find /archive -name '*.flac' | asrtune transcribe - --model runs/acc/best --out out --workers 4 --resume
  asrtune transcribe s3-mounted/ --model runs/acc/best --out out --ray --workers 32   # on a Ray cluster
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "transcribe", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, .jsonl manifests, or - for paths on stdin")
    p.add_argument("--model", required=True, default=argparse.SUPPRESS, help="hub id, local model folder, or a training run folder (uses its best/)")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="output folder")
    p.add_argument("--format", default=",".join(DEFAULT_FORMATS), help=f"comma-separated, from {', '.join(ALL_FORMATS)}")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine (or Ray actors with --ray)")
    p.add_argument("--max-segment-s", type=float, default=MAX_SEGMENT_S, help="longest segment decoded at once (shorter = finer subtitle timing)")
    p.add_argument("--vad", default="silero", choices=list(VAD_METHODS), help="voice-activity detector (runs on every file)")
    p.add_argument("--resume", action="store_true", help="skip files already in OUT/transcripts.jsonl")
    p.add_argument("--ray", action="store_true", help="run as a Ray Data job (cluster from RAY_ADDRESS or --ray-address)")
    p.add_argument("--ray-address", default=argparse.SUPPRESS, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_options(p, RecognizerOptions)
    add_options(p, SubtitleOptions)
    p.set_defaults(func=run)


def run(args) -> int:
    summary = transcribe(
        args.inputs,
        args.model,
        args.out,
        RecognizerOptions.from_dict(given_options(RecognizerOptions, args), source="command line"),
        formats=args.format,
        workers=args.workers,
        resume=args.resume,
        use_ray=args.ray,
        ray_address=getattr(args, "ray_address", None),
        max_segment_s=args.max_segment_s,
        vad=args.vad,
        subtitles=update_options(SubtitleOptions(), given_options(SubtitleOptions, args), "command line"),
        progress=not args.no_progress,
        stdin=sys.stdin,
    )
    rtf = f", real-time factor {summary.rtf:.3f}" if summary.rtf else ""
    print(
        f"transcribed {summary.transcribed} file(s), skipped {summary.skipped} already done, "
        f"failed {summary.failed} ({summary.audio_s / 3600:.2f} h of audio{rtf}) -> {summary.out_dir}",
        file=sys.stderr,
    )
    for err in summary.errors[:5]:
        print(f"  failed: {err['error']}", file=sys.stderr)
    if summary.failed > 5:
        print(f"  ... see {summary.out_dir}/errors.jsonl", file=sys.stderr)
    return 0 if summary.ok else 1
