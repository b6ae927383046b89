import numpy as np
import pytest
import torch

from napari_tarrow.config import ModelConfig, TapConfig
from napari_tarrow.inference.attribution import gradcam
from napari_tarrow.inference.features import frame_features
from napari_tarrow.inference.tiling import tile_grid
from napari_tarrow.io.resample import downscale, upscale
from napari_tarrow.model import TapModel
from napari_tarrow.nn.heads import FrameBatchNorm


def test_tiles_cover_the_frame_once() -> None:
    cover = np.zeros((100, 70), int)
    for t in tile_grid((100, 70), 32, 20):
        cover[t.dest] += 1
        assert t.window[0].start % 8 == 0 and t.window[1].start % 8 == 0
    assert (cover == 1).all()


def _model(subsample: int = 1) -> TapModel:
    torch.manual_seed(0)
    m = TapModel(
        TapConfig(
            model=ModelConfig(
                features=8, unet_channels=8, head_features=8, subsample=subsample
            )
        )
    )
    # non-trivial BatchNorm statistics so eval mode is not the identity
    m.net.train()
    with torch.no_grad():
        for _ in range(3):
            m.net(torch.rand(4, 2, 64, 64))
    m.net.eval()
    return m


@pytest.fixture(scope="module")
def model() -> TapModel:
    return _model()


def test_tiled_features_equal_untiled(model: TapModel) -> None:
    frame = np.random.default_rng(1).random((157, 203), dtype=np.float32)
    full = frame_features(model, frame, tile=4096)
    tiled = frame_features(model, frame, tile=48)
    assert tiled.shape == (8, 157, 203)
    # tolerance: float32 convolutions over different window sizes may round differently
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-4)


def test_the_inference_copy_folds_the_batch_norms_and_gives_the_same_z(
    model: TapModel,
) -> None:
    from torch import nn

    from napari_tarrow.inference.features import inference_copy

    net = inference_copy(model)
    norms = [type(m) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == [FrameBatchNorm, FrameBatchNorm]  # the head's stay
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.net.modules()) > 2
    frame = np.random.default_rng(3).random((70, 90), dtype=np.float32)
    z = frame_features(model, frame)
    assert float(z.std()) > 0.1  # eval statistics are not the identity here
    torch.testing.assert_close(
        frame_features(model, frame, net=net), z, rtol=0, atol=1e-5
    )


def test_tiled_gradcam_equals_untiled(model: TapModel) -> None:
    rng = np.random.default_rng(2)
    z0 = frame_features(model, rng.random((90, 110), dtype=np.float32))
    z1 = frame_features(model, rng.random((90, 110), dtype=np.float32))
    full = gradcam(model, z0, z1, tile=4096)
    tiled = gradcam(model, z0, z1, tile=24)
    assert full.shape == (90, 110) and float(full.max()) > 0
    torch.testing.assert_close(tiled, full, rtol=1e-4, atol=1e-7)


def test_gradcam_matches_autograd_through_the_full_head(model: TapModel) -> None:
    rng = np.random.default_rng(3)
    z = torch.stack(
        [
            frame_features(model, rng.random((40, 48), dtype=np.float32))
            for _ in range(2)
        ]
    )[None].requires_grad_(True)
    logits = model.net.head(z)[0]
    (g,) = torch.autograd.grad(logits[0] - logits[1], z)  # log-odds of forward order
    zc = z - z.mean((-2, -1), keepdim=True)
    # each pixel's contribution from both frames together: sum over frames, then |.|
    contribution = (g.sum((-2, -1))[..., None, None] * zc).sum((1, 2))[0].detach()
    z0, z1 = z[0, 0].detach(), z[0, 1].detach()
    torch.testing.assert_close(
        gradcam(model, z0, z1, tile=16), contribution.abs(), rtol=1e-4, atol=1e-8
    )
    signed = gradcam(model, z0, z1, tile=16, signed=True)
    torch.testing.assert_close(signed, contribution, rtol=1e-4, atol=1e-8)
    assert signed.min() < 0 < signed.max()  # centred features: both signs occur


def test_subsampled_features_keep_the_frame_size_and_tile_exactly() -> None:
    model = _model(subsample=2)
    frame = np.random.default_rng(4).random((157, 203), dtype=np.float32)
    full = frame_features(model, frame, tile=4096)
    assert full.shape == (8, 157, 203)
    torch.testing.assert_close(
        frame_features(model, frame, tile=48), full, rtol=0, atol=1e-4
    )
    # the U-Net saw the frame at half the size, and z was upscaled back
    net, x = model.net, torch.as_tensor(frame)[None, None]
    with torch.no_grad():
        small = net.proj(net.backbone(downscale(x, 2)))
    assert small.shape == (1, 8, 79, 102)
    torch.testing.assert_close(full, upscale(small, 2, frame.shape)[0])


def test_gradcam_of_identical_frames_is_zero(model: TapModel) -> None:
    # the log-odds is antisymmetric in the frames: what both share cancels exactly
    rng = np.random.default_rng(5)
    z0 = frame_features(model, rng.random((48, 56), dtype=np.float32))
    z1 = frame_features(model, rng.random((48, 56), dtype=np.float32))
    same = gradcam(model, z0, z0.clone())
    differ = gradcam(model, z0, z1)
    assert float(same.max()) < 1e-5 * float(differ.max())


def test_the_automatic_tile_fits_the_free_memory(model, monkeypatch) -> None:
    from napari_tarrow.inference import features

    frame = np.random.default_rng(6).random((300, 200), dtype=np.float32)
    assert features.auto_tile(model, frame.shape) == 300  # plenty: the whole frame
    per_pixel = features.ACTIVATION_BYTES * model.config.model.unet_channels
    window = 160  # room for a 160-pixel window: a 48-pixel tile plus the 56-pixel halo
    monkeypatch.setattr(
        features, "available_memory", lambda _: 4 * per_pixel * window**2
    )
    assert features.auto_tile(model, frame.shape) == 48
    torch.testing.assert_close(
        frame_features(model, frame),
        frame_features(model, frame, tile=4096),
        atol=1e-4,
        rtol=0,
    )
