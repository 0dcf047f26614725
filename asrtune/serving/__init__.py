"""``asrtune serve``: an OpenAI-compatible transcription server with dynamic batching.

>>> from asrtune.serving import create_app, ServerSettings                     # doctest: +SKIP
>>> app = create_app("runs/acc/best", RecognizerOptions(engine="ct2"), ServerSettings())  # doctest: +SKIP

Modules: ``settings`` (ServerSettings), ``app`` (routes), ``batching`` (the model's worker
thread and admission), ``audio`` (uploads), ``transcripts`` (long-form decoding), ``formats``
(response formats), ``prompts`` (per-request prompt), ``errors`` (OpenAI error objects).
FastAPI and uvicorn come with ``pip install 'asrtune[serve]'``.
"""

from asrtune.serving.settings import ServerSettings


def create_app(model, options=None, settings=None):
    """See :func:`asrtune.serving.app.create_app` (imported lazily: FastAPI is an optional extra)."""
    from asrtune.serving.app import create_app as _create_app  # optional extra [serve]: the app imports FastAPI

    return _create_app(model, options, settings)


__all__ = ["ServerSettings", "create_app"]
