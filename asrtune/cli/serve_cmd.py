"""`asrtune serve`: an OpenAI-compatible transcription server for a (tuned) model."""

from __future__ import annotations

import socket

from asrtune.cli import add_subparser
from asrtune.data.terms import load_terms
from asrtune.errors import ConfigError
from asrtune.extras import needs_extra
from asrtune.inference import check_model_options
from asrtune.inference.options import RecognizerOptions
from asrtune.models import resolve_model
from asrtune.options import add_options, given_options, update_options
from asrtune.serving.settings import ServerSettings

DESCRIPTION = """\
Serve a model over HTTP with the OpenAI audio API, so existing OpenAI clients and tools work
unchanged: POST /v1/audio/transcriptions (multipart file, model, language, prompt (its last 223
tokens are used, as with --prompt), response_format json|text|srt|vtt|verbose_json,
timestamp_granularities[] segment|word; temperature 0-1 is accepted but decoding is greedy, or
beam search with --beam-size), GET /v1/models (the model, engine and decoding settings) and
GET /health.

Long audio is cut at speech pauses (Silero VAD) exactly as `asrtune transcribe` does. Segments
of concurrent requests are decoded together (dynamic batching: a batch waits at most
--max-wait-ms for company, up to --max-batch-size segments) by one model thread; beyond
--max-queue requests the server answers 503 with Retry-After. Errors are OpenAI error objects:
400 undecodable audio or an impossible language/temperature, 401 missing/wrong key (with
--api-key), 413 upload or audio too large.
Ctrl-C or SIGTERM finishes the requests in flight, then stops.
"""

EXAMPLES = """\
  asrtune serve --model runs/acc/best --engine ct2 --port 8000
  asrtune serve --model openai/whisper-tiny.en --engine ct2 --api-key "$KEY" --host 0.0.0.0
  asrtune serve --model runs/acc/best --bias-terms terms.txt --prompt "Kubernetes, kubectl, etcd"
  curl -s localhost:8000/v1/audio/transcriptions -F file=@talk.flac -F model=whisper-1 -F response_format=srt
  python -c "import openai; c = openai.OpenAI(base_url='http://localhost:8000/v1', api_key='KEY'); \\
             print(c.audio.transcriptions.create(model='whisper-1', file=open('talk.flac', 'rb')).text)"
"""

GRACEFUL_SHUTDOWN_S = 60  # longest wait for in-flight requests after Ctrl-C / SIGTERM


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "serve", summary, DESCRIPTION, EXAMPLES)
    p.add_argument("--model", required=True, help="hub id, local model folder, or a training run folder (uses its best/)")
    add_options(p, ServerSettings)
    add_options(p, RecognizerOptions)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level")
    p.set_defaults(func=run)


def settings_from_args(args) -> tuple:
    """(RecognizerOptions, ServerSettings) from the parsed command line, validated."""
    options = update_options(RecognizerOptions(), given_options(RecognizerOptions, args), "command line").validate()
    settings = update_options(ServerSettings(), given_options(ServerSettings, args), "command line").validate()
    return options, settings


def check_address(host: str, port: int) -> None:
    """Raise ConfigError (one line naming --host/--port) when the server could not listen there."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None


def run(args) -> int:
    with needs_extra("serve", "asrtune serve", "FastAPI and uvicorn"):
        import uvicorn

        from asrtune.serving.app import create_app
    options, settings = settings_from_args(args)
    # Everything a user can get wrong fails in a second, before the model loads.
    if isinstance(options.bias_terms, str):
        load_terms(options.bias_terms, "--bias-terms")
    # cheap: finds the files (cached conversions); loading comes later
    check_model_options(options, resolve_model(args.model))
    check_address(settings.host, settings.port)
    app = create_app(args.model, options, settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0
