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
    Only the statistics are computed here; normalisation and its gradient are the
    native batch-norm kernels (:class:`_NormaliseWithStatistics`).
    """

    def forward(self, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        flat = y.flatten(0, 1)
        if not self.training:
            out = F.batch_norm(
                flat,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                False,
                0.0,
                self.eps,
            )
            return out.view_as(y)
        mean, var = _frame_symmetric_moments(y.detach())
        with torch.no_grad():
            n = flat.numel() // flat.shape[1]
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        out = _NormaliseWithStatistics.apply(
            flat, self.weight, self.bias, mean, torch.rsqrt(var + self.eps), self.eps
        )
        return out.view_as(y)


def _frame_symmetric_moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of (B, T, C, ...), frames summed first.

    Accumulated in at least float32 (bf16 activations under autocast).
    """
    t, c = y.shape[1:3]
    acc = torch.promote_types(y.dtype, torch.float32)
    dims = [0, *range(2, y.ndim - 1)]  # B and spatial axes of the frame sum (B, C, ...)
    mean = y.sum(1, dtype=acc).mean(dims) / t
    shape = (1, 1, c) + (1,) * (y.ndim - 3)
    var = (y - mean.view(shape)).square().sum(1, dtype=acc).mean(dims) / t
    return mean, var


class _NormaliseWithStatistics(torch.autograd.Function):
    """(x - mean) * invstd * weight + bias on (N, C, ...) with given batch statistics.

    Forward and backward are the native batch-norm kernels; the backward is that of
    training mode, so the gradient flows through the statistics as in BatchNorm.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, eps):
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        var = invstd.pow(-2) - eps  # native eval-mode kernel takes a variance
        return torch.native_batch_norm(x, weight, bias, mean, var, False, 0.0, eps)[0]

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            grad, x, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True]
        )
        return dx, dw, db, None, None, None


class EquivariantLayer(nn.Module):
    """h(z)_t = L z_t + G mean_s z_s, pixel-wise (deep sets), on (B, T, C, ...).

    Computed as matrix products on the channel axis in place, so activations stay
    contiguous in (B, T, C, Y, X) and the batch norms after it take the native fast path.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.L = nn.Linear(cin, cout)
        self.G = nn.Linear(cin, cout, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, C_in, ...) -> (B, T, C_out, ...)."""
        b, t, c = z.shape[:3]
        zf = z.reshape(b * t, c, -1, 1)  # (B*T, C, P, 1): a 1x1 convolution
        mean = z.sum(1).view(b, c, -1, 1) / t  # frame sum: order-free for T=2
        local = F.conv2d(zf, self.L.weight[..., None, None], self.L.bias)
        shared = F.conv2d(mean, self.G.weight[..., None, None])
        out = local.view(b, t, -1, *local.shape[2:]) + shared[:, None]
        return out.view(b, t, -1, *z.shape[3:])


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
