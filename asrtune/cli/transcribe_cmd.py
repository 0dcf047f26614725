"""`asrtune transcribe`: batch transcription of files, folders and manifests (long-form, resumable)."""

from __future__ import annotations

import sys

from asrtune.cli import add_subparser

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
  asrtune transcribe data/test.jsonl --model runs/acc/best --out out --terms terms.txt --term-boost 2
  find /archive -name '*.flac' | asrtune transcribe - --model runs/acc/best --out out --workers 4 --resume
  asrtune transcribe s3-mounted/ --model runs/acc/best --out out --ray --workers 32   # on a Ray cluster
"""


def register(subparsers, summary: str) -> None:
    from asrtune.options import add_options
    from asrtune.transcription.batch import DEFAULT_FORMATS
    from asrtune.transcription.subtitles import SubtitleOptions
    from asrtune.transcription.vad import MAX_SEGMENT_S, VAD_METHODS
    from asrtune.transcription.writers import ALL_FORMATS

    p = add_subparser(subparsers, "transcribe", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, .jsonl manifests, or - for paths on stdin")
    p.add_argument("--model", required=True, help="hub id, local model folder, or a training run folder (uses its best/)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default=",".join(DEFAULT_FORMATS), help=f"comma-separated, from {', '.join(ALL_FORMATS)}")
    p.add_argument("--engine", default="hf", choices=["hf", "ct2"], help="hf: transformers; ct2: CTranslate2 int8 copy (converted once, cached)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compute-type", default="int8", help="CTranslate2 compute type for --engine ct2")
    p.add_argument("--batch-size", type=int, default=16, help="segments decoded together")
    p.add_argument("--beam-size", type=int, default=1, help="1 = greedy decoding")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine (or Ray actors with --ray)")
    p.add_argument("--language", default=None, help="language code for multilingual Whisper (default: English)")
    p.add_argument("--prompt", default=None, help="Whisper initial prompt (domain words, spelling, style)")
    p.add_argument("--terms", default=None, help="file of domain terms, one per line: Whisper (--engine hf) boosts their "
                   "spellings token by token while decoding; CTC models boost them as beam-search hotwords (needs --lm)")
    p.add_argument("--term-boost", type=float, default=None, help="logit bonus (nats) for tokens continuing a term; default 2.0 (asrtune.inference.biasing)")
    p.add_argument("--lm", default=None, help="n-gram LM (asrtune lm) for CTC beam search")
    p.add_argument("--max-segment-s", type=float, default=MAX_SEGMENT_S, help="longest segment decoded at once (shorter = finer subtitle timing)")
    p.add_argument("--vad", default="silero", choices=list(VAD_METHODS), help="voice-activity detector (runs on every file)")
    p.add_argument("--resume", action="store_true", help="skip files already in OUT/transcripts.jsonl")
    p.add_argument("--ray", action="store_true", help="run as a Ray Data job (cluster from RAY_ADDRESS or --ray-address)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--word-timestamps", action="store_true", help="time every word: words in json/jsonl, subtitle cues from word times")
    add_options(p, SubtitleOptions)
    p.set_defaults(func=run)


def run(args) -> int:
    from asrtune.options import given_options, update_options
    from asrtune.transcription import transcribe
    from asrtune.transcription.subtitles import SubtitleOptions

    summary = transcribe(
        args.inputs,
        args.model,
        args.out,
        formats=args.format,
        engine=args.engine,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        language=args.language,
        prompt=args.prompt,
        terms=args.terms,
        term_boost=args.term_boost,
        beam_size=args.beam_size,
        lm=args.lm,
        compute_type=args.compute_type,
        resume=args.resume,
        use_ray=args.ray,
        ray_address=args.ray_address,
        max_segment_s=args.max_segment_s,
        vad=args.vad,
        word_timestamps=args.word_timestamps,
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
