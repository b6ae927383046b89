import numpy as np
import pytest
import torch

from napari_tarrow.errors import VideoError
from napari_tarrow.io.video import Video
from napari_tarrow.training.augment import augment_pairs, input_size
from napari_tarrow.training.pairs import PairSampler


def _ramp_video(n: int = 10) -> Video:
    """Frame t is constant t/ n plus a spatial pattern, so order is readable from values."""
    yy, xx = np.mgrid[:64, :64]
    pattern = (np.sin(yy / 5) * np.cos(xx / 7)).astype("f4")
    frames = np.stack([pattern * 0.01 + t for t in range(n)]).astype("f4")
    frames[:, 0, 0] = 0  # percentile anchors so normalisation keeps the offsets
    frames[:, -1, -1] = n
    return Video(frames, percentiles=(0, 100))


@pytest.mark.parametrize("budget", [None, 0], ids=["in-memory", "lazy"])
def test_labels_say_which_frame_is_earlier(budget) -> None:
    s = PairSampler(
        [_ramp_video()], [1, 2], (0, 1), 24, torch.device("cpu"), memory_budget=budget
    )
    assert s.lazy == (budget == 0)
    x, y = s.sample(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 2, 24, 24) and y.dtype == torch.int64
    m = x[:, :, 5:-5, 5:-5].mean((2, 3))
    earlier = (m[:, 1] < m[:, 0]).long()  # index of the frame with the smaller time
    assert torch.equal(earlier, y)
    assert 10 < int(y.sum()) < 54  # both orders occur


def test_fixed_seed_gives_identical_batches() -> None:
    s = PairSampler([_ramp_video()], [1], (0, 1), 32, torch.device("cpu"), augment=True)
    a = s.sample(8, torch.Generator().manual_seed(5))
    b = s.sample(8, torch.Generator().manual_seed(5))
    c = s.sample(8, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_joint_augmentation_keeps_the_pair_aligned() -> None:
    gen = torch.Generator().manual_seed(0)
    s_in = input_size(32)
    img = torch.rand(16, 1, s_in, s_in)
    pair = torch.cat([img, img * 0.5], 1)  # frame 1 = half of frame 0, pixel by pixel
    out = augment_pairs(pair, 32, gen, per_frame=False)
    assert out.shape == (16, 2, 32, 32)
    # jointly transformed: the pixel-wise relation survives up to the joint intensity change
    a, b = out[:, 0], out[:, 1]
    fit = (
        (a - a.mean((1, 2), keepdim=True)) * (b - b.mean((1, 2), keepdim=True))
    ).mean((1, 2))
    corr = fit / (a.std((1, 2)) * b.std((1, 2)))
    assert corr.min() > 0.999
    # ... while the geometry did change
    assert not torch.allclose(out[:, 0], pair[:, 0, :32, :32], atol=0.1)


def test_per_frame_augmentation_differs_between_frames() -> None:
    gen = torch.Generator().manual_seed(0)
    s_in = input_size(32)
    img = torch.rand(32, 1, s_in, s_in)
    out = augment_pairs(torch.cat([img, img], 1), 32, gen, per_frame=True)
    differs = (out[:, 0] - out[:, 1]).abs().amax((1, 2)) > 1e-4
    assert 8 < int(differs.sum()) <= 32


def test_no_pairs_in_interval_is_a_clear_error() -> None:
    with pytest.raises(VideoError, match="no frame pairs with delta"):
        PairSampler([_ramp_video(4)], [5], (0, 1), 24, torch.device("cpu"))


@pytest.mark.parametrize("budget", [None, 0], ids=["in-memory", "lazy"])
def test_frames_smaller_than_crop_are_padded(budget) -> None:
    v = Video(np.random.default_rng(0).random((4, 20, 30), dtype=np.float32))
    s = PairSampler([v], [1], (0, 1), 32, torch.device("cpu"), memory_budget=budget)
    x, _ = s.sample(4, torch.Generator())
    assert x.shape == (4, 2, 32, 32)
    assert float(x[:, :, 20:].abs().max()) == 0  # the padding


@pytest.mark.parametrize("budget", [None, 0], ids=["in-memory", "lazy"])
def test_subsampled_crops_come_from_block_means(budget) -> None:
    rng = np.random.default_rng(1)
    v = Video(rng.random((2, 64, 48), dtype=np.float32), percentiles=(0, 100))
    s = PairSampler(
        [v], [1], (0, 1), 32, torch.device("cpu"), memory_budget=budget, subsample=2
    )
    x, y = s.sample(8, torch.Generator().manual_seed(0))
    assert x.shape == (8, 2, 16, 16)  # crops of 32 video pixels, 16 at the network
    means = [v.frame(i).reshape(32, 2, 24, 2).mean((1, 3)) for i in (0, 1)]
    first = x[y == 0][:, 0] if (y == 0).any() else x[y == 1][:, 1]
    crop = first[0].numpy()  # find it in the block means of frame 0
    found = any(
        np.allclose(means[0][i : i + 16, j : j + 16], crop, atol=1e-6)
        for i in range(17)
        for j in range(9)
    )
    assert found


def _sparse_video() -> Video:
    """Two bright 24 px squares in a dark 160x160 field: cells are rare."""
    frames = np.zeros((3, 160, 160), np.float32)
    frames[:, 20:44, 30:54] = 1
    frames[:, 110:134, 100:124] = 1
    frames += np.random.default_rng(0).normal(0, 0.02, frames.shape).astype("f4")
    return Video(frames, percentiles=(0, 100))


@pytest.mark.parametrize("budget", [None, 0], ids=["in-memory", "lazy"])
def test_foreground_crops_hold_cells_where_uniform_crops_rarely_do(budget) -> None:
    def share_with_cells(foreground: float) -> float:
        s = PairSampler(
            [_sparse_video()], [1], (0, 1), 32, torch.device("cpu"),
            memory_budget=budget, foreground=foreground,
        )  # fmt: skip
        x, _ = s.sample(256, torch.Generator().manual_seed(0))
        cell = (x > 0.5).flatten(2).float().mean(2).amin(1)  # in both frames
        return float((cell >= 0.1).float().mean())

    uniform, chosen = share_with_cells(0.0), share_with_cells(0.1)
    assert uniform < 0.3  # measured 0.18-0.20
    assert chosen > 0.7  # measured 0.84-0.90 (8 places tried per crop)


def test_without_foreground_anywhere_the_first_place_is_kept() -> None:
    dark = Video(np.zeros((3, 64, 64), np.float32))  # constant: no foreground at all
    s = PairSampler([dark], [1], (0, 1), 32, torch.device("cpu"), foreground=0.5)
    x, y = s.sample(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 2, 32, 32) and y.shape == (16,)
