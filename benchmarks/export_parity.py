#!/usr/bin/env python
"""Export parity: does a Whisper model still score the same after `asrtune export`, in each runtime?

For one model (tiny.en by default) every export is decoded by its own runtime on the same clips as
the Hugging Face model: greedy, no prompt, no loop fallback (``compression_ratio_threshold`` 0), 2
threads, one process, one run. Sets: speechocean762 test (accented English) and
librispeech-test-clean-40 (general English), each optionally cut to ``--limit-*`` clips spread
evenly over the set (every k-th: the manifests are ordered by speaker).
WER uses the whisper-en normaliser; ``delta_*`` is the row's WER minus the Hugging Face row's, in
percentage points. ``size_mb`` counts the weight files only (tokenizer and configs excluded). RTF
= decode wall time / audio duration over both sets (audio loading, model loading and one untimed
warm-up clip excluded); on a
shared machine it is only comparable within one run, whose 1-minute load average is recorded.

Rows (format, runtime, weight type), lossless first:

* hf: transformers float32 (the reference);
* ct2 float32 / int8: asrtune's ct2 engine (CTranslate2, as faster-whisper runs it);
* ggml f16 / q8_0 / q5_0: whisper.cpp through pywhispercpp (asrtune's whispercpp engine), flash
  attention off; ggml f16 again with whisper.cpp's flash attention (float16 attention arithmetic:
  a runtime setting that is not lossless, listed with the quantised rows);
* onnx fp32 / int8: ONNX Runtime (asrtune's onnx engine);
* openai-whisper fp32: ``whisper.load_model`` + ``whisper.decode`` on 30 s padded log-mels, batched.

Then ``longform``: whisper.cpp's own segments of the 5-minute long-form file (monotonic, inside the
file) and their WER beside the Hugging Face model's long-form WER.

    python -m benchmarks.export_parity
    python -m benchmarks.export_parity --limit-speechocean 100 --rows hf,ggml-f16,onnx-fp32
    python -m benchmarks.export_parity --rows hf,ggml-f16 --transcripts parity.jsonl  # which clips differ

``--out`` keeps what it holds for other models, and for this model the rows this run does not
measure (with the description of the run that did): ``--rows ggml-f16`` re-measures one row.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks import harness

# whisper.cpp's OpenMP threads spin while they wait; on a CPU shared with other work that made it
# ~10x slower per clip. The setting only takes when it is in the environment before torch loads, so
# it is set before any import; recorded in the results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SET_MANIFESTS = {"speechocean762_test": "speechocean762/test.jsonl",  # under the harness's --data
                 "librispeech_40": "librispeech-test-clean-40/manifest.jsonl"}
LONGFORM_MANIFEST = "longform/manifest.jsonl"
THREADS = 2
BATCH_SIZE = 8
PERCENT = 100.0
WEIGHT_SUFFIXES = (".bin", ".onnx", ".pt", ".safetensors")
LOSSLESS_GOAL_POINTS = 0.3  # the parity goal for lossless exports, in WER points on each set


@dataclass(frozen=True)
class Row:
    """One export to measure: its format, the runtime that decodes it and its weight type."""

    key: str
    format: str
    runtime: str
    quantization: str
    lossless: bool
    flash_attention: bool = False  # whisper.cpp's flash-attention kernel (ggml rows only)


ROWS = [
    Row("hf", "hf", "transformers", "float32", True),
    Row("ct2-float32", "ct2", "ctranslate2", "float32", True),
    Row("ggml-f16", "ggml", "whisper.cpp", "f16", True),
    Row("onnx-fp32", "onnx", "onnxruntime", "fp32", True),
    Row("openai-whisper-fp32", "openai-whisper", "openai-whisper", "fp32", True),
    Row("ct2-int8", "ct2", "ctranslate2", "int8", False),
    Row("ggml-f16-fa", "ggml", "whisper.cpp flash-attn", "f16", False, flash_attention=True),
    Row("ggml-q8_0", "ggml", "whisper.cpp", "q8_0", False),
    Row("ggml-q5_0", "ggml", "whisper.cpp", "q5_0", False),
    Row("onnx-int8", "onnx", "onnxruntime", "int8", False),
]


def spread(items: list, limit: int | None) -> list:
    """``limit`` items taken evenly across ``items`` (every k-th, from the first), or all of them.
    Manifests are ordered by speaker, so a spread subset keeps every speaker in it.

    >>> spread(list(range(10)), 3), spread([1, 2], None)
    ([0, 3, 6], [1, 2])
    """
    if limit is None or limit >= len(items):
        return list(items)
    return list(items[:: max(1, len(items) // limit)])[:limit]


@dataclass(frozen=True)
class ClipSet:
    """The clips of one evaluation set, loaded once and decoded by every row."""

    clips: list  # float32 mono 16 kHz arrays
    references: list[str]
    ids: list[str]  # Utterance.id of each clip
    audio_s: float


def load_set(manifest: Path, limit: int | None) -> ClipSet:
    """``limit`` utterances spread over a manifest (all by default), loaded."""
    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
    from asrtune.data.manifest import load_manifest

    utts = spread(load_manifest(manifest), limit)
    clips = [load_audio(u.audio_filepath, offset=u.offset, duration=u.duration if u.offset else None) for u in utts]
    return ClipSet(clips, [u.text for u in utts], [u.id for u in utts], sum(len(c) for c in clips) / SAMPLE_RATE_HZ)


def make_export(model: str, row: Row, work: Path) -> tuple[Path | None, float]:
    """The row's export folder (None for the hf row) and the seconds the conversion took."""
    if row.format == "hf":
        return None, 0.0
    from asrtune.training.export import export_model

    start = time.perf_counter()
    result = export_model(model, row.format, work / row.key, quantization=row.quantization, force=True)
    return result.path, time.perf_counter() - start


def weights_size_mb(model: str, folder: Path | None) -> float:
    from asrtune.models.registry import resolve_model

    folder = folder if folder is not None else resolve_model(model).path
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES) / 1e6


def openai_whisper_decoder(folder: Path) -> Callable[[list], list[str]]:
    """Batched greedy ``whisper.decode`` of openai-whisper on its own 30 s padded log-mels."""
    import torch
    import whisper

    model = whisper.load_model(str(folder / "model.pt"), device="cpu")
    options = whisper.DecodingOptions(fp16=False, without_timestamps=True, language="en", temperature=0.0)

    def decode(clips: list) -> list[str]:
        texts = []
        for start in range(0, len(clips), BATCH_SIZE):
            mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(c)), model.dims.n_mels)
                                for c in clips[start : start + BATCH_SIZE]])
            texts += [r.text for r in whisper.decode(model, mels, options)]
        return texts

    return decode


def make_decoder(model: str, row: Row, folder: Path | None) -> Callable[[list], list[str]]:
    """A function clips -> transcripts running the row's runtime (greedy, no prompt, no fallback)."""
    if row.format == "openai-whisper":
        return openai_whisper_decoder(folder)
    from asrtune.inference import load_recognizer

    engine = {"hf": "hf", "ct2": "ct2", "ggml": "whispercpp", "onnx": "onnx"}[row.format]
    overrides = dict(engine=engine, threads=THREADS, batch_size=BATCH_SIZE, compression_ratio_threshold=0.0)
    if row.format == "ct2":
        overrides["compute_type"] = row.quantization
    if row.format == "ggml":
        overrides["flash_attention"] = row.flash_attention
    recognizer = load_recognizer(model if folder is None else folder, **overrides)
    return recognizer.transcribe


def score_set(decode: Callable[[list], list[str]], clips: list, refs: list[str]) -> tuple[float, float, list[str]]:
    """(WER, decode seconds, transcripts) of one set."""
    from asrtune.evaluation.metrics import corpus_wer

    start = time.perf_counter()
    hyps = decode(clips)
    seconds = time.perf_counter() - start
    return corpus_wer(refs, hyps, "whisper-en"), seconds, hyps


def measure_row(model: str, row: Row, sets: dict[str, ClipSet], work: Path) -> tuple[dict, dict[str, list[str]]]:
    """One row of the parity table (WER per set in %, size, RTF, conversion time) and its transcripts per set."""
    folder, convert_s = make_export(model, row, work)
    decode = make_decoder(model, row, folder)
    warm_up = next(iter(sets.values())).clips[:1]
    decode(warm_up)  # first-call costs (allocation, lazy initialisation) are not the runtime's speed
    out = {"format": row.format, "runtime": row.runtime, "quantization": row.quantization, "lossless": row.lossless,
           "size_mb": round(weights_size_mb(model, folder), 1), "convert_s": round(convert_s, 1)}
    decode_s = audio_s = 0.0
    transcripts = {}
    for name, clip_set in sets.items():
        wer, spent, transcripts[name] = score_set(decode, clip_set.clips, clip_set.references)
        out[f"wer_{name}"] = round(PERCENT * wer, 2)
        decode_s, audio_s = decode_s + spent, audio_s + clip_set.audio_s
    out["rtf_2_threads"] = round(decode_s / audio_s, 3)
    return out, transcripts


def write_transcripts(path: Path, row_key: str, sets: dict[str, ClipSet], transcripts: dict[str, list[str]]) -> None:
    """Append one JSON line per clip (row, set, clip id, reference, hypothesis), so that a row's WER
    gap can be traced to the clips whose words differ."""
    with path.open("a", encoding="utf-8") as out:
        for name, clip_set in sets.items():
            for clip_id, ref, hyp in zip(clip_set.ids, clip_set.references, transcripts[name]):
                out.write(json.dumps({"row": row_key, "set": name, "id": clip_id, "reference": ref, "hypothesis": hyp}) + "\n")


def longform_check(model: str, work: Path, data: Path) -> dict:
    """Timestamps survive: whisper.cpp's own segments of the 5-minute long-form file (ggml f16 export)
    are monotonic and inside the file, and its WER is compared with the Hugging Face model's
    (asrtune's long-form path: Silero VAD segments decoded by the hf engine)."""
    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
    from asrtune.data.manifest import load_manifest
    from asrtune.evaluation.metrics import corpus_wer
    from asrtune.inference import load_recognizer
    from asrtune.transcription.longform import transcribe_audio

    utt = load_manifest(data / LONGFORM_MANIFEST)[0]
    audio = load_audio(utt.audio_filepath)
    duration = len(audio) / SAMPLE_RATE_HZ
    folder, _ = make_export(model, next(r for r in ROWS if r.key == "ggml-f16"), work)
    segments = load_recognizer(folder, engine="whispercpp", threads=THREADS).segments(audio)
    hf = load_recognizer(model, threads=THREADS, compression_ratio_threshold=0.0)
    hf_text = " ".join(seg.text for seg in transcribe_audio(hf, audio))
    return {
        "file": str(utt.audio_filepath), "duration_s": round(duration, 1), "whispercpp_segments": len(segments),
        "monotonic": all(a.end <= b.start + 1e-6 for a, b in zip(segments, segments[1:])),
        "inside_file": all(0 <= seg.start < seg.end <= duration + 0.5 for seg in segments),
        "wer_whispercpp": round(PERCENT * corpus_wer([utt.text], [" ".join(seg.text for seg in segments)]), 2),
        "wer_hf": round(PERCENT * corpus_wer([utt.text], [hf_text]), 2),
    }


def add_deltas(rows: list[dict], set_names: list[str]) -> None:
    """``delta_<set>`` (points vs the hf row) and whether a lossless row meets the parity goal."""
    reference = next((r for r in rows if r["format"] == "hf"), None)
    if reference is None:
        return
    for row in rows:
        for name in set_names:
            row[f"delta_{name}"] = round(row[f"wer_{name}"] - reference[f"wer_{name}"], 2)
        if row["lossless"]:
            row["within_goal"] = all(abs(row[f"delta_{n}"]) <= LOSSLESS_GOAL_POINTS for n in set_names)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__, out="export_parity.json")
    parser.add_argument("--model", default="openai/whisper-tiny.en")
    parser.add_argument("--label", default=None, help="the model's name in the tables (default: --model)")
    parser.add_argument("--rows", default=",".join(r.key for r in ROWS), help="row keys, comma-separated")
    parser.add_argument("--limit-speechocean", type=int, default=None, help="N clips spread over speechocean762 test")
    parser.add_argument("--limit-librispeech", type=int, default=None, help="N clips spread over librispeech-40")
    parser.add_argument("--no-longform", action="store_true", help="skip the long-form timestamp check")
    parser.add_argument("--transcripts", type=Path, default=None,
                        help="also write every row's transcript of every clip to this JSONL file (replaced)")
    args = parser.parse_args(argv)  # --out: other models' rows already in it are kept
    unknown = [key for key in args.rows.split(",") if key not in {r.key for r in ROWS}]
    if unknown:
        parser.error(f"--rows: unknown row {', '.join(unknown)}; the rows are {', '.join(r.key for r in ROWS)}")
    if args.transcripts is not None and not args.transcripts.parent.is_dir():
        parser.error(f"--transcripts {args.transcripts}: folder {args.transcripts.parent} does not exist")
    data = harness.data_root(args)
    manifests = {name: data / path for name, path in SET_MANIFESTS.items()}

    import torch

    torch.set_num_threads(THREADS)
    out = Path(args.out)
    chosen = [r for r in ROWS if r.key in args.rows.split(",")]
    limits = {"speechocean762_test": args.limit_speechocean, "librispeech_40": args.limit_librispeech}
    sets = {name: load_set(path, limits[name]) for name, path in manifests.items()}
    run = run_description(args.model, sets, manifests, [r.key for r in chosen]) | {"label": args.label or args.model}
    earlier = harness.load_result(out, {})
    run["id"] = 1 + max((r.get("id", 0) for r in earlier.get("runs", [])), default=0)
    other_clips = {r["id"] for r in earlier.get("runs", []) if r["model"] == args.model and r["sets"] != run["sets"]}
    stale = [r["key"] for r in earlier.get("rows", []) if r.get("run") in other_clips and r["key"] not in args.rows.split(",")]
    if stale:  # every row of a model is compared with its hf row: all on the same clips
        parser.error(f"{out} holds rows of {args.model} measured on other clips ({', '.join(stale)}); "
                     "measure those rows too, or write to another --out")
    rows: list[dict] = []
    if args.transcripts is not None:
        args.transcripts.write_text("")
    with tempfile.TemporaryDirectory(prefix="export-parity-") as work:
        for row in chosen:
            measured, transcripts = measure_row(args.model, row, sets, Path(work))
            rows.append({"model": args.model, "label": args.label or args.model, "key": row.key, "run": run["id"], **measured})
            if args.transcripts is not None:
                write_transcripts(args.transcripts, row.key, sets, transcripts)
            print(json.dumps(rows[-1]), flush=True)
            write_results(out, run, rows, list(sets))  # a cut-short run keeps the rows it measured
        if not args.no_longform:
            run["longform"] = longform_check(args.model, Path(work), data)
            print(json.dumps(run["longform"]), flush=True)
            write_results(out, run, rows, list(sets))
    print(f"wrote {out}")
    return 0


def run_description(model: str, sets: dict[str, ClipSet], manifests: dict[str, Path], planned: list[str]) -> dict:
    """How one model's rows were measured: clips per set, settings, hardware and load."""
    from asrtune.data.manifest import load_manifest

    described = {}
    for name, clip_set in sets.items():
        total, clips = len(load_manifest(manifests[name])), len(clip_set.clips)
        selection = "all" if clips == total else f"every {total // clips}th of {total} clips, from the first"
        described[name] = {"manifest": str(manifests[name]), "clips": clips, "selection": selection,
                           "audio_s": round(clip_set.audio_s, 1)}
    return {"model": model, "threads": THREADS, "batch_size": BATCH_SIZE, "decoding": "greedy, no prompt, no fallback",
            "normalizer": "whisper-en", "sets": described, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
            "hardware": harness.describe_hardware(THREADS), "rows_planned": planned, "longform": None}


def write_results(out: Path, run: dict, rows: list[dict], set_names: list[str]) -> None:
    """``out`` with this run's rows replacing the same model's rows of the same keys; the model's
    other rows (measured by an earlier run, whose description is kept with them) stay, and the
    deltas are recomputed against the model's hf row wherever it was measured. A run that checks
    the long-form file replaces the model's earlier long-form result."""
    previous = harness.load_result(out, {})
    measured = {(r["model"], r["key"]) for r in rows}
    kept = [r for r in previous.get("rows", []) if (r.get("model"), r.get("key")) not in measured]
    model_rows = [r for r in kept + rows if r["model"] == run["model"]]
    add_deltas(model_rows, set_names)
    runs = []
    for earlier in previous.get("runs", []):
        if earlier.get("id") == run["id"] or not any(r.get("run") == earlier.get("id") for r in kept):
            continue
        if earlier["model"] == run["model"] and run["longform"] is not None:
            earlier = earlier | {"longform": None}
        runs.append(earlier)
    models = list(dict.fromkeys(r["model"] for r in kept + rows))
    order = [r.key for r in ROWS]
    ordered = sorted(kept + rows, key=lambda r: (models.index(r["model"]), order.index(r["key"])))
    harness.write_result_raw(out, {"goal": f"lossless rows within {LOSSLESS_GOAL_POINTS} WER points of the hf row on each set",
                                   "runs": runs + [run], "rows": ordered})

if __name__ == "__main__":
    sys.exit(main())
