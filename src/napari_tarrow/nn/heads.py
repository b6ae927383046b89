"""Projection to the dense features z and the permutation-equivariant time-arrow head h."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def projection(cin: int, features: int) -> nn.Sequential:
    """1x1 conv + BatchNorm: backbone output -> z with ``features`` channels."""
    return nn.Sequential(nn.Conv2d(cin, features, 1), nn.BatchNorm2d(features))


class FrameBatchNorm(nn.BatchNorm2d):
    """BatchNorm over (B, T, C, Y, X) whose batch statistics sum over frames first.

    Summing the T values of each pixel before reducing makes the statistics, and
    so the whole head, exactly (bitwise) invariant to swapping two frames, also
    in training mode; ``nn.BatchNorm2d`` on (B*T, C, Y, X) is only so up to rounding.
    """

    def forward(self, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        t, c = y.shape[1:3]
        if not self.training:
            out = F.batch_norm(
                y.flatten(0, 1),
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                False,
                0.0,
                self.eps,
            )
            return out.view_as(y)
        dims = [0, *range(2, y.ndim - 1)]  # B and spatial axes of (B, C, Y, X)
        n = y.numel() // c
        mean = y.sum(1).mean(dims) / t
        shape = (1, 1, c) + (1,) * (y.ndim - 3)
        var = ((y - mean.view(shape)) ** 2).sum(1).mean(dims) / t
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean.detach().float(), self.momentum)
            self.running_var.lerp_(
                var.detach().float() * n / max(n - 1, 1), self.momentum
            )
        y = (y - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


class EquivariantLayer(nn.Module):
    """h(z)_t = L z_t + G mean_s z_s, pixel-wise (deep sets), on (B, T, C, ...)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.L = nn.Linear(cin, cout)
        self.G = nn.Linear(cin, cout, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, C_in, ...) -> (B, T, C_out, ...)."""
        zc = z.movedim(2, -1)  # channels last for Linear
        mean = (
            zc.sum(1, keepdim=True) / z.shape[1]
        )  # frame sum: order-independent for T=2
        return (self.L(zc) + self.G(mean)).movedim(-1, 2)


class TimeArrowHead(nn.Module):
    """Permutation-equivariant time-arrow head: (B, T, C, Y, X) -> logits (B, T).

    Two equivariant layers with BatchNorm + LeakyReLU, global average pooling, and
    a last equivariant layer giving one logit per frame. Swapping frames swaps the
    logits; ``softmax(logits)[k]`` is the probability that frame k is the earlier one.
    """

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.layer1 = EquivariantLayer(features, hidden)
        self.norm1 = FrameBatchNorm(hidden)
        self.layer2 = EquivariantLayer(hidden, hidden)
        self.norm2 = FrameBatchNorm(hidden)
        self.final = EquivariantLayer(hidden, 1)

    def pixelwise(self, z: torch.Tensor) -> torch.Tensor:
        """Per-pixel part before pooling: (B, T, C, Y, X) -> (B, T, hidden, Y, X)."""
        h = F.leaky_relu(self.norm1(self.layer1(z)))
        return F.leaky_relu(self.norm2(self.layer2(h)))

    def readout(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled (B, T, hidden) -> logits (B, T); affine, so pooling may be done by tiles."""
        return self.final(pooled[..., None]).squeeze(-1).squeeze(-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.readout(self.pixelwise(z).mean(dim=(-2, -1)))
