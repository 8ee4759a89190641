"""Loss weighting: how per-task losses combine into the one loss that is minimised."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class FixedWeights(nn.Module):
    """Weighted sum with each task's configured ``weight``."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[name] * loss for name, loss in losses.items())


class UncertaintyWeights(nn.Module):
    """Homoscedastic uncertainty weighting (Kendall et al., CVPR 2018).

    Each task learns ``s_t = log sigma_t^2``; the total is
    ``sum_t exp(-s_t) * L_t + s_t``. Configured task weights still scale ``L_t``.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)
        self.log_variance = nn.ParameterDict({n: nn.Parameter(torch.zeros(())) for n in weights})

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for name, loss in losses.items():
            s = self.log_variance[name]
            total = total + torch.exp(-s) * self.weights[name] * loss + s
        return total
