"""Feature-wise linear modulation (FiLM): a condition scales and shifts every channel.

SoundStream uses it to switch denoising on or off at inference with one model: the condition is
a per-example flag (0 = keep everything, 1 = remove background noise).
"""

from __future__ import annotations

import torch
from torch import nn


class FiLM(nn.Module):
    """``x * (1 + gamma(c)) + beta(c)`` with ``gamma, beta`` linear in an embedding of ``c``.

    Initialised to the identity (gamma = beta = 0) so adding FiLM does not disturb training.

    Shapes: ``x`` ``(batch, channels, T)``, ``cond`` ``(batch,)`` int64 in ``[0, num_conditions)``
    -> ``(batch, channels, T)``.
    """

    def __init__(self, channels: int, num_conditions: int = 2, hidden: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_conditions, hidden)
        self.proj = nn.Linear(hidden, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(self.embed(cond)).chunk(2, dim=-1)
        return x * (1.0 + gamma[..., None]) + beta[..., None]
