"""Weight interpolation between a base model and its fine-tuned copy (WiSE-FT).

Fine-tuning on a narrow domain moves every trained weight away from the base model, and the
model forgets part of what it knew (general English, timestamps, prompts). Wortsman et al.,
"Robust fine-tuning of zero-shot models" (CVPR 2022), showed that the straight line between
the two, ``(1 - alpha) * base + alpha * tuned``, often keeps most of the domain gain at a
fraction of the forgetting: ``alpha = 1`` is the tuned model, ``alpha = 0`` the base. The two
models must share one architecture (a run's ``best/`` or ``final/`` and the model it started
from); weights training did not touch are equal, so they stay as they are.

Used by ``asrtune merge`` (two model folders) and by ``asrtune train --merge-alphas`` (in memory,
scored on dev and the forgetting guard at the end of a run).

>>> import torch
>>> base, tuned = {"w": torch.zeros(2)}, {"w": torch.tensor([1.0, 3.0])}
>>> interpolate_weights(base, tuned, 0.25)["w"].tolist()
[0.25, 0.75]
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.fileio import atomic_directory, write_json_atomic

if TYPE_CHECKING:
    import torch

#: Files of a Hugging Face model folder that hold weights (replaced by one merged file).
SAFETENSORS_INDEX = "model.safetensors.index.json"
MERGED_WEIGHTS = "model.safetensors"
#: Written next to the merged weights: where they came from.
MERGE_INFO = "asrtune_merge.json"
#: A tuned model's card describes the tuned weights; a merged folder must not inherit it.
NOT_COPIED = ("README.md",)


def check_alpha(alpha: float, option: str = "--alpha") -> float:
    """``alpha`` when it lies in [0, 1], else a :class:`ConfigError` naming ``option``.

    >>> check_alpha(1.5)
    Traceback (most recent call last):
    asrtune.errors.ConfigError: --alpha must be between 0 (the base model) and 1 (the tuned model), got 1.5
    """
    if not 0.0 <= alpha <= 1.0:  # also refuses NaN
        raise ConfigError(f"{option} must be between 0 (the base model) and 1 (the tuned model), got {alpha:g}")
    return alpha


def interpolate_weights(base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * base + alpha * tuned`` for every floating-point tensor of ``tuned``;
    integer tensors (buffers such as position ids) are taken from ``tuned``. Raises
    :class:`AsrtuneError` when the two do not hold the same names and shapes."""
    import torch  # heavy: torch

    missing = sorted(set(tuned) ^ set(base))
    if missing:
        raise AsrtuneError(f"the two models hold different weights (e.g. {missing[0]}); "
                           "interpolate a tuned model with the model it was tuned from")
    merged = {}
    for name, value in tuned.items():
        ref = base[name]
        if ref.shape != value.shape:
            raise AsrtuneError(f"weight {name}: shape {tuple(value.shape)} in the tuned model, {tuple(ref.shape)} in the base")
        if value.is_floating_point():
            merged[name] = torch.lerp(ref.to(value.dtype), value, alpha)
        else:
            merged[name] = value.clone()
    return merged


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a Hugging Face model folder's ``*.safetensors`` files (sharded or not)."""
    from safetensors.torch import load_file  # heavy: torch

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise AsrtuneError(f"{folder}: no *.safetensors weights (merging reads safetensors model folders)")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(f))
    return weights


def interpolate_folders(base: Path, tuned: Path, alpha: float, out: Path, base_name: str | None = None) -> Path:
    """Write ``out``: the tuned folder's files (config, processor, generation config with its
    alignment heads) with weights interpolated towards ``base``, plus :data:`MERGE_INFO`.
    ``out`` appears only when complete."""
    check_alpha(alpha)
    from safetensors.torch import save_file  # heavy: torch

    base, tuned = Path(base), Path(tuned)
    merged = interpolate_weights(read_weights(base), read_weights(tuned), alpha)
    with atomic_directory(out) as tmp:
        for f in tuned.iterdir():
            if f.is_file() and f.suffix != ".safetensors" and f.name not in (SAFETENSORS_INDEX, *NOT_COPIED):
                shutil.copy2(f, tmp / f.name)
        save_file({k: v.contiguous() for k, v in merged.items()}, str(tmp / MERGED_WEIGHTS), metadata={"format": "pt"})
        write_json_atomic(tmp / MERGE_INFO, {"base_model": base_name or str(base.resolve()), "tuned_model": str(tuned.resolve()),
                                             "alpha": alpha, "formula": "(1 - alpha) * base + alpha * tuned"})
    return Path(out)


def base_model_of(tuned: Path) -> str | None:
    """The ``--model`` a training run started from, as its model folder records it
    (``asrtune_training.json``), or None for a folder asrtune did not train."""
    info = Path(tuned) / "asrtune_training.json"
    if not info.is_file():
        return None
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("base_model")
    except (OSError, ValueError):
        return None
