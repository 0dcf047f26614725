"""The optimiser a run steps: AdamW over the adapter's parameter groups (each remembering its
base learning rate for the schedule), autocast and the fp16 gradient scaler."""

from __future__ import annotations

import torch

from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.config import TrainConfig

ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-6


def autocast_dtype(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use GradScaler)`` for ``--precision`` on ``device``: ``auto``
    is fp32 off CUDA, else bf16 where the GPU has it, else fp16 (with a scaler).

    >>> autocast_dtype("auto", torch.device("cpu")), autocast_dtype("bf16", torch.device("cpu"))
    ((None, False), (torch.bfloat16, False))
    """
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None, False
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return (torch.bfloat16, False) if precision == "bf16" else (torch.float16, device.type == "cuda")


def make_optimizer(adapter: ModelAdapter, config: TrainConfig,
                   device: torch.device) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler, torch.dtype | None]:
    """AdamW over the adapter's parameter groups (each remembers its ``base_lr``), the gradient
    scaler and the autocast dtype."""
    groups = adapter.parameter_groups(config)
    for g in groups:
        g["base_lr"] = g["lr"]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    amp_dtype, use_scaler = autocast_dtype(config.precision, device)
    return optimizer, torch.amp.GradScaler("cuda", enabled=use_scaler), amp_dtype
