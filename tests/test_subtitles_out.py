"""Word-timed subtitles: cue limits on synthetic and real word output; SRT/VTT read back with the
``srt`` and ``webvtt-py`` parsers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from asrtune.alignment.words import Word
from asrtune.errors import ConfigError
from asrtune.transcription.subtitles import SubtitleOptions, build_cues, layout, record_cues
from asrtune.transcription.writers import to_srt, to_vtt
from conftest import require_whisper_package

TINY = "openai/whisper-tiny.en"


def _check_limits(cues, options: SubtitleOptions) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= options.max_line_count, cue
        assert all(0 < len(line) <= options.max_line_width for line in cue.lines), cue
        assert 0 <= cue.end - cue.start <= options.max_cue_seconds + 1e-9, cue
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))  # in order, no overlap


def _synthetic(n: int = 300, seed: int = 0) -> list[Word]:
    """Words of 1-14 letters, 0.1-0.6 s long, gaps of 0-0.3 s (now and then 1 s), sentence ends every few words."""
    rng = np.random.default_rng(seed)
    words, t = [], 0.0
    for i in range(n):
        text = "".join(rng.choice(list("abcdefghij"), rng.integers(1, 15)))
        text += rng.choice(["", "", "", "", ",", "."]) if i % 3 else ""
        d = rng.uniform(0.1, 0.6)
        words.append(Word(text, t, t + d, 0.9))
        t += d + (1.0 if rng.random() < 0.05 else rng.uniform(0.0, 0.3))
    return words


@pytest.mark.parametrize("width,count,seconds", [(42, 2, 7.0), (20, 1, 3.0), (32, 3, 5.0)])
def test_cues_from_synthetic_words_stay_within_the_limits(width, count, seconds):
    options = SubtitleOptions(max_line_width=width, max_line_count=count, max_cue_seconds=seconds)
    words = _synthetic()
    cues = build_cues(words, options)
    _check_limits(cues, options)
    assert " ".join(" ".join(c.lines) for c in cues).split() == [w.text for w in words]  # nothing lost or reordered


def test_sentence_ends_and_pauses_cut_first():
    w = [Word("One", 0.0, 0.3, 1), Word("two.", 0.35, 0.6, 1), Word("Three", 0.7, 1.0, 1),
         Word("four", 2.0, 2.3, 1), Word("five", 2.35, 2.6, 1)]
    cues = build_cues(w, SubtitleOptions())
    assert [c.text for c in cues] == ["One two.", "Three", "four five"]  # "." then a 1 s pause
    assert (cues[0].start, cues[0].end) == (0.0, 0.6)


def test_a_long_phrase_is_cut_after_a_comma_and_lines_are_balanced():
    text = "we went down to the river, and the water was cold and very clear that morning"
    w = [Word(t, i * 0.3, i * 0.3 + 0.25, 1) for i, t in enumerate(text.split())]
    cues = build_cues(w, SubtitleOptions(max_line_width=42, max_line_count=1))
    assert cues[0].text == "we went down to the river,"
    # greedy wrapping at 30 would give 29 + 4 characters; balanced, the longer line is 19
    assert layout("aaaa bbbb cccc dddd eeee ffff gggg", 30) == ["aaaa bbbb cccc dddd", "eeee ffff gggg"]
    assert layout("flower-fattened sauce", 16) == ["flower-fattened", "sauce"]  # a hyphenated word stays whole


def test_subtitle_options_are_checked():
    with pytest.raises(ConfigError, match="--max-line-count"):
        SubtitleOptions(max_line_count=0).validate()
    with pytest.raises(ConfigError, match="--max-cue-seconds"):
        SubtitleOptions(max_cue_seconds=0.2).validate()


def test_records_without_words_keep_one_cue_per_segment():
    record = {"segments": [{"start": 0.5, "end": 9.0, "text": "x " * 40}, {"start": 10.0, "end": 11.0, "text": "Hi."}]}
    cues = record_cues(record)
    assert [(c.start, c.end) for c in cues] == [(0.5, 9.0), (10.0, 11.0)]


def _srt_vtt_roundtrip(record: dict, options: SubtitleOptions):
    import srt
    import webvtt

    subs = list(srt.parse(to_srt(record, options)))
    vtt = list(webvtt.from_buffer(io.StringIO(to_vtt(record, options))))
    assert len(subs) == len(vtt) > 0
    for s, v in zip(subs, vtt):
        lines = s.content.split("\n")
        assert lines == v.text.split("\n")
        assert len(lines) <= options.max_line_count and all(len(x) <= options.max_line_width for x in lines)
        seconds = (s.end - s.start).total_seconds()
        assert 0 <= seconds <= options.max_cue_seconds
        assert srt.timedelta_to_srt_timestamp(s.start).replace(",", ".") == v.start
    return subs


def test_srt_and_vtt_from_real_word_output_parse_and_respect_the_limits(shared_data):
    require_whisper_package(TINY)
    from asrtune.data.audio import load_audio
    from asrtune.inference import load_recognizer
    from asrtune.transcription.longform import transcribe_audio

    root = shared_data / "librispeech-test-clean-40"
    utts = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()[:3]]
    gap = np.zeros(8000, np.float32)
    audio = np.concatenate([x for u in utts for x in (load_audio(root / u["audio_filepath"]), gap)])
    segments = transcribe_audio(load_recognizer(TINY, engine="ct2"), audio, word_timestamps=True)
    record = {"segments": [s.to_dict() for s in segments]}
    options = SubtitleOptions()
    subs = _srt_vtt_roundtrip(record, options)
    words = [w for s in segments for w in s.words]
    assert " ".join(s.content.replace("\n", " ") for s in subs).split() == [w.text for w in words]
    narrow = SubtitleOptions(max_line_width=20, max_line_count=1, max_cue_seconds=2.0)
    assert len(_srt_vtt_roundtrip(record, narrow)) > len(subs)
