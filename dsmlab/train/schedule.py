"""The learning-rate schedule of every training here: a linear warmup, then a cosine to zero."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup: int, steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The rate rises linearly over `warmup` steps, then falls along half a cosine to zero at
    `steps` (a LambdaLR: its state saves and resumes with the optimizer's)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)),
    )
