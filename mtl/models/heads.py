"""Task heads: map the features of a task's last block copy to the task's raw output."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP


class GlobalHead(nn.Sequential):
    """Global average pooling and a linear layer: one vector per image."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, out_channels)
        )


class DenseHead(nn.Sequential):
    """A 3x3 convolution, batch norm, ReLU and a 1x1 classifier at feature resolution.

    The branched network upsamples its output to the input size.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64) -> None:
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
        )


class ASPPHead(nn.Sequential):
    """DeepLab-v3 atrous spatial pyramid pooling decoder, as in the paper's dense setups."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        rates: Sequence[int] = (12, 24, 36),
        hidden: int = 256,
    ) -> None:
        super().__init__(
            ASPP(in_channels, list(rates), hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
        )
