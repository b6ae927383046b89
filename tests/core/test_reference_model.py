"""Model folders of the reference implementation (weigertlab/tarrow) load into TapModel.

The fake reference folders hold one of our models' weights renamed to the
reference's module names, with the equivalences the loader must undo made
visible (conv biases folded into BatchNorm means, an equivariant bias moved
from L to G, the decoder's skip channels first), and the outputs are checked
against both our model and a functional forward pass written from the
reference's layer structure.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from napari_tarrow.cli import main
from napari_tarrow.config import ModelConfig, TapConfig
from napari_tarrow.errors import ConfigError, ModelFolderError
from napari_tarrow.inference.features import frame_features
from napari_tarrow.inference.tiling import tile_grid
from napari_tarrow.model import TapModel
from napari_tarrow.model.card import model_card
from napari_tarrow.model.reference import is_reference_folder
from napari_tarrow.nn.tapnet import TapNet

DEPTH = 3
KWARGS = {
    "backbone": "unet_16fmaps",
    "classification_head": "minimal",
    "commit": "0123abc",
    "n_features": 8,
    "n_frames": 2,
    "n_input_channels": 1,
    "outdir": "runs/hela_backbone_unet_16fmaps",
    "projection_head": "minimal_batchnorm",
    "symmetric": True,
}
REF_CONFIG = ModelConfig(
    features=8, unet_channels=16, head_features=8, padding_mode="replicate"
)


@pytest.fixture(scope="module")
def ours() -> TapModel:
    """Our network as a reference 'unet_16fmaps' model, with non-trivial BatchNorms."""
    torch.manual_seed(0)
    m = TapModel(TapConfig(model=REF_CONFIG))
    with torch.no_grad():
        for mod in m.net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
        m.net.head.final.L.weight.normal_(0, 3)  # logits that tell frames apart
    m.net.eval()
    return m


def to_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict under the reference's names, stored the way it stores them."""
    g = torch.Generator().manual_seed(1)
    s = {k: v.clone() for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}

    def bn(ours: str, ref: str, conv_bias: torch.Tensor | None = None) -> None:
        for name in ("weight", "bias", "running_var", "num_batches_tracked"):
            out[f"{ref}.{name}"] = s[f"{ours}.{name}"]
        shift = 0 if conv_bias is None else conv_bias
        out[f"{ref}.running_mean"] = s[f"{ours}.running_mean"] + shift

    def block(ours: str, ref: str, up_channels: int = 0) -> None:
        for conv in (0, 3):
            w = s[f"{ours}.{conv}.weight"]
            if conv == 0 and up_channels:  # ours [up, skip] -> reference [skip, up]
                w = torch.cat([w[:, up_channels:], w[:, :up_channels]], 1)
            bias = torch.randn(w.shape[0], generator=g)
            out[f"{ref}.conv_block.{conv}.weight"] = w
            out[f"{ref}.conv_block.{conv}.bias"] = bias
            bn(f"{ours}.{conv + 1}", f"{ref}.conv_block.{conv + 1}", bias)

    for i in range(DEPTH):
        block(f"backbone.down.{i}", f"backbone.l_conv.{i}")
    block("backbone.bottom", f"backbone.l_conv.{DEPTH}")
    for k in range(DEPTH):  # our up[k] is the reference's r_conv[DEPTH - 1 - k]
        up = s[f"backbone.up.{k}.3.weight"].shape[0] * 2
        block(f"backbone.up.{k}", f"backbone.r_conv.{DEPTH - 1 - k}", up)
    for name in ("weight", "bias"):
        out[f"backbone.head.{name}"] = s[f"backbone.out.{name}"]
        out[f"projection_head.layers.0.{name}"] = s[f"proj.0.{name}"]
    bn("proj.1", "projection_head.layers.1")

    def equivariant(ours: str, ref: str) -> None:
        g_bias = torch.randn(s[f"{ours}.L.bias"].shape, generator=g)
        out[f"{ref}.L.weight"] = s[f"{ours}.L.weight"]
        out[f"{ref}.L.bias"] = s[f"{ours}.L.bias"] - g_bias
        out[f"{ref}.G.weight"] = s[f"{ours}.G.weight"]
        out[f"{ref}.G.bias"] = g_bias

    for n in (1, 2):
        ref = f"classification_head.layers.{n - 1}.layers.0"
        equivariant(f"head.layer{n}", ref)
        bn(f"head.norm{n}", f"{ref}.norm")
    equivariant("head.final", "classification_head.head.1.layers.0")
    return out


def reference_logits(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The reference network's eval-mode forward pass, (B, 2, Y, X) -> (B, 2).

    Written from its layer structure: recursive U-Net levels l_conv[i] (conv with
    bias, BN, LeakyReLU, twice, replicate padding), max-pool, nearest upsampling,
    r_conv[i] on [skip, up], a 1x1 head; 1x1 conv + BN projection; equivariant
    layers L x + mean_T(G x) on channels-last tensors with BatchNorm1d, LeakyReLU,
    average pooling, and a final equivariant layer. Sides must be multiples of 8.
    """

    def norm(h: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(
            h,
            sd[f"{p}.running_mean"],
            sd[f"{p}.running_var"],
            sd[f"{p}.weight"],
            sd[f"{p}.bias"],
            False,
            0.0,
            1e-5,
        )

    def block(h: torch.Tensor, p: str) -> torch.Tensor:
        for conv in (0, 3):
            h = F.pad(h, (1, 1, 1, 1), mode="replicate")
            h = F.conv2d(h, sd[f"{p}.{conv}.weight"], sd[f"{p}.{conv}.bias"])
            h = F.leaky_relu(norm(h, f"{p}.{conv + 1}"))
        return h

    def level(h: torch.Tensor, i: int) -> torch.Tensor:
        skip = block(h, f"backbone.l_conv.{i}.conv_block")
        if i == DEPTH:
            return skip
        up = F.interpolate(level(F.max_pool2d(skip, 2), i + 1), scale_factor=2)
        return block(torch.cat([skip, up], 1), f"backbone.r_conv.{i}.conv_block")

    b, t = x.shape[:2]
    f = F.conv2d(level(x.reshape(b * t, 1, *x.shape[2:]), 0), *_wb(sd, "backbone.head"))
    z = norm(
        F.conv2d(f, *_wb(sd, "projection_head.layers.0")), "projection_head.layers.1"
    )
    h = z.view(b, t, *z.shape[1:]).permute(0, 3, 4, 1, 2)  # (B, Y, X, T, C)

    def equivariant(h: torch.Tensor, p: str) -> torch.Tensor:
        return F.linear(h, *_wb(sd, f"{p}.L")) + F.linear(h, *_wb(sd, f"{p}.G")).mean(
            -2, keepdim=True
        )

    for n in (0, 1):
        p = f"classification_head.layers.{n}.layers.0"
        h = equivariant(h, p)
        h = F.leaky_relu(norm(h.flatten(0, -2), f"{p}.norm").view(h.shape))
    pooled = h.mean(dim=(1, 2))  # (B, T, C)
    return equivariant(pooled, "classification_head.head.1.layers.0")[..., 0]


def _wb(sd: dict[str, torch.Tensor], p: str) -> tuple[torch.Tensor, torch.Tensor]:
    return sd[f"{p}.weight"], sd[f"{p}.bias"]


def write_folder(
    folder: Path, state: dict[str, torch.Tensor] | None, **changes: object
) -> Path:
    """A reference model folder: model_kwargs.yaml, model_state.pt, train_args.yaml."""
    folder.mkdir(parents=True)
    (folder / "model_kwargs.yaml").write_text(yaml.dump({**KWARGS, **changes}))
    if state is not None:
        torch.save(state, folder / "model_state.pt")
    # tarrow dumps its argparse namespace unsafely: tuples carry Python tags
    args = {"delta": [2], "size": 48, "split_train": ((0.1, 1.0),), "gpu": "0"}
    (folder / "train_args.yaml").write_text(yaml.dump(args))
    return folder


@pytest.fixture(scope="module")
def ref_state(ours: TapModel) -> dict[str, torch.Tensor]:
    return to_reference(ours.net.state_dict())


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory, ref_state) -> Path:
    return write_folder(tmp_path_factory.mktemp("ref") / "tap", ref_state)


def test_reference_folder_reproduces_the_model(ours, ref_state, ref_dir) -> None:
    assert is_reference_folder(ref_dir)
    assert "python/tuple" in (ref_dir / "train_args.yaml").read_text()
    m = TapModel.from_folder(ref_dir)
    assert not m.net.training and m.folder == ref_dir
    assert m.config.model == REF_CONFIG
    assert model_card(m).summary().endswith(": no training record (trained elsewhere)")
    assert (m.config.data.delta, m.config.data.size) == ((2,), 48)
    torch.manual_seed(3)
    bright = torch.tensor([1.0, 4.0]).view(1, 2, 1, 1)  # frames the head tells apart
    with torch.no_grad():
        for shape in [(40, 32), (37, 29)]:  # on and off the pooling grid
            x = torch.rand(2, 2, *shape) * bright
            want, z_want = ours.net(x)
            got, z = m.net(x)
            torch.testing.assert_close(z, z_want, rtol=0, atol=1e-5)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        x = torch.rand(2, 2, 32, 40) * bright
        ref = reference_logits(ref_state, x)
        torch.testing.assert_close(m.net(x)[0], ref, rtol=0, atol=1e-5)
        # the padding option matters: with zeros the same weights give other z
        zeros = TapNet(replace(REF_CONFIG, padding_mode="zeros")).eval()
        zeros.load_state_dict(m.net.state_dict())
        frames = x.flatten(0, 1)[:, None]
        assert (zeros.features(frames) - m.net.features(frames)).abs().max() > 1e-2
    assert (got[:, 0] - got[:, 1]).abs().min() > 1e-3  # far above the tolerance


def test_padding_mode_is_a_validated_config_option() -> None:
    assert TapConfig.from_dict({"model": {}}).model.padding_mode == "zeros"  # old files
    cfg = TapConfig(model=REF_CONFIG)
    assert TapConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="padding_mode='reflect'"):
        ModelConfig(padding_mode="reflect")


def test_replicate_padding_tiles_without_seams() -> None:
    torch.manual_seed(5)
    cfg = ModelConfig(
        features=4,
        unet_depth=2,
        unet_channels=4,
        head_features=4,
        padding_mode="replicate",
    )
    m = TapModel(TapConfig(model=cfg))
    m.net.eval()
    halo = m.net.backbone.receptive_radius
    frame = np.random.default_rng(4).random((4 * halo + 3, 3 * halo), dtype=np.float32)
    full = frame_features(m, frame, tile=4096)
    tiled = frame_features(m, frame, tile=halo)
    windows = [t.window[0] for t in tile_grid(frame.shape, halo, halo, cfg.multiple)]
    assert any(w.start > 0 and w.stop < frame.shape[0] for w in windows)  # inner edges
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"backbone": "resnet18"}, "backbone: 'resnet18'"),
        ({"symmetric": False}, "symmetric: False"),
        ({"classification_head": "linear"}, "classification_head: 'linear'"),
        ({"projection_head": "three_3x3convs"}, "projection_head: 'three_3x3convs'"),
        ({"n_frames": 3}, "n_frames: 3"),
        ({"n_input_channels": 2}, "n_input_channels: 2"),
        ({"padding": "zeros"}, "options napari-tarrow does not know: ['padding']"),
    ],
)
def test_architectures_we_do_not_implement_are_named(
    tmp_path, ref_state, changes, words
) -> None:
    folder = write_folder(tmp_path / "tap", ref_state, **changes)
    with pytest.raises(ModelFolderError) as err:
        TapModel.from_folder(folder)
    msg = str(err.value)
    assert (
        words in msg and "'unet' or 'unet_16fmaps'" in msg and "symmetric: true" in msg
    )


def test_weights_that_do_not_fit_the_kwargs_are_named(tmp_path, ref_state) -> None:
    wide = write_folder(tmp_path / "wide", ref_state, n_features=16)
    with pytest.raises(
        ModelFolderError,
        match=r"does not fit.*'unet_16fmaps', n_features 16\): size mismatch for proj",
    ):
        TapModel.from_folder(wide)
    many = write_folder(tmp_path / "many", ref_state, n_features="many")
    with pytest.raises(ModelFolderError, match=r"n_features: 'many' is invalid"):
        TapModel.from_folder(many)
    big = write_folder(tmp_path / "big", ref_state, backbone="unet")
    with pytest.raises(ModelFolderError, match=r"does not fit.*'unet', n_features 8"):
        TapModel.from_folder(big)
    partial = {k: v for k, v in ref_state.items() if "r_conv.1" not in k}
    with pytest.raises(
        ModelFolderError, match=r"lacks backbone.r_conv.1.conv_block.0.weight"
    ):
        TapModel.from_folder(write_folder(tmp_path / "partial", partial))
    extra = {**ref_state, "module.extra": torch.zeros(1)}
    with pytest.raises(ModelFolderError, match=r"unexpected keys \['module.extra'\]"):
        TapModel.from_folder(write_folder(tmp_path / "extra", extra))


def test_corrupt_or_pickled_files_get_a_clear_message(tmp_path, ref_state) -> None:
    folder = write_folder(tmp_path / "tap", ref_state)
    state = folder / "model_state.pt"
    good = state.read_bytes()
    state.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(
        ModelFolderError, match=r"corrupt or not a file written by torch.save"
    ):
        TapModel.from_folder(folder)
    state.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFolderError, match=r"corrupt"):
        TapModel.from_folder(folder)
    torch.save(nn.Linear(2, 2), state)  # a whole pickled module, as model_full.pt is
    with pytest.raises(ModelFolderError) as err:
        TapModel.from_folder(folder)
    msg = str(err.value)
    assert "pickles Python objects (torch.nn.modules.linear.Linear" in msg
    assert "torch.save(m.state_dict()" in msg
    torch.save({"model": ref_state}, state)
    with pytest.raises(ModelFolderError, match=r"not a state dict"):
        TapModel.from_folder(folder)
    state.rename(folder / "model_full.pt")
    with pytest.raises(
        ModelFolderError,
        match=r"model_full.pt .* but no model_state.pt; .*torch.load\('.*model_full.pt'",
    ):
        TapModel.from_folder(folder)
    (folder / "model_kwargs.yaml").write_text("backbone: [unet\n")
    with pytest.raises(ModelFolderError, match=r"model_kwargs.yaml is unreadable"):
        TapModel.from_folder(folder)
    (folder / "model_kwargs.yaml").write_text("- unet\n")
    with pytest.raises(ModelFolderError, match=r"holds list"):
        TapModel.from_folder(folder)


def test_cli_attribute_and_features_on_a_reference_folder(
    tmp_path, ref_dir, small_video
) -> None:
    video = tmp_path / "video.tif"
    tifffile.imwrite(
        video, (small_video[:4, :40, :48] * 1000).astype("u2"), photometric="minisblack"
    )
    cam = tmp_path / "cam.tif"
    assert (
        main(
            [
                "attribute",
                str(ref_dir),
                str(video),
                "--out",
                str(cam),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    maps = tifffile.imread(cam)
    assert maps.shape == (3, 40, 48) and np.isfinite(maps).all() and maps.max() > 0
    feats = tmp_path / "features.tif"
    assert (
        main(
            [
                "features",
                str(ref_dir),
                str(video),
                "--out",
                str(feats),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert tifffile.imread(feats).shape == (4, 8, 40, 48)
