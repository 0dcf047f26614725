"""`asrtune manifest align`: windowed decoding, manifest + rejected.jsonl + --cut, and (slow) real
alignment of the shared 5-minute longform recording against its reference.

The fast tests decode a *time-coded* recording: every second of it holds a constant amplitude
that says which second it is, and the stand-in transcriber "hears" one word per second from it
(``s0``, ``s1``, ...). That checks the windowing and the outputs exactly, without a model; the
slow tests use Whisper tiny.en through ``asrtune.transcription.longform.transcribe_audio``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from asrtune.alignment.words import Word
from asrtune.alignment.long_audio import REJECTED_NAME, Recording, align_to_manifest, collect_recordings, hypothesis_words
from asrtune.alignment.segmenter import AUDIO_NOT_IN_TEXT, MISMATCH, TEXT_NOT_IN_AUDIO, SegmentRules
from asrtune.alignment.limits import words_token_estimate
from asrtune.cli import main
from asrtune.data.audio import SAMPLE_RATE_HZ, audio_info
from asrtune.data.manifest import load_manifest
from asrtune.errors import ConfigError
from tests.conftest import require_whisper_package

CODE_STEP = 1e-3  # amplitude per second of time code: second s holds (s + 1) * CODE_STEP


def coded_recording(path: Path, seconds: int) -> Path:
    samples = np.repeat((np.arange(seconds, dtype=np.float32) + 1) * CODE_STEP, SAMPLE_RATE_HZ)
    sf.write(path, samples, SAMPLE_RATE_HZ, format="FLAC")
    return path


def coded_transcriber(recognizer, audio: np.ndarray, *, vad: str, word_timestamps: bool):
    """One word per whole second of ``audio``, named after the absolute second its time code gives."""
    assert word_timestamps
    words = []
    for i in range(len(audio) // SAMPLE_RATE_HZ):
        second = round(float(audio[i * SAMPLE_RATE_HZ + SAMPLE_RATE_HZ // 2]) / CODE_STEP) - 1
        words.append(Word(f" s{second}", i + 0.1, i + 0.6, 1.0))
    return [SimpleNamespace(start=0.0, end=len(audio) / SAMPLE_RATE_HZ, text="", words=words)]


def test_windows_give_every_word_once_at_its_file_time(tmp_path):
    path = coded_recording(tmp_path / "long.flac", 250)
    words = hypothesis_words(None, str(path), window_s=60, overlap_s=30, transcriber=coded_transcriber)
    assert [w.text.strip() for w in words] == [f"s{i}" for i in range(250)]
    assert [w.start for w in words] == pytest.approx([i + 0.1 for i in range(250)])


def test_manifest_and_rejected_lines(tmp_path):
    path = coded_recording(tmp_path / "long.flac", 100)
    reference = [f"S{i}." for i in range(100)]
    reference[40:50] = "a paragraph the speaker never read out loud at all".split()  # 10 words, where s40..s49 were said
    out = tmp_path / "out" / "aligned.jsonl"
    summary = align_to_manifest(None, [Recording(str(path), " ".join(reference))], out, count_tokens=words_token_estimate,
                                window_s=45, transcriber=coded_transcriber)
    utts = load_manifest(out)
    assert summary.segments == len(utts) >= 3 and summary.rejected == 1
    assert all(u.duration <= 30.0 and u.audio_filepath == str(path) and u.extra["align_score"] == 1.0 for u in utts)
    assert " ".join(u.text for u in utts) == " ".join(reference[:40] + reference[50:])  # casing and punctuation kept
    rejected = [json.loads(line) for line in (out.parent / REJECTED_NAME).read_text().splitlines()]
    assert [(r["reason"], r["text"], r["first_word"], r["last_word"]) for r in rejected] == [
        (MISMATCH, " ".join(reference[40:50]), 40, 50)]
    assert rejected[0]["hypothesis"] == " ".join(f"s{i}" for i in range(40, 50)) and rejected[0]["start"] == pytest.approx(39.6) and rejected[0]["end"] == pytest.approx(50.1)
    assert all(u.offset + u.duration <= 40.1 or u.offset >= 49.6 for u in utts)  # nothing of the unread stretch
    for u in utts:  # every "S<i>." ends a sentence: one timed part each, in order, inside the segment
        parts = u.extra["segments"]
        assert " ".join(p["text"] for p in parts) == u.text and len(parts) == len(u.text.split())
        assert all(0 <= p["start"] <= p["end"] <= u.duration for p in parts)
        assert all(a["end"] <= b["start"] for a, b in zip(parts, parts[1:]))
    from asrtune.training.targets import utterance_segments

    assert all(utterance_segments(u.extra, u.duration) for u in utts)  # the trainer takes them as they are


def test_cut_writes_one_flac_per_segment(tmp_path):
    path = coded_recording(tmp_path / "rec.flac", 70)
    out = tmp_path / "m.jsonl"
    align_to_manifest(None, [Recording(str(path), " ".join(f"s{i}" for i in range(70)))], out, cut_dir=tmp_path / "cut",
                      count_tokens=words_token_estimate, transcriber=coded_transcriber)
    utts = load_manifest(out)
    assert len(utts) == 3
    for utt in utts:
        assert Path(utt.audio_filepath).parent == tmp_path / "cut" and utt.offset == 0.0
        assert audio_info(utt.audio_filepath)[0] == pytest.approx(utt.duration, abs=1e-3)
        samples, _ = sf.read(utt.audio_filepath)  # the time code says which part of the recording it is
        assert round(samples[SAMPLE_RATE_HZ // 2] / CODE_STEP) - 1 == int(utt.extra["source_start"] + 0.5)
    assert json.loads(out.read_text().splitlines()[0])["audio_filepath"].startswith("cut/rec-00000.flac")


def test_inputs_pair_manifest_folder(tmp_path):
    audio = coded_recording(tmp_path / "a.flac", 2)
    (tmp_path / "a.txt").write_text("\ufeffHello,\n  world.\n", encoding="utf-8")
    assert collect_recordings([str(audio), str(tmp_path / "a.txt")]) == [Recording(str(audio), "Hello, world.")]
    assert collect_recordings([str(tmp_path)]) == [Recording(str(audio), "Hello, world.")]
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio_filepath": "a.flac", "text": "Hi.", "speaker": "x"}) + "\n")
    assert collect_recordings([str(tmp_path / "m.jsonl")]) == [Recording(str(audio), "Hi.", {"speaker": "x"})]
    (tmp_path / "o.jsonl").write_text(json.dumps({"audio_filepath": "a.flac", "text": "Hi.", "offset": 3.0}) + "\n")
    with pytest.raises(ConfigError, match="o.jsonl:1: align takes whole recordings"):
        collect_recordings([str(tmp_path / "o.jsonl")])


def test_edge_words_not_in_the_audio_are_rejected(tmp_path):
    """Words before the first and after the last heard word that nothing in the audio matches
    (a title, a credit line) go to rejected.jsonl, however few; a misheard first word stays."""
    path = coded_recording(tmp_path / "long.flac", 60)
    spoken = [f"S{i}." for i in range(60)]
    spoken[1] = "Es1."  # heard as "s1": misheard, not missing
    head, tail = "Recorded for LibriVox.".split(), "Thank you for listening.".split()
    reference = head + spoken + tail
    out = tmp_path / "aligned.jsonl"
    summary = align_to_manifest(None, [Recording(str(path), " ".join(reference))], out, count_tokens=words_token_estimate,
                                window_s=45, transcriber=coded_transcriber)
    utts = load_manifest(out)
    assert " ".join(u.text for u in utts) == " ".join(spoken)
    rejected = [json.loads(line) for line in (tmp_path / REJECTED_NAME).read_text().splitlines()]
    assert [(r["reason"], r["text"], r["first_word"], r["last_word"]) for r in rejected] == [
        (TEXT_NOT_IN_AUDIO, " ".join(head), 0, 3), (TEXT_NOT_IN_AUDIO, " ".join(tail), 63, 67)]
    assert summary.rejected == 2 and summary.kept_words == 60 and summary.words == 67


def test_a_manifest_as_transcript_gives_the_recordings_text(tmp_path, shared_data):
    root = shared_data / "longform"
    line = json.loads((root / "manifest.jsonl").read_text().splitlines()[0])
    audio = root / line["audio_filepath"]  # relative in the manifest: resolved against its folder
    (recording,) = collect_recordings([str(audio), str(root / "manifest.jsonl")])
    assert recording.transcript == " ".join(line["text"].split()) and "audio_filepath" not in recording.transcript

    # a manifest of segments of the recording (saved as .txt): their texts in offset order
    local = coded_recording(tmp_path / "rec.flac", 10)
    rows = [{"audio_filepath": "rec.flac", "text": "second part", "offset": 5.0, "duration": 5.0, "speaker": "a", "align_score": 0.9},
            {"audio_filepath": "other.flac", "text": "not this", "duration": 3.0},
            {"audio_filepath": str(local), "text": "First part,", "duration": 5.0, "speaker": "a", "align_score": 1.0}]
    (tmp_path / "segments.txt").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert collect_recordings([str(local), str(tmp_path / "segments.txt")]) == [
        Recording(str(local), "First part, second part", {"speaker": "a"})]

    rows[0]["offset"] = 4.0  # overlaps the first line's 0-5 s
    (tmp_path / "overlap.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError, match="overlap.jsonl: lines 3 and 1 overlap"):
        collect_recordings([str(local), str(tmp_path / "overlap.jsonl")])
    with pytest.raises(ConfigError, match=r"manifest.jsonl: a JSONL manifest, and none of its 1 line\(s\) is for .*rec.flac"):
        collect_recordings([str(local), str(root / "manifest.jsonl")])
    (tmp_path / "pretty.txt").write_text(json.dumps(rows[0], indent=2), encoding="utf-8")  # JSON, but not one object a line
    with pytest.raises(ConfigError, match="pretty.txt: a JSON document, not a transcript"):
        collect_recordings([str(local), str(tmp_path / "pretty.txt")])


@pytest.mark.parametrize("text", ["...", "!!! \n ?", "", "\u2014 [music]"])
def test_a_transcript_without_words_is_one_error_and_writes_nothing(tmp_path, capsys, text):
    audio = coded_recording(tmp_path / "a.flac", 2)
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "out" / "aligned.jsonl"
    assert main(["manifest", "align", str(audio), str(tmp_path / "a.txt"), "--model", "x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a.txt: the transcript has no words to align" in err and len(err.strip().splitlines()) == 1
    assert not out.parent.exists()
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio_filepath": "a.flac", "text": text}) + "\n")
    with pytest.raises(ConfigError, match="m.jsonl:1: the transcript has no words"):
        collect_recordings([str(tmp_path / "m.jsonl")])
    with pytest.raises(ConfigError, match="no words to align"):  # the library call checks too, before decoding
        align_to_manifest(None, [Recording(str(audio), text)], out, transcriber=coded_transcriber)
    assert not out.parent.exists()


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert main(["manifest", "align", str(tmp_path / "none.flac"), str(tmp_path / "none.txt"), "--model", "x", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "none.flac: file not found" in capsys.readouterr().err
    audio = coded_recording(tmp_path / "a.flac", 2)
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio_filepath": "b.flac", "text": "Hi."}) + "\n")
    assert main(["manifest", "align", str(audio), str(tmp_path / "m.jsonl"), "--model", "x", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "m.jsonl: a JSONL manifest, and none of its 1 line(s) is for" in capsys.readouterr().err
    assert main(["manifest", "align", str(tmp_path), "--model", "x", "--out", str(tmp_path / "o.jsonl"), "--min-score", "2"]) == 2
    assert "--min-score must be between 0 and 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------ slow: real speech, tiny.en

BOUNDARY_TOLERANCE_S = 0.2  # s: a segment edge may be this far outside the true 0.6 s join
JOIN_SILENCE_S = 0.6  # s of silence the longform file has after each utterance
INSERTED = ("Meanwhile, in another part of the city, the committee argued for hours about the budget "
            "for the new bridge, and nobody could agree on the colour of the railings.")


@pytest.fixture(scope="module")
def longform(shared_data):
    """(audio path, reference, utterances [(start, end, text)] in the file) of the shared longform recording."""
    rows = [json.loads(line) for line in (shared_data / "librispeech-test-clean-40" / "manifest.jsonl").read_text().splitlines()]
    rows = sorted((r for r in rows if r["speaker"] == "1089"), key=lambda r: r["utt_id"])
    utts, t = [], 0.0
    for r in rows:
        n = sf.info(shared_data / "librispeech-test-clean-40" / r["audio_filepath"]).frames
        utts.append((t, t + n / SAMPLE_RATE_HZ, r["text"]))
        t += n / SAMPLE_RATE_HZ + JOIN_SILENCE_S
    line = json.loads((shared_data / "longform" / "manifest.jsonl").read_text().splitlines()[0])
    return shared_data / "longform" / line["audio_filepath"], line["text"], utts


@pytest.fixture(scope="module")
def tiny():
    require_whisper_package()
    from asrtune.inference import load_recognizer

    return load_recognizer("openai/whisper-tiny.en", engine="ct2")


@pytest.fixture(scope="module")
def tiny_words(longform, tiny):
    """Recognised words of the longform file (tiny.en, decoded once for the module)."""
    return hypothesis_words(tiny, str(longform[0]))


def boundary_errors(segments, utts) -> list[float]:
    """Distance of each inner segment edge from the nearest true join (0 inside the join's silence)."""
    joins = [(end, nxt_start) for (_, end, _), (nxt_start, _, _) in zip(utts, utts[1:])]
    edges = [s.end for s in segments[:-1]] + [s.start for s in segments[1:]]
    return [min(max(lo - t, t - hi, 0.0) for lo, hi in joins) for t in edges]


def kept_speech(segments, utts, skip: set[int] = frozenset()) -> float:
    """Share of the utterances' audio (minus those in ``skip``) covered by accepted segments."""
    total = covered = 0.0
    for k, (a, b, _) in enumerate(utts):
        if k in skip:
            continue
        total += b - a
        covered += sum(max(0.0, min(b, s.end) - max(a, s.start)) for s in segments)
    return covered / total


def run_alignment(words, reference: str, audio, recognizer=None, rules: SegmentRules = SegmentRules()):
    """Segments and rejected stretches; with a ``recognizer``, after its forced-alignment second opinion."""
    from asrtune.alignment.limits import whisper_token_counter
    from asrtune.alignment.segmenter import segment_alignment
    from asrtune.alignment.text_align import align_text
    from asrtune.alignment.verify import rescue_stretches

    alignment, count = align_text(reference, words), whisper_token_counter()
    segments, rejected = segment_alignment(alignment, str(audio), rules, count, audio_info(audio)[0])
    if recognizer is None:
        return segments, rejected
    return rescue_stretches(recognizer, str(audio), alignment, segments, rejected, rules, count, audio_info(audio)[0])


def every_word_once(segments, rejected, n_words: int) -> bool:
    kept = [i for s in segments for i in range(s.first_word, s.last_word)]
    lost = [i for r in rejected for i in range(r.first_word, r.last_word)]
    return sorted(kept + lost) == list(range(n_words))


@pytest.mark.slow
def test_real_longform_alignment_keeps_speech_and_cuts_at_joins(longform, tiny_words):
    audio, reference, utts = longform
    segments, rejected = run_alignment(tiny_words, reference, audio)
    assert rejected == []
    assert " ".join(s.text for s in segments) == reference
    assert [i for s in segments for i in range(s.first_word, s.last_word)] == list(range(len(reference.split())))
    assert all(s.end - s.start <= 30.0 for s in segments)
    assert kept_speech(segments, utts) >= 0.95
    from asrtune.alignment.segmenter import segment_parts
    from asrtune.alignment.text_align import align_text

    alignment = align_text(reference, tiny_words)
    inner = [s.start + a for s in segments for a, _, _ in segment_parts(alignment, s)[1:]]  # where parts start
    joins = [u[0] for u in utts if any(s.start + 1.0 < u[0] < s.end - 1.0 for s in segments)]  # utterances starting mid-segment
    # a part starts at the first word, after the utterance's own leading silence
    found = [j for j in joins if any(j - BOUNDARY_TOLERANCE_S <= t <= j + 1.0 for t in inner)]
    print(f"\nparts: {len(inner) + len(segments)} in {len(segments)} segments; {len(found)} of {len(joins)} inner joins start one")
    assert len(found) >= 0.9 * len(joins)  # utterances inside a segment start timed parts (phrase pauses add more)
    errors = boundary_errors(segments, utts)
    print(f"\nclean: {len(segments)} segments, boundary error median {statistics.median(errors):.3f} s, max {max(errors):.3f} s, "
          f"speech kept {100 * kept_speech(segments, utts):.1f} %")
    assert max(errors) <= BOUNDARY_TOLERANCE_S


@pytest.mark.slow
def test_real_longform_with_corrupted_transcript_rejects_the_damage(longform, tiny_words, tiny):
    audio, reference, utts = longform
    dropped = 10  # this utterance's text is removed: its audio is speech the transcript lacks
    texts = [u[2] for u in utts]
    corrupted = " ".join([*texts[:dropped], *texts[dropped + 1 : 20], INSERTED, *texts[20:]])
    segments, rejected = run_alignment(tiny_words, corrupted, audio, recognizer=tiny)  # the second opinion must not rescue it
    reasons = {r.reason.split(";")[0] for r in rejected}
    assert reasons <= {AUDIO_NOT_IN_TEXT, TEXT_NOT_IN_AUDIO, MISMATCH} and AUDIO_NOT_IN_TEXT in reasons
    inserted = [r for r in rejected if r.reason.startswith((TEXT_NOT_IN_AUDIO, MISMATCH))]
    assert INSERTED in " ".join(r.text for r in inserted)
    a, b, _ = utts[dropped]
    assert all(s.end <= a + BOUNDARY_TOLERANCE_S or s.start >= b - BOUNDARY_TOLERANCE_S for s in segments)
    kept_words = {i for s in segments for i in range(s.first_word, s.last_word)}
    lost = {i for r in rejected for i in range(r.first_word, r.last_word)}
    assert kept_words.isdisjoint(lost) and len(kept_words | lost) == len(corrupted.split())
    assert " ".join(s.text for s in segments) == " ".join([*texts[:dropped], *texts[dropped + 1 :]])
    assert kept_speech(segments, utts, skip={dropped}) >= 0.95
    errors = boundary_errors(segments, utts)
    print(f"\ncorrupted: {len(segments)} segments, {len(rejected)} rejected, boundary error median {statistics.median(errors):.3f} s, "
          f"max {max(errors):.3f} s")
    assert max(errors) <= BOUNDARY_TOLERANCE_S


@pytest.mark.slow
def test_real_longform_rejects_foreign_words_at_both_edges(longform, tiny_words, tiny):
    """3 words the speaker never said before the real transcript and 4 after: each edge run is
    rejected (after the second opinion), and the segments hold exactly the spoken text."""
    audio, reference, _ = longform
    head, tail = "Chapter twelve begins.".split(), "Read by a volunteer.".split()
    segments, rejected = run_alignment(tiny_words, " ".join([*head, reference, *tail]), audio, recognizer=tiny)
    n = len(reference.split())
    assert " ".join(s.text for s in segments) == reference
    assert [(r.first_word, r.last_word) for r in rejected] == [(0, 3), (3 + n, 7 + n)]
    assert all(r.reason.startswith((TEXT_NOT_IN_AUDIO, MISMATCH)) for r in rejected)
    assert every_word_once(segments, rejected, n + 7)


@pytest.mark.slow
def test_cli_aligns_the_longform_file_and_cuts_flacs(longform, tmp_path, capsys):
    pytest.importorskip("asrtune.transcription.longform", reason="needs transcribe_audio from the timing work")
    require_whisper_package()
    audio, reference, _ = longform
    (tmp_path / "ref.txt").write_text(reference, encoding="utf-8")
    out = tmp_path / "data" / "aligned.jsonl"
    assert main(["manifest", "align", str(audio), str(tmp_path / "ref.txt"), "--model", "openai/whisper-tiny.en", "--engine", "ct2",
                 "--threads", "2", "--out", str(out), "--cut", str(tmp_path / "data" / "segments")]) == 0
    assert "segments" in capsys.readouterr().out
    utts = load_manifest(out)
    assert " ".join(u.text for u in utts) == reference
    assert all(u.offset == 0.0 and u.duration <= 30.0 and Path(u.audio_filepath).is_file() for u in utts)
    assert sum(audio_info(u.audio_filepath)[0] for u in utts) >= 0.95 * audio_info(audio)[0] - 38 * JOIN_SILENCE_S
    assert (out.parent / REJECTED_NAME).read_text() == ""


@pytest.mark.slow
def test_forced_alignment_keeps_misheard_accented_speech_but_not_wrong_text(shared_data, tiny, tmp_path):
    """One speechocean762 test speaker's 20 utterances joined: tiny.en mishears enough of this
    accented speech that the word match alone rejects correct text; the second opinion keeps it,
    and still rejects a sentence the speaker never said."""
    from asrtune.data.audio import load_audio

    root = shared_data / "speechocean762"
    rows = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
    speaker = rows[0]["speaker"]
    own = [r for r in rows if r["speaker"] == speaker][:20]
    gap = np.zeros(int(JOIN_SILENCE_S * SAMPLE_RATE_HZ), dtype=np.float32)
    audio = tmp_path / "speaker.flac"
    sf.write(audio, np.concatenate([part for r in own for part in (load_audio(root / r["audio_filepath"]), gap)]), SAMPLE_RATE_HZ)
    texts = [r["text"] for r in own]
    words = hypothesis_words(tiny, str(audio))
    off = SegmentRules(max_logprob_gap=None)

    plain_segments, plain_rejected = run_alignment(words, " ".join(texts), audio, rules=off)
    segments, rejected = run_alignment(words, " ".join(texts), audio, recognizer=tiny)
    lost_before = sum(r.last_word - r.first_word for r in plain_rejected)
    lost_after = sum(r.last_word - r.first_word for r in rejected)
    print(f"\nspeaker {speaker}: words rejected {lost_before} -> {lost_after} of {len(' '.join(texts).split())}")
    assert lost_before > 0 and lost_after < lost_before
    rescued = [s for s in segments if s.logprob_gap is not None]
    assert rescued and all(s.logprob_gap <= SegmentRules().max_logprob_gap and s.end - s.start <= 30.0 for s in rescued)
    assert every_word_once(segments, rejected, len(" ".join(texts).split()))
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))  # in time order, never overlapping

    # the longest utterance's text swapped for one another speaker read: not a mishearing
    k = max(range(len(texts)), key=lambda i: len(texts[i].split()))
    stranger = max((r["text"] for r in rows if r["speaker"] != speaker), key=lambda t: len(t.split()))
    wrong = [*texts[:k], stranger, *texts[k + 1 :]]
    first = len(" ".join(wrong[:k]).split())
    segments, rejected = run_alignment(words, " ".join(wrong), audio, recognizer=tiny)
    kept = {i for s in segments for i in range(s.first_word, s.last_word)}
    assert not kept & set(range(first, first + len(stranger.split())))
