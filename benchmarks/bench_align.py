#!/usr/bin/env python
"""Benchmark ``asrtune manifest align``: real-time factor and peak memory against file length.

Real-time factor: the shared 5-minute longform recording (38 LibriSpeech utterances of speaker
1089) aligned to its one-line reference with Whisper tiny.en on ``--threads`` CPU threads
(default 2): decoding with word timestamps (``transcribe_audio`` in 10-minute windows), text
alignment and segmentation, timed separately. Goal: RTF <= 0.1.

Peak memory: the same recording concatenated to about 15, 30 and 60 minutes (3, 6 and 12 whole
copies, FLAC written block by block; the transcript repeated to match), each aligned in its own child process whose peak
resident set size (``ru_maxrss``) is reported. Decoding in windows should keep it flat in the
file's length.

Prints a table and writes ``--out`` (default ``benchmarks/results/align.json``)::

    python -m benchmarks.bench_align                            # tiny.en, ct2 engine, 2 threads, 5 + 15/30/60 min
    python -m benchmarks.bench_align --engine hf --lengths 15   # quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import child_env, data_root, describe_hardware, parser, peak_rss_mb, write_result

BLOCK_FRAMES = 16000 * 60  # frames copied at a time when building long files (1 min at 16 kHz)
RTF_GOAL = 0.1


def main() -> int:
    p = parser(__doc__, out="align.json")
    p.add_argument("--model", default="openai/whisper-tiny.en")
    p.add_argument("--engine", default="ct2", choices=["hf", "ct2"])
    p.add_argument("--threads", type=int, default=2, help="CPU threads for decoding")
    p.add_argument("--lengths", default="15,30,60", help="minutes of the concatenated files for the memory check ('' = none)")
    p.add_argument("--child", nargs=2, metavar=("AUDIO", "TRANSCRIPT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(align_here(args)))
        return 0

    source, reference = longform_source(data_root(args) / "longform")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_align_") as tmp:
        transcript = Path(tmp) / "5min.txt"
        transcript.write_text(reference, encoding="utf-8")
        rows.append({"file": "longform 5 min", **child(args, source, transcript)})
        for minutes in [int(m) for m in args.lengths.split(",") if m.strip()]:
            audio, text = build_long(source, reference, minutes, Path(tmp))
            rows.append({"file": f"concatenated {minutes} min", **child(args, audio, text)})
            audio.unlink()
    print_table(rows)
    write_result(args.out, {"model": args.model, "engine": args.engine, "threads": args.threads, "rtf_goal": RTF_GOAL,
                            "hardware": describe_hardware(threads=args.threads), "runs": rows})
    print(f"wrote {args.out}")
    return 0


def longform_source(longform: Path) -> tuple[Path, str]:
    line = json.loads((longform / "manifest.jsonl").read_text(encoding="utf-8").splitlines()[0])
    return longform / line["audio_filepath"], line["text"]


def build_long(source: Path, reference: str, minutes: int, folder: Path) -> tuple[Path, Path]:
    """Whole copies of ``source`` (as many as come nearest to ``minutes``) and the repeated transcript.

    Whole copies keep transcript and audio in step: a cut last copy would leave transcript words
    with no audio, which the aligner rightly rejects but which would skew the match share.
    """
    import soundfile as sf

    info = sf.info(source)
    copies = max(1, round(minutes * 60 / info.duration))
    audio, text = folder / f"{minutes}min.flac", folder / f"{minutes}min.txt"
    with sf.SoundFile(audio, "w", info.samplerate, 1, format="FLAC") as out:
        for _ in range(copies):
            with sf.SoundFile(source) as src:
                for block in src.blocks(blocksize=BLOCK_FRAMES, dtype="float32"):
                    out.write(block)
    text.write_text(" ".join([reference] * copies), encoding="utf-8")
    return audio, text


def child(args, audio: Path, transcript: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_align", "--child", str(audio), str(transcript), "--model", args.model,
           "--engine", args.engine, "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(OMP_NUM_THREADS=str(args.threads)), check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed on {audio}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def align_here(args) -> dict:
    """Align one recording in this process (the child); report times and peak memory."""
    import torch

    torch.set_num_threads(args.threads)
    from asrtune.alignment.limits import whisper_token_counter
    from asrtune.alignment.long_audio import hypothesis_words
    from asrtune.alignment.segmenter import SegmentRules, segment_alignment
    from asrtune.alignment.text_align import align_text
    from asrtune.data.audio import audio_info
    from asrtune.inference import load_recognizer

    audio, transcript = args.child
    start = time.perf_counter()
    recognizer = load_recognizer(args.model, engine=args.engine, threads=args.threads)
    count = whisper_token_counter()
    loaded = time.perf_counter()
    words = hypothesis_words(recognizer, audio)
    decoded = time.perf_counter()
    reference = Path(transcript).read_text(encoding="utf-8")
    duration = audio_info(audio)[0]
    alignment = align_text(reference, words)
    segments, rejected = segment_alignment(alignment, audio, SegmentRules(), count, duration)
    aligned = time.perf_counter()
    kept = sum(s.end - s.start for s in segments)
    return {
        "audio_s": round(duration, 1),
        "load_s": round(loaded - start, 2),
        "decode_s": round(decoded - loaded, 2),
        "align_s": round(aligned - decoded, 3),
        "rtf": round((aligned - loaded) / duration, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "words_heard": len(words),
        "match_share": round(alignment.match_share, 4),
        "segments": len(segments),
        "rejected": len(rejected),
        "kept_share": round(kept / duration, 4),
    }


def print_table(rows: list[dict]) -> None:
    header = ["file", "audio min", "decode s", "align s", "RTF", "peak RSS MB", "segments", "rejected", "matched", "audio kept"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['file']} | {r['audio_s'] / 60:.1f} | {r['decode_s']:.1f} | {r['align_s']:.2f} | {r['rtf']:.3f} | "
              f"{r['peak_rss_mb']:.0f} | {r['segments']} | {r['rejected']} | {100 * r['match_share']:.1f} % | {100 * r['kept_share']:.1f} % |")


if __name__ == "__main__":
    sys.exit(main())
