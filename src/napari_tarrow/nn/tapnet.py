"""TapNet: dense features z = proj(f(x)) per frame, and the order head h(z). No hooks."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .heads import TimeArrowHead, projection
from .resample import downscale, upscale
from .unet import UNet


class TapNet(nn.Module):
    """Feature extractor (U-Net + projection) and time-arrow head.

    ``features`` and ``head`` are separate so that attribution can compute z
    once per frame without gradients and back-propagate through the head only.
    With ``cfg.subsample`` k > 1 the U-Net sees frames downscaled k times (block
    means): training and the head work at that scale, and :meth:`features` returns z
    upscaled to the input's size, so every output stays aligned with the video.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = UNet(
            1, cfg.unet_channels, cfg.unet_channels, cfg.unet_depth, cfg.padding_mode
        )
        self.proj = projection(cfg.unet_channels, cfg.features)
        self.head = TimeArrowHead(cfg.features, cfg.head_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (N, 1, Y, X) -> z (N, C, Y/k, X/k) at the network's own scale."""
        return self.proj(self.backbone(downscale(x, self.cfg.subsample)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (N, 1, Y, X) -> dense features z (N, C, Y, X)."""
        return upscale(self.encode(x), self.cfg.subsample, x.shape[-2:])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs (B, T, Y, X) -> (logits (B, T), z (B*T, C, Y/k, X/k))."""
        b, t = x.shape[:2]
        z = self.encode(x.reshape(b * t, 1, *x.shape[2:]))
        return self.head(z.view(b, t, *z.shape[1:])), z
