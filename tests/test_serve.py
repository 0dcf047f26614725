"""`asrtune serve`: the real server (uvicorn on a free local port, real tiny.en through CTranslate2,
real LibriSpeech clips) driven by the official ``openai`` client.

The server's transcripts must equal ``asrtune.transcription.transcribe`` on the same files; SRT and
VTT answers are checked with independent parsers (``srt``, ``webvtt``).
"""

from __future__ import annotations

import io
import json
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
srt = pytest.importorskip("srt")
webvtt = pytest.importorskip("webvtt")
httpx = pytest.importorskip("httpx")

from asrtune.inference.options import RecognizerOptions  # noqa: E402
from asrtune.serving.batching import Admission, Batcher  # noqa: E402
from asrtune.serving.settings import ServerSettings  # noqa: E402

MODEL = "openai/whisper-tiny.en"
KEY = "test-key"
CLIPS = ["1089-134686-0000", "1089-134686-0001", "1089-134686-0004", "1089-134686-0007"]
PROMPT = "Stew, turnips, carrots and mutton."
SETTINGS = dict(api_key=KEY, max_upload_mb=2.0, max_audio_seconds=60.0, max_queue=8, max_wait_ms=30.0)


# --- the batcher on its own (no model) --------------------------------------------------------


def test_batcher_joins_queued_jobs_of_one_key_into_one_call():
    calls = []
    batcher = Batcher(lambda key, clips: calls.append((key, list(clips))) or [f"{key}{c}" for c in clips], max_batch_size=8)
    futures = [batcher.submit("a", [1, 2]), batcher.submit("b", [3]), batcher.submit("a", [4])]
    batcher.start()  # the jobs were all queued before the worker started, so they are batched
    assert [f.result(10) for f in futures] == [["a1", "a2"], ["b3"], ["a4"]]
    batcher.close()
    assert calls == [("a", [1, 2, 4]), ("b", [3])]


def test_batcher_isolates_a_failing_job_and_drains_on_close():
    def run(key, clips):
        if "bad" in clips:
            raise ValueError("cannot decode")
        return [c.upper() for c in clips]

    batcher = Batcher(run, max_batch_size=2)
    good, bad, late = batcher.submit("k", ["x"]), batcher.submit("k", ["bad"]), batcher.submit("k", ["y", "z"])
    batcher.start()
    batcher.close()  # returns after every queued job has been decoded
    assert good.result(0) == ["X"] and late.result(0) == ["Y", "Z"]
    with pytest.raises(ValueError, match="cannot decode"):
        bad.result(0)
    with pytest.raises(RuntimeError):
        batcher.submit("k", ["after close"])


def test_admission_bounds_requests_in_flight():
    gate = Admission(2)
    assert [gate.try_enter() for _ in range(3)] == [True, True, False]
    gate.leave()
    assert gate.try_enter()


def test_serve_cli_rejects_bad_settings_in_one_line(capsys):
    from asrtune.cli import main

    assert main(["serve", "--model", MODEL, "--max-queue", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "asrtune serve: error: --max-queue must be >= 1, got 0"


# --- the real server ---------------------------------------------------------------------------


@contextmanager
def running(app):
    """Serve ``app`` with uvicorn in a thread on a free port; yields the base URL once it is ready."""
    # Bound and listening before uvicorn starts: early clients wait in the backlog, so there is no race.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert app.state.ready.wait(120), "server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


@pytest.fixture(scope="module")
def recognizer(tiny_recognizer):
    return tiny_recognizer("ct2")  # loaded once per session (tests/conftest.py)


@pytest.fixture(scope="module")
def clips(shared_data) -> dict[str, Path]:
    folder = shared_data / "librispeech-test-clean-40"
    return {utt: next(folder.glob(f"audio/*/{utt}.flac")) for utt in CLIPS}


def reference(recognizer, paths, out_dir) -> dict[str, dict]:
    """``asrtune transcribe``'s records (the Python API), keyed by file name."""
    from asrtune.transcription import transcribe

    transcribe([str(p) for p in paths], recognizer, out_dir, formats="json", progress=False)
    lines = (Path(out_dir) / "transcripts.jsonl").read_text().splitlines()
    return {Path(r["path"]).name: r for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def expected(recognizer, clips, tmp_path_factory):
    return reference(recognizer, clips.values(), tmp_path_factory.mktemp("ref"))


@pytest.fixture(scope="module")
def server(recognizer):
    from asrtune.serving.app import create_app

    app = create_app(recognizer, RecognizerOptions(engine="ct2"), ServerSettings(**SETTINGS))
    with running(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[1] + "/v1", api_key=KEY, max_retries=0, timeout=120)


def create(client, path: Path, **kwargs):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=(path.name, f.read()), **kwargs)


def test_health_and_models_list_the_served_model(server, client):
    health = httpx.get(server[1] + "/health").json()
    assert health["status"] == "ok" and health["model"] == MODEL
    (model,) = client.models.list().data
    assert model.id == MODEL
    assert model.model_extra["engine"] == "ct2"
    assert model.model_extra["decoding"]["beam_size"] == 1
    assert model.model_extra["server"]["api_key"] == "set"  # never the key itself


@pytest.mark.kernels
def test_concurrent_requests_equal_asrtune_transcribe(server, client, clips, expected):
    app = server[0]
    before = app.state.batcher.clips
    with ThreadPoolExecutor(len(clips)) as pool:
        texts = list(pool.map(lambda p: create(client, p).text, clips.values()))
    assert texts == [expected[p.name]["text"] for p in clips.values()]
    assert app.state.batcher.clips - before == len(clips)  # each clip decoded exactly once


def test_text_srt_vtt_and_verbose_json_carry_the_same_transcript(client, clips, expected):
    path = clips["1089-134686-0000"]
    record = expected[path.name]
    assert create(client, path, response_format="text") == record["text"] + "\n"

    cues = list(srt.parse(create(client, path, response_format="srt")))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == record["text"]
    assert [(c.start.total_seconds(), c.end.total_seconds()) for c in cues] == [
        (s["start"], s["end"]) for s in record["segments"]]

    vtt = webvtt.from_buffer(io.StringIO(create(client, path, response_format="vtt")))
    assert " ".join(c.text.replace("\n", " ") for c in vtt) == record["text"]

    verbose = create(client, path, response_format="verbose_json", temperature=0.7)
    assert verbose.text == record["text"] and verbose.language == "english"
    assert verbose.duration == pytest.approx(record["duration"])
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [
        (s["start"], s["end"], s["text"]) for s in record["segments"]]
    # the decoder's own numbers, not placeholders: no loop here, so no sampling either
    assert all(s.temperature == 0.0 and 0 < s.compression_ratio < 2.4 and s.avg_logprob < 0 for s in verbose.segments)


def test_prompt_is_used_per_request(recognizer, client, clips, tmp_path):
    from asrtune.inference import load_recognizer

    path = clips["1089-134686-0000"]
    prompted = load_recognizer(MODEL, engine="ct2", prompt=PROMPT)
    want = reference(prompted, [path], tmp_path)[path.name]["text"]
    assert create(client, path, prompt=PROMPT).text == want


def test_long_audio_is_segmented_like_asrtune_transcribe(recognizer, client, shared_data, tmp_path):
    import soundfile as sf

    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio

    audio = load_audio(shared_data / "longform" / "librispeech-1089-134686.flac", duration=50.0)
    path = tmp_path / "long.flac"
    sf.write(path, audio, SAMPLE_RATE_HZ)
    record = reference(recognizer, [path], tmp_path / "ref")[path.name]
    assert len(record["segments"]) >= 2  # 50 s: cut at a pause by the VAD
    verbose = create(client, path, response_format="verbose_json")
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [
        (s["start"], s["end"], s["text"]) for s in record["segments"]]


def test_word_timestamps(recognizer, client, clips):
    path = clips["1089-134686-0001"]
    verbose = create(client, path, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    starts = [w.start for w in verbose.words]
    assert verbose.words and starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= verbose.duration + 0.01 for w in verbose.words)


def upload_files() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("asrtune-upload-*")}


def test_undecodable_file_is_400_with_the_reason(client, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are meeting notes, not audio\n" * 20)
    before = upload_files()
    with pytest.raises(openai.BadRequestError) as info:
        create(client, bad)
    error = info.value.response.json()["error"]
    assert error["param"] == "file" and error["code"] == "invalid_file"
    assert error["message"].startswith("cannot decode notes.wav: ")
    assert "asrtune-upload-" not in error["message"] and tempfile.gettempdir() not in error["message"]
    assert upload_files() == before  # the spooled upload did not outlive the request


def test_missing_or_wrong_key_is_401(server, clips):
    url, path = server[1], clips["1089-134686-0001"]
    wrong = openai.OpenAI(base_url=url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        create(wrong, path)
    assert info.value.response.json()["error"]["code"] == "invalid_api_key"
    response = httpx.post(url + "/v1/audio/transcriptions", files={"file": path.open("rb")}, data={"model": "x"})
    assert response.status_code == 401
    assert response.json()["error"] == {"message": "missing API key: send 'Authorization: Bearer KEY'",
                                        "type": "authentication_error", "param": None, "code": "missing_api_key"}
    assert httpx.get(url + "/v1/models").status_code == 401


def test_too_large_upload_or_audio_is_413(client, tmp_path):
    import soundfile as sf

    big = tmp_path / "big.wav"
    big.write_bytes(np.random.default_rng(0).bytes(3 * 1024 * 1024))  # over max_upload_mb=2
    with pytest.raises(openai.APIStatusError) as info:
        create(client, big)
    assert info.value.status_code == 413 and info.value.response.json()["error"]["code"] == "file_too_large"

    long = tmp_path / "long.flac"
    sf.write(long, np.zeros(90 * 16_000, dtype=np.float32), 16_000)  # 90 s of silence: a few KiB, over 60 s
    with pytest.raises(openai.APIStatusError) as info:
        create(client, long)
    assert info.value.status_code == 413 and info.value.response.json()["error"]["code"] == "audio_too_long"


def test_full_queue_is_503_with_retry_after(server, client, clips):
    app, path = server[0], clips["1089-134686-0001"]
    gate = app.state.admission
    held = 0
    while gate.try_enter():  # take every slot, as max_queue requests in flight would
        held += 1
    try:
        assert held == SETTINGS["max_queue"]
        with pytest.raises(openai.APIStatusError) as info:
            create(client, path)
        assert info.value.status_code == 503
        assert info.value.response.headers["retry-after"] == "1"
        assert info.value.response.json()["error"]["code"] == "queue_full"
    finally:
        for _ in range(held):
            gate.leave()
    assert create(client, path).text  # served again once there is room


def test_shutdown_finishes_the_request_in_flight(recognizer, clips, expected):
    from asrtune.serving.app import create_app

    app = create_app(recognizer, RecognizerOptions(engine="ct2"), ServerSettings(**SETTINGS))
    path = clips["1089-134686-0000"]
    with ThreadPoolExecutor(1) as pool, running(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
        answer = pool.submit(create, client, path)
        assert app.state.admission.wait_for(1, timeout=60)  # the request is inside the server
        # leaving the block shuts down (as uvicorn does on Ctrl-C / SIGTERM) with the request in flight
    assert answer.result(timeout=120).text == expected[path.name]["text"]
    assert not app.state.batcher._thread.is_alive()  # the model worker drained and stopped


def test_bad_form_fields_are_400_naming_the_field(client, clips):
    path = clips["1089-134686-0001"]
    with pytest.raises(openai.BadRequestError) as info:
        create(client, path, response_format="docx")
    assert info.value.response.json()["error"]["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as info:
        create(client, path, language="xx")
    assert info.value.response.json()["error"]["param"] == "language"


# --- Whisper's limits through the server (tests/test_decoding_limits.py has the library side) ------


def openai_error(call) -> dict:
    """The OpenAI error object of a request that must fail with HTTP 400."""
    with pytest.raises(openai.BadRequestError) as info:
        call()
    body = info.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_impossible_prompt_language_and_temperature_are_400(client, clips):
    path = clips["1089-134686-0001"]
    error = openai_error(lambda: create(client, path, language="de"))  # tiny.en is English-only
    assert error["param"] == "language" and "English-only" in error["message"]
    error = openai_error(lambda: create(client, path, language="klingon"))
    assert error["param"] == "language" and "not a Whisper language" in error["message"]
    for temperature in (5, -1, float("nan")):
        assert openai_error(lambda: create(client, path, temperature=temperature))["param"] == "temperature"
    assert create(client, path, language="English").text  # a language name in any case is fine


@pytest.mark.slow
def test_over_long_and_special_token_prompts_through_the_server(client, clips, tiny_recognizer, shared_data, tmp_path):
    """A 600- and a 20,000-word prompt answer what the prompt's last 223 tokens answer (as
    asrtune transcribe does with them), and special-token text is read as text."""
    from prompt_helpers import SPECIAL_PROMPT, long_prompt, reference_text, tail_prompt, wer

    from asrtune.inference.whisper_common import using_prefix

    path = clips["1089-134686-0000"]
    rec = tiny_recognizer("ct2")  # the served recogniser, idle between requests
    for words in (20_000, 600):  # each prompt against its own last 223 tokens: the two tails differ
        prompt = long_prompt(rec.tokenizer, shared_data, words)
        tail_text = tail_prompt(rec.tokenizer, prompt)
        tail = create(client, path, prompt=tail_text).text
        assert create(client, path, prompt=prompt).text == tail
        with using_prefix(rec, rec.build_prefix(tail_text, None)):  # the pipeline the server runs
            assert tail == reference(rec, [path], tmp_path / str(words))[path.name]["text"]
    special = create(client, path, prompt=SPECIAL_PROMPT).text
    assert wer(reference_text(shared_data), special) < 0.2 and "<|" not in special


@pytest.mark.slow
def test_long_prompt_through_a_server_on_the_hf_engine(tiny_recognizer, clips, shared_data):
    from asrtune.serving.app import create_app
    from prompt_helpers import long_prompt, tail_prompt

    rec = tiny_recognizer("hf")
    app = create_app(rec, RecognizerOptions(engine="hf"), ServerSettings(**SETTINGS))
    path = clips["1089-134686-0000"]
    prompt = long_prompt(rec.processor.tokenizer, shared_data)
    with running(app) as url:
        hf_client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=300)
        assert create(hf_client, path, prompt=prompt).text == create(hf_client, path, prompt=tail_prompt(
            rec.processor.tokenizer, prompt)).text
        error = openai_error(lambda: create(hf_client, path, language="de"))
        assert error["param"] == "language"
