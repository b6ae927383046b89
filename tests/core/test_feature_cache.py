"""The frozen-feature cache: hits return the same features, and its size stays bounded."""

from __future__ import annotations

import numpy as np
import torch

import napari_tarrow.downstream.cache as cache_module
from napari_tarrow.downstream.cache import FeatureCache
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel


def test_the_cache_drops_the_least_recently_used_frames_past_its_bound(
    tiny_model_dir, small_video, monkeypatch
) -> None:
    model = TapModel.from_folder(tiny_model_dir, device="cpu")
    video = Video(small_video)
    one = 8 * small_video.shape[1] * small_video.shape[2] * 2  # C x Y x X float16
    cache = FeatureCache(model, max_bytes=2 * one)
    computed = []
    real = cache_module.frame_features
    monkeypatch.setattr(
        cache_module, "frame_features", lambda *a: computed.append(1) or real(*a)
    )
    first = cache.features(video, 0)
    cache.features(video, 1)
    torch.testing.assert_close(
        cache.features(video, 0), first
    )  # a hit: 0 is newest now
    assert len(computed) == 2 and len(cache) == 2 and cache.nbytes == 2 * one
    cache.features(video, 2)  # over the bound: frame 1, the least recently used, goes
    assert len(cache) == 2 and cache.nbytes == 2 * one
    cache.features(video, 0)
    assert len(computed) == 3  # still cached
    cache.features(video, 1)
    assert len(computed) == 4  # computed again
    torch.testing.assert_close(
        cache.features(video, 2), real(model, video.frame(2)), atol=1e-2, rtol=1e-2
    )


def test_a_frame_larger_than_the_bound_is_computed_but_not_kept(
    tiny_model_dir, small_video
) -> None:
    model = TapModel.from_folder(tiny_model_dir, device="cpu")
    cache = FeatureCache(model, max_bytes=10)
    z = cache.features(Video(small_video), 3)
    assert z.shape == (8, *small_video.shape[1:]) and len(cache) == 0
    assert np.isfinite(z.numpy()).all()


def test_the_default_bound_is_a_share_of_the_free_memory(tiny_model_dir) -> None:
    cache = FeatureCache(TapModel.from_folder(tiny_model_dir, device="cpu"))
    assert 0 < cache.max_bytes <= cache_module.MAX_BYTES
