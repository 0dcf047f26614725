"""Turn common corpus layouts into asrtune's JSONL manifest.

Every importer is a generator of :class:`Utterance` (so a large corpus streams) and
:func:`import_manifest` writes them atomically with audio paths relative to the new manifest::

    import_manifest("csv", "corpus/metadata.tsv", "data/all.jsonl", text_column="sentence")
    import_manifest("kaldi", "kaldi/data/train", "data/train.jsonl")

Formats (see ``FORMATS``): ``csv``/``tsv`` with a header, a ``kaldi`` data dir, the
``librispeech`` folder layout, an HF ``audiofolder`` (``metadata.csv``), a plain ``folder`` of
audio with same-named ``.txt`` transcripts, a Hugging Face ``hf`` dataset on disk
(``save_to_disk`` folder or parquet), and ``jsonl`` (re-root an existing manifest). Durations are
measured from the audio headers, never trusted from the source.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from asrtune.data.audio import AUDIO_EXTENSIONS, audio_info
from asrtune.data.manifest import Utterance, read_manifest, write_manifest
from asrtune.data.subtitles import iter_subtitles
from asrtune.data.textfile import iter_json_lines, iter_text_lines, pick_column, read_text
from asrtune.errors import AsrtuneError, AudioError, ConfigError, ManifestError
from asrtune.extras import needs_extra

AUDIO_COLUMN_CANDIDATES = ("audio_filepath", "audio", "path", "file_name", "filename", "file", "wav", "audio_path")
TEXT_COLUMN_CANDIDATES = ("text", "transcription", "transcript", "sentence", "normalized_text", "label")
SPEAKER_COLUMN_CANDIDATES = ("speaker", "speaker_id", "client_id", "spk")
HF_BATCH_ROWS = 64  # rows decoded per Arrow batch: bounds memory on datasets of long recordings


# ---------------------------------------------------------------------------------------------
# helpers


def _measured(audio: str, text: str, extra: dict[str, Any], where: str) -> Utterance:
    """An utterance whose duration comes from the file itself; a bad file is named with its source line."""
    try:
        duration, _, _ = audio_info(audio)
    except AudioError as e:
        raise AudioError(e.path, f"{e.reason} (referenced from {where})") from None
    return Utterance(audio, text, duration, 0.0, extra)


def _resolve(path: str, base: Path) -> str:
    path = path.strip()
    return path if os.path.isabs(path) or "://" in path else os.path.normpath(os.path.join(base, path))


def _read_table_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line_no, first_token, rest)`` for Kaldi-style ``key value...`` files."""
    for line_no, line in iter_text_lines(path):
        line = line.strip()
        if not line:
            continue
        key, _, rest = line.partition(" ")
        yield line_no, key, rest.strip()


def _require_dir(src: Path, fmt: str) -> Path:
    if not src.exists():
        raise ConfigError(f"{src}: not found ({fmt} import needs a folder)")
    if not src.is_dir():
        raise ConfigError(f"{src}: not a folder ({fmt} import needs a folder)")
    return src


# ---------------------------------------------------------------------------------------------
# importers: each yields Utterances with absolute audio paths


def iter_csv(
    src: str | os.PathLike,
    audio_column: str | None = None,
    text_column: str | None = None,
    speaker_column: str | None = None,
    delimiter: str | None = None,
) -> Iterator[Utterance]:
    """CSV/TSV with a header row. Relative audio paths resolve against the table's folder.

    The delimiter follows the extension (``.tsv`` → tab, else comma) unless given. Columns other
    than audio and text are kept as extra fields (the speaker column as ``speaker``); a
    ``duration`` column is ignored because durations are measured from the files.
    """
    src = Path(src)
    if not src.is_file():
        raise ConfigError(f"{src}: CSV/TSV file not found")
    if delimiter is None:
        delimiter = "\t" if src.suffix.lower() in (".tsv", ".tab") else ","
    delimiter = {"\\t": "\t", "tab": "\t", "comma": ","}.get(delimiter, delimiter)
    if len(delimiter) != 1:
        raise ConfigError(f"--delimiter must be one character, got {delimiter!r}")
    reader = csv.DictReader((line for _, line in iter_text_lines(src)), delimiter=delimiter)
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    if len(columns) <= 1 and delimiter == ",":
        raise ConfigError(f"{src}: found one column {columns} with delimiter ','; is it tab-separated? (--delimiter tab)")
    audio_col = pick_column(columns, audio_column, AUDIO_COLUMN_CANDIDATES, "audio", str(src), "--audio-column")
    text_col = pick_column(columns, text_column, TEXT_COLUMN_CANDIDATES, "text", str(src), "--text-column")
    speaker_col = speaker_column or next((c for c in SPEAKER_COLUMN_CANDIDATES if c in columns), None)
    if speaker_col is not None and speaker_col not in columns:
        raise ConfigError(f"{src}: no speaker column {speaker_col!r} (--speaker-column); columns found: {', '.join(columns)}")
    for row in reader:
        line_no = reader.line_num
        audio = (row.get(audio_col) or "").strip()
        if not audio:
            raise ManifestError(str(src), line_no, f"empty {audio_col!r} cell")
        extra = {k: v for k, v in row.items() if k not in (audio_col, text_col, speaker_col, "duration", "offset") and k is not None}
        if speaker_col is not None:
            extra["speaker"] = row[speaker_col]
        yield _measured(_resolve(audio, src.parent), (row.get(text_col) or "").strip(), extra, f"{src}:{line_no}")


def iter_kaldi(src: str | os.PathLike) -> Iterator[Utterance]:
    """A Kaldi data dir: ``wav.scp`` + ``text``, optional ``segments`` and ``utt2spk``.

    Piped ``wav.scp`` entries (``sox ... |``) are refused: run the pipeline to files first.
    """
    src = _require_dir(Path(src), "kaldi")
    for required in ("wav.scp", "text"):
        if not (src / required).is_file():
            have = ", ".join(sorted(p.name for p in src.iterdir())) or "nothing"
            raise ConfigError(f"{src}: not a Kaldi data dir: {required} missing (found: {have})")
    wavs: dict[str, str] = {}
    for line_no, key, value in _read_table_lines(src / "wav.scp"):
        if value.endswith("|"):
            raise ManifestError(
                str(src / "wav.scp"), line_no, f"piped command entries ({value[:60]!r}) are not supported: write the audio to files and list their paths"
            )
        if not value:
            raise ManifestError(str(src / "wav.scp"), line_no, f"no path for recording {key!r}")
        wavs[key] = _resolve(value, src)
    segments: dict[str, tuple[str, float, float]] = {}
    if (src / "segments").is_file():
        for line_no, key, value in _read_table_lines(src / "segments"):
            parts = value.split()
            try:
                rec, start, end = parts[0], float(parts[1]), float(parts[2])
            except (IndexError, ValueError):
                raise ManifestError(str(src / "segments"), line_no, "expected 'utt_id rec_id start end'") from None
            segments[key] = (rec, start, end)
    speakers: dict[str, str] = {}
    if (src / "utt2spk").is_file():
        speakers = {key: value for _, key, value in _read_table_lines(src / "utt2spk")}
    durations: dict[str, float] = {}
    for line_no, utt_id, text in _read_table_lines(src / "text"):
        extra: dict[str, Any] = {"utt_id": utt_id}
        if utt_id in speakers:
            extra["speaker"] = speakers[utt_id]
        if segments:
            if utt_id not in segments:
                raise ManifestError(str(src / "text"), line_no, f"utterance {utt_id!r} is not in segments")
            rec, start, end = segments[utt_id]
            if rec not in wavs:
                raise ManifestError(str(src / "segments"), None, f"recording {rec!r} (of {utt_id!r}) is not in wav.scp")
            if end <= start:
                raise ManifestError(str(src / "segments"), None, f"segment {utt_id!r} ends ({end}) before it starts ({start})")
            if rec not in durations:  # check the recording is readable once
                durations[rec] = audio_info(wavs[rec])[0]
            yield Utterance(wavs[rec], text, end - start, start, extra)
        else:
            if utt_id not in wavs:
                raise ManifestError(str(src / "text"), line_no, f"utterance {utt_id!r} is not in wav.scp")
            yield _measured(wavs[utt_id], text, extra, f"{src / 'wav.scp'} ({utt_id})")


def iter_librispeech(src: str | os.PathLike) -> Iterator[Utterance]:
    """The LibriSpeech layout: ``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` beside ``UTT.flac``."""
    src = _require_dir(Path(src), "librispeech")
    transcripts = sorted(src.rglob("*.trans.txt"))
    if not transcripts:
        raise ConfigError(f"{src}: no *.trans.txt files found (not a LibriSpeech folder)")
    for trans in transcripts:
        for line_no, utt_id, text in _read_table_lines(trans):
            audio = next((trans.parent / f"{utt_id}{ext}" for ext in (".flac", ".wav") if (trans.parent / f"{utt_id}{ext}").exists()), None)
            if audio is None:
                raise AudioError(str(trans.parent / f"{utt_id}.flac"), f"file not found (listed in {trans}:{line_no})")
            parts = utt_id.split("-")
            extra = {"utt_id": utt_id, "speaker": parts[0]}
            if len(parts) >= 2:
                extra["chapter"] = parts[1]
            yield _measured(str(audio), text, extra, f"{trans}:{line_no}")


def iter_audiofolder(src: str | os.PathLike, text_column: str | None = None) -> Iterator[Utterance]:
    """A Hugging Face audiofolder: ``metadata.csv`` (or ``.jsonl``) with a ``file_name`` column."""
    src = _require_dir(Path(src), "audiofolder")
    csv_meta, jsonl_meta = src / "metadata.csv", src / "metadata.jsonl"
    if csv_meta.is_file():
        yield from iter_csv(csv_meta, audio_column="file_name", text_column=text_column or _audiofolder_text_column(csv_meta))
        return
    if jsonl_meta.is_file():
        for line_no, row in iter_json_lines(jsonl_meta):
            columns = list(row)
            pick_column(columns, "file_name", (), "audio", f"{jsonl_meta}:{line_no}", "file_name")
            text_col = pick_column(columns, text_column, ("transcription", "text"), "text", f"{jsonl_meta}:{line_no}", "--text-column")
            extra = {k: v for k, v in row.items() if k not in ("file_name", text_col)}
            yield _measured(_resolve(row["file_name"], src), str(row[text_col]).strip(), extra, f"{jsonl_meta}:{line_no}")
        return
    raise ConfigError(f"{src}: no metadata.csv or metadata.jsonl (an audiofolder lists its files there)")


def _audiofolder_text_column(metadata: Path) -> str:
    columns = next(csv.reader(line for _, line in iter_text_lines(metadata)), [])
    return pick_column(columns, None, ("transcription", "text"), "text", str(metadata), "--text-column")


def iter_folder(src: str | os.PathLike) -> Iterator[Utterance]:
    """A folder (searched recursively) of audio files, each with a same-named ``.txt`` transcript.

    Audio without a transcript is skipped with a count on stderr; a folder with none is an error.
    """
    src = _require_dir(Path(src), "folder")
    found = skipped = 0
    for audio in sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        transcript = audio.with_suffix(".txt")
        if not transcript.is_file():
            skipped += 1
            continue
        found += 1
        text = " ".join(read_text(transcript).split())
        extra = {"speaker": audio.parent.name} if audio.parent != src else {}
        yield _measured(str(audio), text, extra, str(transcript))
    if skipped:
        print(f"asrtune manifest import: skipped {skipped} audio file(s) without a .txt transcript", file=sys.stderr)
    if not found:
        raise ConfigError(f"{src}: no audio file ({', '.join(AUDIO_EXTENSIONS)}) with a same-named .txt transcript")


def iter_jsonl(src: str | os.PathLike) -> Iterator[Utterance]:
    """An existing manifest, re-measured (duration from the file) unless it is a segment."""
    for utt in read_manifest(src):
        if utt.offset or utt.duration > 0:
            yield utt
        else:
            yield _measured(utt.audio_filepath, utt.text, utt.extra, f"{src}:{utt.line_no}")


def iter_hf_dataset(
    src: str | os.PathLike,
    audio_dir: str | os.PathLike,
    audio_column: str | None = None,
    text_column: str | None = None,
    speaker_column: str | None = None,
    split: str | None = None,
) -> Iterator[Utterance]:
    """A Hugging Face ``datasets`` dataset on disk: a ``save_to_disk`` folder, a parquet file, or a
    folder of parquet files.

    Read with pyarrow directly, batch by batch, and decoded with soundfile (not ``datasets``'
    torchcodec-based Audio decoding, which needs FFmpeg libraries). Each clip is written to
    ``audio_dir/NNNNNNNN.flac``; an audio cell with no bytes but an existing ``path`` is used
    in place. Other scalar columns are kept as extra fields.
    """
    import soundfile as sf  # heavy: soundfile

    src = Path(src)
    audio_dir = Path(audio_dir)
    index = 0
    made_dir = False
    for batch_source, batch in _iter_arrow_batches(src, split):
        columns = batch.schema.names
        audio_col = audio_column or next((c for c in columns if _is_audio_type(batch.schema.field(c).type)), None)
        if audio_col is None or audio_col not in columns:
            raise ConfigError(f"{batch_source}: no audio column {'(' + repr(audio_column) + ') ' if audio_column else ''}(--audio-column); columns found: {', '.join(columns)}")
        text_col = pick_column(columns, text_column, TEXT_COLUMN_CANDIDATES, "text", str(batch_source), "--text-column")
        if speaker_column is not None and speaker_column not in columns:
            raise ConfigError(f"{batch_source}: no speaker column {speaker_column!r} (--speaker-column); columns found: {', '.join(columns)}")
        extra_cols = [c for c in columns if c not in (audio_col, text_col) and _is_scalar_type(batch.schema.field(c).type)]
        rows = batch.to_pylist()
        for row in rows:
            cell = row[audio_col]
            where = f"{batch_source} row {index}"
            data = path = None
            if isinstance(cell, dict):
                data, path = cell.get("bytes"), cell.get("path")
                if data is None and cell.get("array") is not None:
                    raise ConfigError(f"{where}: audio stored as decoded arrays is not supported; save the dataset with encoded audio (datasets.Audio(decode=True) default)")
            elif isinstance(cell, (bytes, bytearray)):
                data = cell
            elif isinstance(cell, str):
                path = cell
            extra = {c: row[c] for c in extra_cols if c != speaker_column}
            if speaker_column is not None:
                extra["speaker"] = None if row[speaker_column] is None else str(row[speaker_column])
            text = "" if row[text_col] is None else str(row[text_col]).strip()
            if data:
                try:
                    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
                except Exception as e:
                    raise AudioError(f"{where} ({path or 'embedded bytes'})", f"cannot decode audio bytes with soundfile ({str(e).strip()[:160]})") from None
                if samples.size == 0:
                    raise AudioError(f"{where} ({path or 'embedded bytes'})", "audio is empty (0 samples)")
                if not made_dir:
                    audio_dir.mkdir(parents=True, exist_ok=True)
                    made_dir = True
                out = audio_dir / f"{index:08d}.flac"
                # FLAC is lossless; 24-bit keeps float/24-bit sources intact, 16-bit sources stay 16.
                subtype = "PCM_16" if _source_subtype(data) in ("PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW") else "PCM_24"
                sf.write(out, np.clip(samples, -1.0, 1.0), rate, format="FLAC", subtype=subtype)
                yield Utterance(str(out), text, len(samples) / rate, 0.0, extra)
            elif path:
                resolved = _resolve(path, src if src.is_dir() else src.parent)
                yield _measured(resolved, text, extra, where)
            else:
                raise AudioError(where, "audio cell has neither bytes nor a path")
            index += 1
    if index == 0:
        raise ConfigError(f"{src}: the dataset has no rows")


def _source_subtype(data: bytes) -> str | None:
    import soundfile as sf  # heavy: soundfile

    try:
        return sf.info(io.BytesIO(data)).subtype
    except Exception:
        return None


def _is_audio_type(t) -> bool:
    import pyarrow as pa  # optional extra [hf], checked by iter_import

    return pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields))


def _is_scalar_type(t) -> bool:
    import pyarrow as pa  # optional extra [hf], checked by iter_import

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)


def _iter_arrow_batches(src: Path, split: str | None) -> Iterator[tuple[Path, Any]]:
    """Record batches from a ``save_to_disk`` folder (Arrow IPC streams) or parquet file(s)."""
    # optional extra [hf], checked by iter_import
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not src.exists():
        raise ConfigError(f"{src}: not found (hf import needs a save_to_disk folder or parquet files)")
    if src.is_file():
        if src.suffix != ".parquet":
            raise ConfigError(f"{src}: expected a .parquet file or a save_to_disk folder")
        files = [src]
    elif (src / "dataset_dict.json").is_file():
        splits = json.loads((src / "dataset_dict.json").read_text())["splits"]
        if split is None:
            if len(splits) != 1:
                raise ConfigError(f"{src}: a DatasetDict with splits {', '.join(splits)}; choose one with --split")
            split = splits[0]
        if split not in splits:
            raise ConfigError(f"{src}: no split {split!r} (--split); splits found: {', '.join(splits)}")
        yield from _iter_arrow_batches(src / split, None)
        return
    elif (src / "state.json").is_file():
        state = json.loads((src / "state.json").read_text())
        files = [src / entry["filename"] for entry in state.get("_data_files", [])]
        for arrow in files:
            with pa.memory_map(str(arrow)) as source:
                for batch in pa.ipc.open_stream(source):
                    for start in range(0, batch.num_rows, HF_BATCH_ROWS):
                        yield arrow, batch.slice(start, HF_BATCH_ROWS)
        return
    else:
        files = sorted(src.rglob("*.parquet"))
        if split is not None:
            files = [f for f in files if split in f.relative_to(src).parts or f.name.startswith(f"{split}-") or f.name.startswith(f"{split}.")]
        if not files:
            raise ConfigError(f"{src}: no state.json (save_to_disk) and no .parquet files{' for split ' + repr(split) if split else ''}")
    for parquet in files:
        try:
            reader = pq.ParquetFile(parquet)
        except Exception as e:
            raise ConfigError(f"{parquet}: not a readable parquet file ({str(e)[:160]})") from None
        for batch in reader.iter_batches(batch_size=HF_BATCH_ROWS):
            yield parquet, batch


# ---------------------------------------------------------------------------------------------
# dispatch

#: format name -> (importer, one-line description)
FORMATS: dict[str, tuple[Callable[..., Iterator[Utterance]], str]] = {
    "csv": (iter_csv, "CSV/TSV with a header (delimiter by extension or --delimiter)"),
    "tsv": (iter_csv, "same as csv"),
    "kaldi": (iter_kaldi, "Kaldi data dir: wav.scp, text, optional segments, utt2spk"),
    "librispeech": (iter_librispeech, "LibriSpeech layout: */*/*.trans.txt beside the .flac files"),
    "audiofolder": (iter_audiofolder, "HF audiofolder: metadata.csv with file_name + transcription/text"),
    "folder": (iter_folder, "folder of audio files with same-named .txt transcripts"),
    "hf": (iter_hf_dataset, "HF datasets on disk: save_to_disk folder or parquet file(s) with an audio column"),
    "jsonl": (iter_jsonl, "an existing JSONL manifest (re-rooted to the output's folder)"),
    "subtitles": (iter_subtitles, "long audio with same-named .srt/.vtt (or a CSV of audio,subtitle): cues merged into <= 30 s segments"),
}


def iter_import(fmt: str, src: str | os.PathLike, out: str | os.PathLike | None = None, **options: Any) -> Iterator[Utterance]:
    """Utterances from ``src`` in format ``fmt``; unknown options for a format are an error."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    options = {k: v for k, v in options.items() if v is not None}
    allowed = {
        "csv": {"audio_column", "text_column", "speaker_column", "delimiter"},
        "tsv": {"audio_column", "text_column", "speaker_column", "delimiter"},
        "audiofolder": {"text_column"},
        "hf": {"audio_column", "text_column", "speaker_column", "split", "audio_dir"},
        "subtitles": {"clean", "max_gap"},
    }.get(fmt, set())
    bad = sorted(set(options) - allowed)
    if bad:
        flags = ", ".join("--" + b.replace("_", "-") for b in bad)
        raise ConfigError(f"option(s) {flags} do not apply to format {fmt!r}" + (f" (it takes: {', '.join('--' + a.replace('_', '-') for a in sorted(allowed))})" if allowed else ""))
    if fmt == "tsv":
        options.setdefault("delimiter", "\t")
    if fmt == "hf":
        with needs_extra("hf", "manifest import hf", "pyarrow"):  # checked here, before anything is written
            import pyarrow  # noqa: F401
        if out is None and "audio_dir" not in options:
            raise ConfigError("hf import writes decoded audio next to the output manifest: give out= or audio_dir=")
        options.setdefault("audio_dir", Path(out).with_name(Path(out).stem + "_audio"))
    return FORMATS[fmt][0](src, **options)


def import_manifest(fmt: str, src: str | os.PathLike, out: str | os.PathLike, progress: bool = False, **options: Any) -> int:
    """Convert ``src`` (format ``fmt``) to the JSONL manifest ``out``; returns the utterance count.

    >>> import_manifest("librispeech", "LibriSpeech/test-clean", "data/test.jsonl")   # doctest: +SKIP
    2620
    """
    out = Path(out)
    if out.suffix not in (".jsonl", ".json"):
        raise ConfigError(f"--out {out}: the output is a JSONL manifest; give a .jsonl path")
    utterances = iter_import(fmt, src, out, **options)
    if progress:
        utterances = tqdm(utterances, desc=f"import {fmt}", unit=" utts", disable=None)
    count = write_manifest(out, utterances)
    if count == 0:
        out.unlink(missing_ok=True)
        raise AsrtuneError(f"{src}: no utterances found for format {fmt!r}")
    return count


__all__ = [
    "FORMATS",
    "import_manifest",
    "iter_audiofolder",
    "iter_csv",
    "iter_folder",
    "iter_hf_dataset",
    "iter_import",
    "iter_jsonl",
    "iter_kaldi",
    "iter_librispeech",
]
