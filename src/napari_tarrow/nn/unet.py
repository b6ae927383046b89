"""2D U-Net backbone f: any input size, output size equals input size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(cin: int, cout: int, padding_mode: str = "zeros") -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + LeakyReLU, as in the paper's U-Net levels."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False, padding_mode=padding_mode),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False, padding_mode=padding_mode),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` max-pool steps; channels ``c, 2c, .., 2**depth c``.

    Inputs (N, C_in, Y, X) of any size are padded at the bottom/right to a
    multiple of ``2**depth`` and the output is cropped back, so tiles that start
    on that grid reproduce the untiled result. ``padding_mode`` ("zeros" or
    "replicate") fills both that padding and the convolutions' own.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 32,
        channels: int = 32,
        depth: int = 3,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        widths = [channels * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.pad_mode = "constant" if padding_mode == "zeros" else padding_mode
        self.down = nn.ModuleList(
            conv_block(cin, cout, padding_mode)
            for cin, cout in zip([in_channels, *widths[:-2]], widths[:-1], strict=True)
        )
        self.bottom = conv_block(widths[-2], widths[-1], padding_mode)
        self.up = nn.ModuleList(
            conv_block(widths[i + 1] + widths[i], widths[i], padding_mode)
            for i in reversed(range(depth))
        )
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, Y, X) -> (N, C_out, Y, X)."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        x = F.pad(x, (0, -w % m, 0, -h % m), mode=self.pad_mode)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.out(x)[..., :h, :w]

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel depends on (a safe tiling halo)."""
        return (
            sum(2 * 2**i for i in range(self.depth)) * 2
            + 2 * 2**self.depth
            + 2**self.depth
        )
