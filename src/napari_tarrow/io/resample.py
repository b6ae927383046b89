"""Block-mean downscaling of frames and bilinear upscaling of features (``subsample``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downscale(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, C, Y, X) -> (N, C, ceil(Y/k), ceil(X/k)): the mean of each k x k block.

    Blocks are aligned to the top-left corner, so a tile that starts on a multiple of
    ``k`` gets the same blocks as the whole frame; a partial block at the bottom/right
    edge is completed by repeating the edge pixels.
    """
    if k == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % k, 0, -h % k), mode="replicate")
    return F.avg_pool2d(x, k)


def upscale(z: torch.Tensor, k: int, shape: tuple[int, int]) -> torch.Tensor:
    """(N, C, y, x) -> (N, C, *shape): k times bilinear, then cropped (undoes :func:`downscale`)."""
    if k == 1:
        return z
    full = F.interpolate(z, scale_factor=k, mode="bilinear", align_corners=False)
    return full[..., : shape[0], : shape[1]]
