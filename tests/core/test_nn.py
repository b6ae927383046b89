import math

import pytest
import torch

from napari_tarrow.config import ModelConfig
from napari_tarrow.nn.heads import TimeArrowHead
from napari_tarrow.nn.losses import decorrelation_loss, tap_loss
from napari_tarrow.nn.tapnet import TapNet
from napari_tarrow.nn.unet import UNet


@pytest.mark.parametrize("training", [True, False])
def test_head_swaps_logits_exactly(training: bool) -> None:
    torch.manual_seed(0)
    head = TimeArrowHead(8, 16)
    # make BatchNorm statistics non-trivial first
    head.train()
    for _ in range(3):
        head(torch.randn(4, 2, 8, 6, 5))
    head.train(training)
    z = torch.randn(5, 2, 8, 7, 9)
    a = head(z)
    b = head(z.flip(1))
    assert a.shape == (5, 2)
    assert torch.equal(b, a.flip(1))


@pytest.mark.parametrize("training", [True, False])
def test_whole_model_is_equivariant(training: bool) -> None:
    torch.manual_seed(1)
    net = TapNet(ModelConfig(features=8, unet_channels=8, head_features=8)).train(
        training
    )
    x = torch.randn(3, 2, 40, 48)
    a, _ = net(x)
    b, _ = net(x.flip(1))
    if (
        training
    ):  # backbone BatchNorm batch statistics sum in another order: rounding only
        torch.testing.assert_close(b, a.flip(1), rtol=0, atol=1e-5)
    else:
        assert torch.equal(b, a.flip(1))
    assert not torch.allclose(a[:, 0], a[:, 1])  # the head does tell the frames apart


@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (17, 101)])
def test_unet_output_size_equals_input(shape: tuple[int, int]) -> None:
    net = UNet(1, 4, 4, depth=3).eval()
    assert net(torch.randn(2, 1, *shape)).shape == (2, 4, *shape)


def test_decorrelation_loss_matches_hand_computation() -> None:
    torch.manual_seed(2)
    z = torch.randn(2, 3, 4, 5)
    tau = 0.2
    total = 0.0
    for n in range(2):
        v = z[n].reshape(3, -1)
        v = v - v.mean(1, keepdim=True)
        v = v / v.norm(dim=1, keepdim=True)
        for i in range(3):
            row = [float(v[i] @ v[j]) / tau for j in range(3)]
            total += -(row[i] - math.log(sum(math.exp(r) for r in row)))
    assert float(decorrelation_loss(z, tau)) == pytest.approx(total / 6, rel=1e-5)


def test_decorrelation_loss_prefers_decorrelated_features() -> None:
    torch.manual_seed(3)
    base = torch.randn(1, 1, 8, 8)
    correlated = base.repeat(1, 4, 1, 1) + 0.01 * torch.randn(1, 4, 8, 8)
    independent = torch.randn(1, 4, 8, 8)
    assert decorrelation_loss(correlated) > decorrelation_loss(independent) + 0.5


def test_label_convention_is_index_of_earlier_frame() -> None:
    # logits favour frame 0 being earlier: forward label 0 must give the lower loss
    logits = torch.tensor([[2.0, -2.0]])
    z = torch.randn(2, 4, 3, 3)
    fwd, _ = tap_loss(logits, torch.tensor([0]), z, 0.0)
    bwd, _ = tap_loss(logits, torch.tensor([1]), z, 0.0)
    assert fwd < bwd
    total, ce = tap_loss(logits, torch.tensor([0]), z, 0.5)
    assert total == pytest.approx(float(ce + 0.5 * decorrelation_loss(z)))
