"""The FastAPI app: ``POST /v1/audio/transcriptions``, ``GET /v1/models``, ``GET /health``.

>>> app = create_app("openai/whisper-tiny.en", RecognizerOptions(engine="ct2"), ServerSettings())  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                                                 # doctest: +SKIP

A request is handled on the event loop only where it does not block: the key and size checks,
admission (at most ``max_queue`` requests inside; 503 + Retry-After beyond) and parsing the
multipart body (Starlette spools the file to disk). Decoding the upload, voice-activity
segmentation and waiting for the model run in Starlette's thread pool; the model itself runs in
the :class:`~asrtune.serving.batching.Batcher`'s single worker thread, which batches segments of
concurrent requests. On shutdown (Ctrl-C, SIGTERM) uvicorn stops accepting and waits for the
requests in flight; the lifespan then drains the batcher and stops its thread.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from asrtune import __version__
from asrtune.errors import AsrtuneError
from asrtune.inference import load_recognizer
from asrtune.inference.options import RecognizerOptions
from asrtune.serving.audio import read_upload, too_large
from asrtune.serving.batching import Admission, Batcher, QueuedRecognizer
from asrtune.serving.errors import AUTHENTICATION, SERVER, APIError, queue_full
from asrtune.serving.formats import check_format, render
from asrtune.serving.prompts import PromptSwitch
from asrtune.serving.settings import ServerSettings
from asrtune.serving.transcripts import transcript_record

log = logging.getLogger(__name__)

MS_PER_S = 1000.0
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # form fields and part headers on top of the file itself


@dataclass
class ServedModel:
    """What the app serves: the loaded recogniser, its options and the model's id for /v1/models."""

    recognizer: object
    options: RecognizerOptions
    model_id: str
    created: int = 0


def load_served_model(model, options: RecognizerOptions) -> ServedModel:
    """Load ``model`` (a name, folder or run dir; or an already loaded Recognizer) with ``options``."""
    options.validate()
    if callable(getattr(model, "transcribe", None)):
        return ServedModel(model, options, str(model.name), int(time.time()))

    return ServedModel(load_recognizer(model, options), options, str(model), int(time.time()))


def create_app(model, options: RecognizerOptions | None = None, settings: ServerSettings | None = None) -> "FastAPI":
    """The transcription app for ``model`` (loaded now, so a bad model fails before serving).

    ``model`` is a model name/folder/run dir or an already loaded recogniser (tests share one
    between apps; only one app may serve it at a time, the recogniser not being thread-safe).
    """
    options = options or RecognizerOptions()
    settings = (settings or ServerSettings()).validate()
    served = load_served_model(model, options)
    switch = PromptSwitch(served.recognizer, served.options)

    def run_batch(key, clips):
        (prompt_key, method, word_timestamps) = key
        with switch.using(prompt_key):
            if method == "decode":
                return served.recognizer.decode(clips, word_timestamps=word_timestamps)
            return served.recognizer.transcribe(clips)

    batcher = Batcher(run_batch, settings.max_batch_size, settings.max_wait_ms / MS_PER_S)
    ready = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        ready.set()
        try:
            yield
        finally:
            await run_in_threadpool(batcher.close)  # every queued segment is decoded first

    app = FastAPI(title="asrtune", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible speech-to-text with a model tuned by asrtune")
    app.state.served, app.state.settings, app.state.batcher = served, settings, batcher
    app.state.admission, app.state.ready, app.state.prompts = Admission(settings.max_queue), ready, switch
    _install_error_handlers(app)
    _install_routes(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return APIError(exc.status_code, str(exc.detail), code=None).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed: %s", exc)  # a bug, not the client's fault: keep the traceback in the log
        return APIError(500, f"internal error: {type(exc).__name__}: {exc}", type=SERVER, code="internal_error").response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return APIError(400, first.get("msg", "invalid request"), param=param).response()


def _check_key(request: Request) -> None:
    expected = request.app.state.settings.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not given:
        raise APIError(401, "missing API key: send 'Authorization: Bearer KEY'", type=AUTHENTICATION, code="missing_api_key")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise APIError(401, "incorrect API key", type=AUTHENTICATION, code="invalid_api_key")


def _install_routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health(request: Request) -> dict:
        state = request.app.state
        return {"status": "ok", "model": state.served.model_id, "in_flight": state.admission.in_flight,
                "max_queue": state.settings.max_queue, "model_calls": state.batcher.calls,
                "segments_decoded": state.batcher.clips}

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        _check_key(request)
        return {"object": "list", "data": [_model_card(request.app)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> dict:
        _check_key(request)
        card = _model_card(request.app)
        if model_id != card["id"]:
            raise APIError(404, f"model {model_id!r} is not served here; this server serves {card['id']!r}",
                           param="model", code="model_not_found")
        return card

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        _check_key(request)
        state = request.app.state
        declared = int(request.headers.get("content-length") or 0)
        if declared > state.settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
            raise too_large(declared, state.settings)
        if not state.admission.try_enter():
            raise queue_full(state.settings.max_queue)
        try:
            return await _transcribe(request)
        finally:
            state.admission.leave()


async def _transcribe(request: Request) -> Response:
    state = request.app.state
    async with request.form(max_files=1) as form:  # closes (deletes) the spooled upload when done
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "no audio: send the file as multipart field 'file'", param="file", code="missing_file")
        if not _field(form, "model"):
            raise APIError(400, "missing field 'model' (any name; this server answers with its one model)", param="model")
        response_format = (_field(form, "response_format") or "json").lower()
        granularities = tuple(g.lower() for g in _fields(form, "timestamp_granularities[]")) or ("segment",)
        check_format(response_format, granularities)
        _check_temperature(_field(form, "temperature"))
        word_timestamps = "word" in granularities
        try:
            key = state.prompts.key(_field(form, "prompt"), _field(form, "language"))
        except AsrtuneError as e:
            raise APIError(400, str(e), param="language" if _field(form, "language") else "prompt") from None
        audio = await run_in_threadpool(read_upload, upload.file, upload.filename, state.settings)
    recognizer = QueuedRecognizer(state.served.recognizer, state.batcher, key)
    try:
        record = await run_in_threadpool(transcript_record, recognizer, audio, word_timestamps=word_timestamps)
    except AsrtuneError as e:
        raise APIError(400, str(e), param="file") from None
    return render(record, response_format, granularities, key[1])


def _fields(form, name: str) -> list[str]:
    """The text values of form field ``name``; 400 when a file was sent in its place."""
    values = form.getlist(name)
    if any(isinstance(v, UploadFile) for v in values):
        raise APIError(400, f"field {name!r} must be text, not a file", param=name)
    return [str(v).strip() for v in values if str(v).strip()]


def _field(form, name: str) -> str | None:
    values = _fields(form, name)
    return values[0] if values else None


def _check_temperature(value) -> None:
    """Accepted as the API allows (0..1) but not used: decoding is greedy or beam search, and samples only
    to escape a repetition loop (the served model's --compression-ratio-threshold)."""
    if value in (None, ""):
        return
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise APIError(400, f"temperature must be a number; got {value!r}", param="temperature") from None
    if not 0.0 <= t <= 1.0:
        raise APIError(400, f"temperature must be between 0 and 1; got {t}", param="temperature")


def _model_card(app: FastAPI) -> dict:
    served: ServedModel = app.state.served
    describe = served.recognizer.describe() if hasattr(served.recognizer, "describe") else {}
    return {
        "id": served.model_id, "object": "model", "created": served.created, "owned_by": "asrtune",
        "engine": describe.get("engine", served.options.engine), "recognizer": describe,
        "decoding": served.options.to_dict(), "server": app.state.settings.public(),
    }
