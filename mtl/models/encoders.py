"""Encoders cut into consecutive blocks; a branch point follows every block."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision import models
from torchvision.models.resnet import BasicBlock


class BlockEncoder(nn.Module):
    """An encoder as a sequence of blocks; block ``b`` feeds block ``b + 1``.

    Args:
        blocks: the blocks, shallowest first. The first one holds the stem.
        channels: output channels of each block.
        names: a readable name per block (``layer1`` ...).
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        channels: Sequence[int],
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if len(blocks) != len(channels):
            raise ValueError(f"{len(blocks)} blocks but {len(channels)} channel counts")
        self.blocks = nn.ModuleList(blocks)
        self.channels = list(channels)
        self.names = list(names or [f"block{b + 1}" for b in range(len(blocks))])

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block."""
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def block_params(self) -> list[int]:
        """Learnable parameters of one copy of each block."""
        return [
            sum(p.numel() for p in block.parameters() if p.requires_grad) for block in self.blocks
        ]

    @torch.no_grad()
    def block_flops(self, input_shape: Sequence[int]) -> list[int]:
        """FLOPs of one copy of each block for one image of shape (C, H, W).

        Counted by ``torch.utils.flop_counter`` (a multiply-add counts as 2).
        """
        was_training = self.training
        self.eval()
        x = torch.zeros(1, *input_shape, device=next(self.parameters()).device)
        flops = []
        for block in self.blocks:
            with FlopCounterMode(display=False) as counter:
                x = block(x)
            flops.append(int(counter.get_total_flops()))
        self.train(was_training)
        return flops

    @torch.no_grad()
    def output_shapes(self, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """Per-image shape (C, H, W) of every block's output."""
        was_training = self.training
        self.eval()
        x = torch.zeros(1, *input_shape, device=next(self.parameters()).device)
        shapes = [tuple(f.shape[1:]) for f in self(x)]
        self.train(was_training)
        return shapes


def thin_resnet(
    in_channels: int = 3,
    widths: Sequence[int] = (16, 32, 64, 128),
    blocks_per_stage: int = 1,
) -> BlockEncoder:
    """A narrow ResNet for CPUs: a 3x3 stem and one residual stage per block.

    Every stage after the first halves the resolution.
    """
    blocks, inplanes = [], widths[0]
    stem = nn.Sequential(
        nn.Conv2d(in_channels, inplanes, 3, padding=1, bias=False),
        nn.BatchNorm2d(inplanes),
        nn.ReLU(inplace=True),
    )
    for stage, width in enumerate(widths):
        stride = 1 if stage == 0 else 2
        layers = []
        for i in range(blocks_per_stage):
            downsample = None
            if i == 0 and (stride != 1 or inplanes != width):
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, width, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(width),
                )
            layers.append(BasicBlock(inplanes, width, stride if i == 0 else 1, downsample))
            inplanes = width
        blocks.append(nn.Sequential(stem, *layers) if stage == 0 else nn.Sequential(*layers))
    names = [f"layer{i + 1}" for i in range(len(widths))]
    return BlockEncoder(blocks, list(widths), names)


def resnet(
    name: str = "resnet50",
    weights: str | None = None,
    in_channels: int = 3,
    dilate_last: int = 0,
) -> BlockEncoder:
    """A torchvision ResNet cut into four blocks: stem + layer1, layer2, layer3, layer4.

    Args:
        name: a torchvision ResNet builder, e.g. ``resnet18`` or ``resnet50``.
        weights: torchvision weight name (``IMAGENET1K_V2``) or None for random init.
            Weights are downloaded by torchvision on first use.
        in_channels: image channels; other than 3 replaces the first convolution.
        dilate_last: how many of the last stages use dilation instead of stride
            (2 gives output stride 8, as DeepLab decoders expect).
    """
    if not 0 <= dilate_last <= 3:
        raise ValueError(f"dilate_last must be 0..3, got {dilate_last}")
    builder = getattr(models, name, None)
    if builder is None or not name.startswith(("resnet", "wide_resnet", "resnext")):
        raise ValueError(f"unknown torchvision ResNet {name!r}; try resnet18, resnet34, resnet50")
    dilation = [False] * (3 - dilate_last) + [True] * dilate_last
    net = builder(weights=weights, replace_stride_with_dilation=dilation)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)

    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
    blocks = [stem, net.layer2, net.layer3, net.layer4]
    channels = [
        _last_channels(layer) for layer in (net.layer1, net.layer2, net.layer3, net.layer4)
    ]
    return BlockEncoder(blocks, channels, ["layer1", "layer2", "layer3", "layer4"])


def _last_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def thin_vgg(
    in_channels: int = 3,
    width: int = 32,
    layout: Sequence[int] = (2, 2, 3, 3, 3),
) -> BlockEncoder:
    """A VGG-16-like network of constant width: every 3x3 convolution is one block.

    ``layout`` gives the convolutions per stage; each stage ends in 2x2 max pooling,
    which belongs to the stage's last block. The CelebA setup of the paper uses
    width 32 or 64, trained from scratch.
    """
    blocks, names, channels = [], [], []
    current = in_channels
    for stage, convs in enumerate(layout):
        for i in range(convs):
            layers: list[nn.Module] = [
                nn.Conv2d(current, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if i == convs - 1:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            names.append(f"conv{stage + 1}_{i + 1}")
            channels.append(width)
            current = width
    return BlockEncoder(blocks, channels, names)
