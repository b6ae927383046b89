"""TAP loss: cross-entropy on the frame order plus the decorrelation of z's channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def decorrelation_loss(z: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Mean of -log diag(softmax(corr(z) / temperature)) over images and channels.

    ``corr`` is the (C, C) Pearson correlation of the channels of each image of
    z (N, C, Y, X) over its pixels. The reference implementation uses the raw dot
    product (its normalisation is commented out), which saturates the softmax for
    crops of 96x96 pixels; the correlation keeps the loss informative.
    """
    x = z.flatten(2).float()
    x = x - x.mean(-1, keepdim=True)
    x = F.normalize(x, dim=-1, eps=1e-6)
    corr = x @ x.transpose(1, 2) / temperature
    return -torch.diagonal(torch.log_softmax(corr, dim=-1), dim1=-2, dim2=-1).mean()


def tap_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    z: torch.Tensor,
    lambda_decorrelation: float = 0.01,
    temperature: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, cross-entropy). ``labels`` holds the index of the earlier frame."""
    ce = F.cross_entropy(logits.float(), labels)
    if lambda_decorrelation == 0:
        return ce, ce
    return ce + lambda_decorrelation * decorrelation_loss(z, temperature), ce
