"""Importers for every supported layout, built in tmp_path from a few real shared clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrtune.cli import main
from asrtune.data.audio import audio_info, load_audio
from asrtune.data.importers import import_manifest
from asrtune.data.manifest import load_manifest, read_manifest
from asrtune.data.validate import validate_manifests
from asrtune.errors import AsrtuneError, ConfigError, ManifestError


@pytest.fixture
def clips(shared_data):
    """Four real utterances: 3 speechocean762 FLACs (16 kHz) and 1 fsdd WAV (8 kHz)."""
    utts = list(read_manifest(shared_data / "speechocean762" / "test.jsonl"))[:3]
    utts.append(next(read_manifest(shared_data / "fsdd-300" / "manifest.jsonl")))
    return utts


def _copy(utts, folder: Path, names=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, u in enumerate(utts):
        name = names[i] if names else f"clip{i}{Path(u.audio_filepath).suffix}"
        dst = folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(u.audio_filepath, dst)
        out.append(dst)
    return out


def _check(out: Path, clips, texts=None):
    """The written manifest validates, durations are measured, texts are as given."""
    utts = load_manifest(out)
    assert len(utts) == len(clips)
    for got, want in zip(utts, clips):
        assert got.duration == pytest.approx(audio_info(got.audio_filepath)[0], abs=1e-3)
        assert got.duration == pytest.approx(want.duration, abs=0.02)
    assert [u.text for u in utts] == (texts or [c.text for c in clips])
    # paths are written relative to the manifest's folder
    for line in out.read_text().splitlines():
        assert not Path(json.loads(line)["audio_filepath"]).is_absolute()
    assert validate_manifests([out], jobs=1).ok
    return utts


def test_csv_and_tsv(tmp_path, clips):
    paths = _copy(clips, tmp_path / "corpus" / "wavs")
    csv_path = tmp_path / "corpus" / "meta.csv"
    rows = ["path,sentence,client_id,age"] + [f'wavs/{p.name},"{c.text}",spk{i % 2},{20 + i}' for i, (p, c) in enumerate(zip(paths, clips))]
    csv_path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out" / "csv.jsonl"
    assert import_manifest("csv", csv_path, out) == 4  # path/sentence/client_id found by name
    utts = _check(out, clips)
    assert utts[1].speaker == "spk1" and utts[1].extra["age"] == "21"

    tsv_path = tmp_path / "corpus" / "meta.tsv"
    tsv_path.write_text("audio\ttranscript\twho\n" + "".join(f"{p}\t{c.text}\tw{i}\n" for i, (p, c) in enumerate(zip(paths, clips))))
    code = main(["manifest", "import", "csv", str(tsv_path), "--out", str(tmp_path / "tsv.jsonl"), "--speaker-column", "who"])
    assert code == 0
    assert [u.speaker for u in _check(tmp_path / "tsv.jsonl", clips)] == ["w0", "w1", "w2", "w3"]


def test_csv_wrong_columns_name_what_was_found(tmp_path, clips, capsys):
    (tmp_path / "m.csv").write_text("wavfile,words\nx.wav,hello\n")
    with pytest.raises(ConfigError, match="columns found: wavfile, words"):
        import_manifest("csv", tmp_path / "m.csv", tmp_path / "o.jsonl")
    code = main(["manifest", "import", "csv", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o.jsonl"), "--audio-column", "wavfile", "--text-column", "transcript"])
    err = capsys.readouterr().err
    assert code == 2 and "transcript" in err and "columns found: wavfile, words" in err and "Traceback" not in err
    # A missing audio file is named with the CSV line it came from.
    (tmp_path / "n.csv").write_text("wavfile,words\nnot_there.wav,hello\n")
    with pytest.raises(AsrtuneError, match=r"not_there.wav: file not found.*n.csv:2"):
        import_manifest("csv", tmp_path / "n.csv", tmp_path / "o.jsonl", audio_column="wavfile", text_column="words")
    assert not (tmp_path / "o.jsonl").exists()  # atomic: nothing half-written


def test_kaldi_data_dir_with_and_without_segments(tmp_path, clips, shared_data):
    data = tmp_path / "kaldi"
    paths = _copy(clips, tmp_path / "wav")
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"utt{i} {p}\n" for i, p in enumerate(paths)))
    (data / "text").write_text("".join(f"utt{i} {c.text}\n" for i, c in enumerate(clips)))
    (data / "utt2spk").write_text("".join(f"utt{i} s{i // 2}\n" for i in range(4)))
    out = tmp_path / "k.jsonl"
    assert import_manifest("kaldi", data, out) == 4
    utts = _check(out, clips)
    assert [u.speaker for u in utts] == ["s0", "s0", "s1", "s1"] and utts[2].extra["utt_id"] == "utt2"

    # segments: two stretches of the 5-minute recording
    seg = tmp_path / "kaldi_seg"
    seg.mkdir()
    long = shared_data / "longform" / "librispeech-1089-134686.flac"
    (seg / "wav.scp").write_text(f"rec1 {long}\n")
    (seg / "segments").write_text("a rec1 10.0 12.5\nb rec1 100.25 104.0\n")
    (seg / "text").write_text("a FIRST PART\nb SECOND PART\n")
    out = tmp_path / "seg.jsonl"
    assert import_manifest("kaldi", seg, out) == 2
    a, b = load_manifest(out)
    assert (a.offset, a.duration, b.offset, b.duration) == (10.0, 2.5, 100.25, 3.75)
    assert len(load_audio(b.audio_filepath, b.offset, b.duration)) == 60_000
    assert validate_manifests([out]).ok


def test_kaldi_pipe_is_a_clear_unsupported_error(tmp_path, capsys):
    data = tmp_path / "kaldi"
    data.mkdir()
    (data / "wav.scp").write_text("utt1 sox in.sph -t wav - |\n")
    (data / "text").write_text("utt1 HELLO\n")
    code = main(["manifest", "import", "kaldi", str(data), "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "wav.scp:1" in err and "piped command" in err and "not supported" in err
    (data / "wav.scp").unlink()
    with pytest.raises(ConfigError, match="wav.scp missing"):
        import_manifest("kaldi", data, tmp_path / "o.jsonl")


def test_librispeech_layout(tmp_path, shared_data):
    src = list(read_manifest(shared_data / "librispeech-test-clean-40" / "manifest.jsonl"))[:3]
    root = tmp_path / "LibriSpeech" / "test-clean"
    names = [f"1089/134686/1089-134686-{i:04d}.flac" for i in range(3)]
    _copy(src, root, names)
    (root / "1089" / "134686" / "1089-134686.trans.txt").write_text("".join(f"1089-134686-{i:04d} {u.text}\n" for i, u in enumerate(src)))
    out = tmp_path / "ls.jsonl"
    assert import_manifest("librispeech", root.parent, out) == 3
    utts = _check(out, src)
    assert {u.speaker for u in utts} == {"1089"} and utts[0].extra["chapter"] == "134686"
    with pytest.raises(ConfigError, match="no \\*.trans.txt"):
        import_manifest("librispeech", shared_data / "fsdd-300", out)


def test_hf_audiofolder(tmp_path, clips):
    folder = tmp_path / "af"
    paths = _copy(clips, folder / "data")
    rows = ["file_name,transcription,speaker"] + [f'data/{p.name},"{c.text}",sp{i}' for i, (p, c) in enumerate(zip(paths, clips))]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "af.jsonl"
    assert import_manifest("audiofolder", folder, out) == 4
    assert _check(out, clips)[3].speaker == "sp3"
    (folder / "metadata.csv").write_text("file_name,caption\ndata/clip0.flac,x\n")
    with pytest.raises(ConfigError, match="columns found: file_name, caption"):
        import_manifest("audiofolder", folder, out)


def test_plain_folder_with_txt_transcripts(tmp_path, clips, capsys):
    folder = tmp_path / "plain"
    paths = _copy(clips, folder / "alice")
    for p, c in zip(paths, clips):
        p.with_suffix(".txt").write_text(c.text + "\n")
    shutil.copy(paths[0], folder / "alice" / "untranscribed.flac")
    out = tmp_path / "plain.jsonl"
    assert import_manifest("folder", folder, out) == 4
    assert "skipped 1 audio file" in capsys.readouterr().err
    utts = _check(out, clips)
    assert {u.speaker for u in utts} == {"alice"}


def _hf_dataset(clips):
    """A real ``datasets.Dataset`` with an Audio column holding encoded file bytes.

    ``datasets`` encodes Audio values through torchcodec (FFmpeg); building the column as a
    bytes/path struct and casting it to ``Audio(decode=False)`` gives the same Arrow storage
    and feature metadata without it.
    """
    datasets = pytest.importorskip("datasets")
    audio = [{"bytes": Path(c.audio_filepath).read_bytes(), "path": Path(c.audio_filepath).name} for c in clips]
    ds = datasets.Dataset.from_dict(
        {"audio": audio, "sentence": [c.text for c in clips], "speaker_id": [f"s{i}" for i in range(len(clips))], "score": [1.5, 2.0, 3.0, 4.0]},
        features=datasets.Features(
            {
                "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                "sentence": datasets.Value("string"),
                "speaker_id": datasets.Value("string"),
                "score": datasets.Value("float32"),
            }
        ),
    ).cast_column("audio", datasets.Audio(decode=False))
    assert isinstance(ds.features["audio"], datasets.Audio)
    return datasets, ds


def test_hf_datasets_save_to_disk_and_parquet(tmp_path, clips):
    datasets, ds = _hf_dataset(clips)
    ds.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "train-00000.parquet"))
    for src, name in ((tmp_path / "saved", "disk"), (tmp_path / "pq", "parquet")):
        out = tmp_path / "out" / f"{name}.jsonl"
        assert import_manifest("hf", src, out, speaker_column="speaker_id") == 4
        utts = _check(out, clips)
        assert [u.speaker for u in utts] == ["s0", "s1", "s2", "s3"] and utts[2].extra["score"] == 3.0
        written = sorted((tmp_path / "out" / f"{name}_audio").glob("*.flac"))
        assert len(written) == 4
        # Lossless: the 16-bit source samples come back exactly; the 8 kHz clip keeps its rate.
        original, _ = sf.read(clips[0].audio_filepath, dtype="int16")
        np.testing.assert_array_equal(sf.read(written[0], dtype="int16")[0], original)
        assert sf.info(written[3]).samplerate == 8_000

    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ConfigError, match="splits train, test; choose one with --split"):
        import_manifest("hf", tmp_path / "dd", tmp_path / "dd.jsonl")
    code = main(["manifest", "import", "hf", str(tmp_path / "dd"), "--split", "test", "--out", str(tmp_path / "dd.jsonl"), "--text-column", "sentence"])
    assert code == 0 and len(load_manifest(tmp_path / "dd.jsonl")) == 1
    with pytest.raises(ConfigError, match="columns found: audio, sentence, speaker_id, score"):
        import_manifest("hf", tmp_path / "saved", tmp_path / "x.jsonl", text_column="transcript")


def test_jsonl_reroot_and_unknown_options(tmp_path, shared_data):
    out = tmp_path / "sub" / "fsdd.jsonl"
    assert import_manifest("jsonl", shared_data / "fsdd-300" / "manifest.jsonl", out) == 300
    assert validate_manifests([out], quick=True).ok
    with pytest.raises(ConfigError, match="--delimiter do not apply to format 'kaldi'"):
        import_manifest("kaldi", tmp_path, out, delimiter=",")
    with pytest.raises(ConfigError, match="unknown format"):
        import_manifest("sphinx", tmp_path, out)
    with pytest.raises(ManifestError):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("{not json\n")
        import_manifest("jsonl", bad, out)
