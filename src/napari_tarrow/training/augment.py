"""Batched, seeded pair augmentations on the training device (no per-sample Python).

Geometry is one ``grid_sample`` per batch: a joint affine (flips, any rotation,
scaling) and a joint elastic field shared by both frames of a pair, composed with
small independent per-frame translations/scalings. Intensity: joint and per-frame
shift/scale and additive Gaussian noise. Each transform is applied with p=0.5.
Joint transforms are identical for both frames, so they keep the pair's temporal
relation; only the per-frame parts differ (``per_frame=False`` switches them off).

Why not ``kornia.augmentation``: its transforms draw parameters from torch's global
RNG (no generator argument) and resample once per transform; here every draw comes
from the job's own seeded ``torch.Generator`` and all geometry costs one resampling.
kornia's Gaussian filter smooths the elastic field.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d


def input_size(size: int) -> int:
    """Side of the crop to sample so any rotation/zoom of it covers ``size`` (mult. of 8)."""
    return int(math.ceil(size * math.sqrt(2) * 1.25 / 8) * 8)


def _coin(
    n: int, gen: torch.Generator, device: torch.device, p: float = 0.5
) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def _uniform(
    shape: tuple[int, ...],
    lo: float,
    hi: float,
    gen: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


def _joint_matrices(b: int, gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    """(B, 2, 2) flip/rotation/scale matrices shared by both frames of a pair."""
    angle = torch.where(
        _coin(b, gen, dev), _uniform((b,), 0, 2 * math.pi, gen, dev), 0.0
    )
    scale = torch.where(
        _coin(b, gen, dev),
        _uniform((b,), math.log(0.8), math.log(1.25), gen, dev).exp(),
        1.0,
    )
    flip_x = torch.where(_coin(b, gen, dev), -1.0, 1.0)
    flip_y = torch.where(_coin(b, gen, dev), -1.0, 1.0)
    c, s = torch.cos(angle) * scale, torch.sin(angle) * scale
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    flips = torch.diag_embed(torch.stack([flip_x, flip_y], -1))
    return rot @ flips


def _elastic(
    b: int,
    size: int,
    gen: torch.Generator,
    dev: torch.device,
    alpha: float = 4.0,
    sigma: float = 8.0,
) -> torch.Tensor:
    """(B, size, size, 2) smooth displacement (pixels), zero for half of the pairs."""
    noise = torch.randn((b, 2, size, size), generator=gen, device=dev)
    k = int(4 * sigma) | 1
    field = gaussian_blur2d(noise, (k, k), (sigma, sigma))
    field = field / field.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) * alpha
    return field.permute(0, 2, 3, 1) * _coin(b, gen, dev).view(b, 1, 1, 1)


def augment_pairs(
    x: torch.Tensor, size: int, gen: torch.Generator, per_frame: bool = True
) -> torch.Tensor:
    """Augment pairs (B, T, S_in, S_in) into (B, T, size, size), see module docstring."""
    b, t, s_in = x.shape[0], x.shape[1], x.shape[-1]
    dev = x.device
    ar = torch.arange(size, device=dev, dtype=torch.float32) - (size - 1) / 2
    grid = torch.stack(torch.meshgrid(ar, ar, indexing="xy"), -1)  # (S, S, 2) as (x, y)
    pts = torch.einsum("bij,yxj->byxi", _joint_matrices(b, gen, dev), grid)
    pts = (pts + _elastic(b, size, gen, dev)).unsqueeze(1).expand(b, t, size, size, 2)
    if per_frame:
        shift = _uniform((b, t, 1, 1, 2), -2.0, 2.0, gen, dev)
        zoom = _uniform((b, t, 1, 1, 1), 0.97, 1.03, gen, dev)
        on = _coin(b * t, gen, dev).view(b, t, 1, 1, 1)
        pts = torch.where(on, pts * zoom + shift, pts)
    norm = (pts + (s_in - 1) / 2) * (
        2 / (s_in - 1)
    ) - 1  # align_corners=True coordinates
    out = F.grid_sample(
        x.reshape(b * t, 1, s_in, s_in),
        norm.reshape(b * t, size, size, 2),
        mode="bilinear",
        padding_mode="reflection",
        align_corners=True,
    )
    return _intensity(out.view(b, t, size, size), gen, per_frame)


def _intensity(x: torch.Tensor, gen: torch.Generator, per_frame: bool) -> torch.Tensor:
    b, t = x.shape[:2]
    dev = x.device
    on = _coin(b, gen, dev).view(b, 1, 1, 1)
    x = torch.where(
        on,
        x * _uniform((b, 1, 1, 1), 0.7, 1.4, gen, dev)
        + _uniform((b, 1, 1, 1), -0.1, 0.1, gen, dev),
        x,
    )
    if per_frame:
        on = _coin(b * t, gen, dev).view(b, t, 1, 1)
        x = torch.where(
            on,
            x * _uniform((b, t, 1, 1), 0.9, 1.1, gen, dev)
            + _uniform((b, t, 1, 1), -0.05, 0.05, gen, dev),
            x,
        )
        sigma = _uniform((b, t, 1, 1), 0.0, 0.05, gen, dev) * _coin(
            b * t, gen, dev
        ).view(b, t, 1, 1)
        x = x + sigma * torch.randn(x.shape, generator=gen, device=dev)
    return x
