"""TapNet: dense features z = proj(f(x)) per frame, and the order head h(z). No hooks."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..io.resample import downscale, upscale
from .heads import TimeArrowHead, projection
from .unet import UNet


class TapNet(nn.Module):
    """Feature extractor (U-Net + projection) and time-arrow head.

    ``features`` and ``head`` are separate so that attribution can compute z
    once per frame without gradients and back-propagate through the head only.
    With ``cfg.subsample`` k > 1 the U-Net sees frames downscaled k times (block
    means): pairs for :meth:`forward` (training) come at that scale, and
    :meth:`features` takes frames at the video's scale and returns z upscaled back
    to it, so every output stays aligned with the video.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = UNet(
            1, cfg.unet_channels, cfg.unet_channels, cfg.unet_depth, cfg.padding_mode
        )
        self.proj = projection(cfg.unet_channels, cfg.features)
        self.head = TimeArrowHead(cfg.features, cfg.head_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (N, 1, Y, X) of the video -> dense features z (N, C, Y, X)."""
        k = self.cfg.subsample
        z = self.proj(self.backbone(downscale(x, k)))
        return upscale(z, k, x.shape[-2:])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs (B, T, y, x) at the network's scale -> (logits (B, T), z (B*T, C, y, x))."""
        b, t = x.shape[:2]
        z = self.proj(self.backbone(x.reshape(b * t, 1, *x.shape[2:])))
        return self.head(z.view(b, t, *z.shape[1:])), z
