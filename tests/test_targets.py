"""Whisper training targets: timestamp tokens, timestamped/prompted/no-speech sequences, the
per-epoch choice of each, and real training steps with all three on (real tiny.en, real audio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.errors import ConfigError
from asrtune.inference.whisper_common import build_prompt, timestamp_token
from asrtune.models.whisper_spec import timestamp_token_id
from asrtune.training import TrainConfig, train
from asrtune.training.adapters.base import IGNORE_INDEX
from asrtune.training.no_speech import KINDS, MAX_SECONDS, MIN_SECONDS, no_speech_clip, no_speech_utterances
from asrtune.training.targets import WhisperTargets, decode_target, pick_key, picked, utterance_segments

from conftest import require_whisper_package
from test_train import tiny_whisper  # noqa: F401  (fixture: random 2+2-layer Whisper with the real tokenizer)

torch.set_num_threads(2)

MODELS = {"openai/whisper-tiny.en": 51864, "openai/whisper-base": 51865}  # model -> vocabulary size
V3_NOTIMESTAMPS = 50364  # large-v3: one more language token (<|yue|>) shifts every special token by one


@pytest.fixture(scope="module", params=list(MODELS))
def tokenizer(request):
    require_whisper_package(request.param)
    from transformers import AutoTokenizer

    from asrtune.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(request.param).path)
    tok.vocab_size_of_model = MODELS[request.param]
    return tok


def targets_for(tok) -> WhisperTargets:
    return WhisperTargets(tok, build_prompt(tok, tok.vocab_size_of_model, None, None).sot)


def sot_text(tok) -> str:
    """The prefix without <|notimestamps|>, as the tokenizer spells it."""
    return "<|startoftranscript|>" + ("<|en|><|transcribe|>" if tok.vocab_size_of_model > 51864 else "")


# --- timestamp tokens ---------------------------------------------------------------------------


def test_timestamp_tokens_follow_notimestamps_and_end_the_vocabulary(tokenizer):
    notimestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert timestamp_token(tokenizer, 0.0) == notimestamps + 1
    assert timestamp_token(tokenizer, 30.0) == tokenizer.vocab_size_of_model - 1  # <|30.00|> is the last token
    assert tokenizer.decode([timestamp_token(tokenizer, 1.234)], decode_with_timestamps=True) == "<|1.24|>"


def test_timestamp_arithmetic_for_the_v3_vocabulary():
    large_v3_vocab = 51866
    assert timestamp_token_id(V3_NOTIMESTAMPS, 0.0) == V3_NOTIMESTAMPS + 1
    assert timestamp_token_id(V3_NOTIMESTAMPS, 30.0) == large_v3_vocab - 1
    assert timestamp_token_id(V3_NOTIMESTAMPS, 45.0) == large_v3_vocab - 1  # clamped to the window
    assert timestamp_token_id(V3_NOTIMESTAMPS, 0.011) == V3_NOTIMESTAMPS + 2  # nearest 0.02 s step


# --- sequences ----------------------------------------------------------------------------------


def test_plain_and_timestamped_targets_decode_to_whisper_formats(tokenizer):
    t = targets_for(tokenizer)
    plain = t.plain("It's Ann's plum.")
    assert decode_target(tokenizer, plain.ids) == sot_text(tokenizer) + "<|notimestamps|> It's Ann's plum.<|endoftext|>"
    stamped = t.timestamped("It's Ann's plum.", duration=3.107)
    assert decode_target(tokenizer, stamped.ids) == sot_text(tokenizer) + "<|0.00|> It's Ann's plum.<|3.10|><|endoftext|>"
    long = t.timestamped("x", duration=41.0)
    assert decode_target(tokenizer, long.ids).endswith("<|30.00|><|endoftext|>")
    # the first predicted token is the first timestamp: the loss covers timestamp tokens
    labels = stamped.labels(IGNORE_INDEX)
    assert labels[stamped.given - 1] == timestamp_token(tokenizer, 0.0)
    assert labels[-2] == timestamp_token(tokenizer, 3.1)


def test_inner_segments_give_one_timestamp_pair_each(tokenizer):
    segments = utterance_segments({"segments": [{"start": 0.226, "end": 1.5, "text": "Hello"},
                                                {"start": 1.9, "end": 3.0, "text": "there"}]}, duration=3.2)
    target = targets_for(tokenizer).timestamped("Hello there", 3.2, segments)
    assert decode_target(tokenizer, target.ids) == sot_text(tokenizer) + "<|0.22|> Hello<|1.50|><|1.90|> there<|3.00|><|endoftext|>"


def test_overlapping_or_missing_segments_fall_back_to_the_whole_utterance():
    assert utterance_segments({"segments": [{"start": 0, "end": 2, "text": "a"}, {"start": 1, "end": 3, "text": "b"}]}, 3) is None
    assert utterance_segments({"segments": [{"start": 0, "text": "a"}]}, 3) is None
    assert utterance_segments({"words": [{"start": 0, "end": 1, "word": "a"}]}, 3) is None


def test_prompt_is_given_not_predicted_and_truncated(tokenizer):
    t = targets_for(tokenizer)
    target = t.plain("Fourth sentence.", prompt="Third sentence.")
    text = decode_target(tokenizer, target.ids)
    assert text == "<|startofprev|> Third sentence." + sot_text(tokenizer) + "<|notimestamps|> Fourth sentence.<|endoftext|>"
    labels = target.labels(IGNORE_INDEX)
    first_text = tokenizer.encode(" Fourth sentence.", add_special_tokens=False)[0]
    assert all(label == IGNORE_INDEX for label in labels[: target.given - 1])
    assert labels[target.given - 1] == first_text
    assert len(labels) == len(target.decoder_input_ids)
    # a prompt longer than Whisper's limit keeps its last tokens, half the context at most
    long = t.plain("Next.", prompt=" ".join(f"word{i}" for i in range(400)))
    prev = long.ids[: long.ids.index(t.sot[0])]
    assert len(prev) == 448 // 2 and decode_target(tokenizer, prev).endswith("word399")
    # the limit is half of the decoder's context (clip_prompt_tokens, as in decoding) ...
    short = WhisperTargets(tokenizer, t.sot, max_tokens=32)
    prompt = " ".join(f"w{i}" for i in range(100))
    assert short.plain("Next.", prompt=prompt).ids.index(t.sot[0]) == 32 // 2
    # ... and the prompt gets no more than the room the target leaves
    tight = short.plain(" ".join(["Next."] * 8), prompt=prompt)
    assert len(tight.decoder_input_ids) == 32 and tight.ids.index(t.sot[0]) < 32 // 2


def test_no_speech_target_ends_after_the_forced_prefix_and_trains_no_speech_at_sot(tokenizer):
    t = targets_for(tokenizer)
    no_speech, eot = (tokenizer.convert_tokens_to_ids(x) for x in ("<|nocaptions|>", "<|endoftext|>"))
    plain = t.no_speech_target()
    assert decode_target(tokenizer, plain.ids) == sot_text(tokenizer) + "<|notimestamps|><|endoftext|>"
    # SOT -> no-speech (where decoders read its probability); the forced prefix -> EOT at once
    assert plain.labels(IGNORE_INDEX) == [no_speech] + [IGNORE_INDEX] * (len(t.sot) - 2) + [eot]
    timestamped = t.no_speech_target(timestamped=True)
    assert decode_target(tokenizer, timestamped.ids) == sot_text(tokenizer) + "<|0.00|><|endoftext|>"
    assert timestamped.labels(IGNORE_INDEX)[0] == no_speech and timestamped.labels(IGNORE_INDEX)[-1] == eot
    assert len(plain.labels(IGNORE_INDEX)) == len(plain.decoder_input_ids)


# --- choices over an epoch ----------------------------------------------------------------------


def test_fractions_pick_their_share_deterministically(shared_data):
    keys = [pick_key(u.audio_filepath, u.offset) for u in load_manifest(shared_data / "speechocean762" / "train.jsonl")]
    for fraction in (0.05, 0.3, 0.5):
        chosen = [picked(fraction, 0, 0, "timestamps", k) for k in keys]
        assert abs(sum(chosen) / len(keys) - fraction) < 0.035, fraction  # 1200 draws: ~2.5 standard errors
        assert chosen == [picked(fraction, 0, 0, "timestamps", k) for k in keys]  # same seed and epoch: same picks
    epoch0 = [picked(0.5, 0, 0, "timestamps", k) for k in keys]
    assert epoch0 != [picked(0.5, 0, 1, "timestamps", k) for k in keys]  # a fresh choice every epoch
    assert epoch0 != [picked(0.5, 0, 0, "prompt", k) for k in keys]  # prompts are chosen independently


# --- no-speech clips ----------------------------------------------------------------------------


def test_no_speech_clips_are_deterministic_quiet_and_cover_every_kind(tmp_path):
    clips = [no_speech_clip(7, i) for i in range(10)]
    assert {c.kind for c in clips} == set(KINDS)
    assert all(MIN_SECONDS <= c.duration <= MAX_SECONDS for c in clips)
    assert all(float(np.sqrt(np.mean(c.samples**2))) < 0.02 for c in clips)  # below -34 dBFS: no speech-level energy
    assert not np.array_equal(no_speech_clip(8, 0).samples[:100], clips[0].samples[:100])
    utts = no_speech_utterances(3, seed=7, folder=tmp_path)
    stamps = [Path(u.audio_filepath).stat().st_mtime_ns for u in utts]
    again = no_speech_utterances(3, seed=7, folder=tmp_path)  # a second run reuses the files: stable cache keys
    assert [Path(u.audio_filepath).stat().st_mtime_ns for u in again] == stamps
    assert all(u.text == "" and u.extra["no_speech"] for u in utts)


def test_fractions_outside_0_1_are_refused():
    with pytest.raises(ConfigError, match="--timestamp-fraction"):
        TrainConfig(model="m", train=["t.jsonl"], out="o", timestamp_fraction=1.5).validate()
    with pytest.raises(ConfigError, match="--prompt-terms nope.txt"):
        TrainConfig(model="m", train=["t.jsonl"], out="o", prompt_terms="nope.txt").validate()


# --- the adapter and real training steps --------------------------------------------------------


@pytest.fixture(scope="module")
def so8(shared_data, tmp_path_factory) -> Path:
    """The first 8 speechocean762 training clips (4 speakers' consecutive utterances), absolute paths."""
    path = tmp_path_factory.mktemp("so8") / "train.jsonl"
    write_manifest(path, load_manifest(shared_data / "speechocean762" / "train.jsonl")[:8], relative=False)
    return path


@pytest.mark.slow
def test_training_steps_with_all_three_on_save_a_model(tiny_whisper, so8, tmp_path):
    """Fast: the random 2+2-layer Whisper (real tiny.en tokenizer), real audio, all three modes."""
    run = tmp_path / "run"
    result = train(TrainConfig(model=str(tiny_whisper), train=[str(so8)], out=str(run), max_steps=2, batch_size=5,
                               lr=1e-3, warmup_steps=0, timestamp_fraction=0.5, prompt_fraction=0.5, no_speech_fraction=0.25,
                               progress=False, threads=2, cache_dir=str(tmp_path / "enc")))
    assert result.steps == 2 and (run / "final" / "model.safetensors").is_file()
    assert "with 2 generated no-speech clips" in (run / "train.log").read_text()


@pytest.mark.slow
def test_pack_windows_adds_the_first_manifests_clips_as_timed_windows(tiny_whisper, so8, tmp_path, monkeypatch):
    from asrtune.data.pack import plan_windows

    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    clips = load_manifest(so8)
    expected = plan_windows(clips)

    def run(name: str):
        return train(TrainConfig(model=str(tiny_whisper), train=[str(so8)], out=str(tmp_path / name), max_steps=1,
                                 batch_size=4, lr=1e-3, warmup_steps=0, no_speech_fraction=0.0, pack_windows=True,
                                 progress=False, threads=2, cache_dir=str(tmp_path / "enc")))

    run("a")
    assert f"with {len(expected)} packed windows)" in (tmp_path / "a" / "train.log").read_text()
    (folder,) = (tmp_path / "cache" / "packed-windows").iterdir()
    windows = load_manifest(folder / "manifest.jsonl")
    assert [[p["text"] for p in w.extra["segments"]] for w in windows] == [[u.text for u in ws] for ws in expected]
    assert sum(len(w.extra["segments"]) for w in windows) == len(clips)  # every clip in exactly one window
    assert all(Path(w.audio_filepath).is_file() for w in windows)
    written = (folder / "manifest.jsonl").stat().st_mtime_ns
    run("b")  # the same clips: the windows are read back, not written again
    assert (folder / "manifest.jsonl").stat().st_mtime_ns == written
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["pack_windows"] is True


@pytest.mark.slow
def test_real_training_steps_with_all_three_on(so8, tmp_path):
    require_whisper_package()
    from asrtune.models import load_whisper, resolve_model

    run = tmp_path / "run"
    config = TrainConfig(model="openai/whisper-tiny.en", train=[str(so8)], out=str(run), max_steps=3, batch_size=4,
                         lr=1e-5, warmup_steps=0, timestamp_fraction=0.5, prompt_fraction=0.5, no_speech_fraction=0.25,
                         progress=False, threads=2, cache_dir=str(tmp_path / "enc"))
    result = train(config)
    assert result.steps == 3 and result.cache["used"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["timestamp_fraction"], saved["prompt_fraction"], saved["no_speech_fraction"]) == (0.5, 0.5, 0.25)
    assert "with 2 generated no-speech clips" in (run / "train.log").read_text()
    model, _ = load_whisper(resolve_model(str(run / "final")))
    assert model.config.vocab_size == 51864


def test_adapter_mixes_modes_and_pads_batches_of_different_prefix_lengths(so8):
    require_whisper_package()
    from asrtune.models import resolve_model
    from asrtune.training.adapters.whisper import WhisperAdapter

    config = TrainConfig(model="openai/whisper-tiny.en", train=[str(so8)], out="unused", timestamp_fraction=0.5,
                         prompt_fraction=0.5, no_speech_fraction=0.25)
    adapter = WhisperAdapter.from_resolved(resolve_model(config.model), config)
    utts = load_manifest(so8)
    pairs = [(u, u.text.capitalize()) for u in utts]
    added = adapter.prepare_training([pairs])
    assert len(added) == 2 and all(t == "" for _, t in added)
    # the previous utterance of the same speaker is the prompt; a speaker's first has none
    assert adapter.previous_text.get(id(utts[0])) is None
    same = [i for i in range(1, 8) if utts[i].speaker == utts[i - 1].speaker]
    assert same and all(adapter.previous_text[id(utts[i])] == pairs[i - 1][1] for i in same)
    encoded = np.zeros(adapter.cache_shape(), dtype=np.float16)
    examples, texts = [], []
    for utt, text in pairs + added:
        examples.append(adapter.make_example(utt, text, encoded=encoded))
        texts.append(decode_target(adapter.tokenizer, examples[-1]["decoder_input_ids"]))
    assert any("<|0.00|>" in t for t in texts) and any("<|notimestamps|>" in t for t in texts)
    assert any(t.startswith("<|startofprev|>") for t in texts)
    no_speech = [e for (u, _), e in zip(pairs + added, examples) if not u.text]
    nocaptions = adapter.tokenizer.convert_tokens_to_ids("<|nocaptions|>")
    assert len(no_speech) == 2 and all(e["labels"][0] == nocaptions for e in no_speech)
    assert sum(t in ("<|startoftranscript|><|notimestamps|>", "<|startoftranscript|><|0.00|>") for t in texts) == 2
    batch = adapter.collate(examples)
    for i, e in enumerate(examples):  # right padding: every row starts at position 0, padding is ignored
        n = len(e["decoder_input_ids"])
        assert batch["decoder_input_ids"][i, :n].tolist() == e["decoder_input_ids"]
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all()
    loss = adapter.loss(adapter.model, batch)
    assert torch.isfinite(loss)


def test_prompt_terms_auto_prompts_with_the_training_vocabulary(so8):
    require_whisper_package()
    from asrtune.data.terms import domain_vocabulary
    from asrtune.models import resolve_model
    from asrtune.training.adapters.whisper import AUTO_PROMPT_TERMS, WhisperAdapter

    config = TrainConfig(model="openai/whisper-tiny.en", train=[str(so8)], out="unused", prompt_terms="auto").validate()
    adapter = WhisperAdapter.from_resolved(resolve_model(config.model), config)
    pairs = [(u, u.text.capitalize()) for u in load_manifest(so8)]
    adapter.prepare_training([pairs])
    vocabulary = domain_vocabulary([t for _, t in pairs], AUTO_PROMPT_TERMS)
    assert adapter.terms == vocabulary and "the" not in vocabulary
    prompts = [adapter._prompt(u) for u, _ in pairs]
    assert all(p and set(p.split(", ")) <= set(vocabulary) for p in prompts)
    assert len(set(prompts)) > 1  # a different subset per utterance


@pytest.mark.slow
def test_timestamp_tuned_model_keeps_monotonic_timestamps_in_faster_whisper(shared_data, tmp_path):
    require_whisper_package()
    from faster_whisper import WhisperModel

    train_m = tmp_path / "train.jsonl"
    write_manifest(train_m, load_manifest(shared_data / "speechocean762" / "train.jsonl")[:64], relative=False)
    run = tmp_path / "run"
    # the default encoder cache: these clips are usually cached by earlier runs already
    train(TrainConfig(model="openai/whisper-tiny.en", train=[str(train_m)], out=str(run), max_steps=8, batch_size=8,
                      lr=3e-5, warmup_steps=2, timestamp_fraction=0.5, progress=False, threads=2, export_ct2=True))
    model = WhisperModel(str(run / "best-ct2"), device="cpu", compute_type="int8", cpu_threads=2)
    clips = load_manifest(shared_data / "librispeech-test-clean-40" / "manifest.jsonl")[:3]
    for utt in clips:
        segments = list(model.transcribe(utt.audio_filepath, beam_size=1, language="en")[0])
        assert segments, utt.audio_filepath
        times = [t for s in segments for t in (s.start, s.end)]
        assert times == sorted(times), times
        assert times[0] >= 0 and times[-1] <= utt.duration + 0.5, (times, utt.duration)
        assert any(s.text.strip() for s in segments)
