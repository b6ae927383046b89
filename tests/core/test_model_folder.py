import dataclasses
import json
import warnings

import pytest
import torch

from napari_tarrow.config import TapConfig, TrainConfig
from napari_tarrow.errors import ConfigError, ModelFolderError
from napari_tarrow.events import drain
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel
from napari_tarrow.training.loop import ValidationWarning, fine_tuning_config, train


def test_config_round_trips_and_rejects_bad_values(tmp_path) -> None:
    cfg = TapConfig(train=TrainConfig(epochs=3))
    cfg.save(tmp_path / "c.json")
    assert TapConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match="size=20"):
        TapConfig.from_dict({"data": {"size": 20}})
    with pytest.raises(ConfigError, match="unknown_key"):
        TapConfig.from_dict({"train": {"unknown_key": 1}})
    with pytest.raises(ConfigError, match="schema_version"):
        TapConfig.from_dict({"schema_version": 99})


SCHEMA_1 = {  # config.json as napari-tarrow wrote it before subsample and auto amp
    "data": {"delta": [1], "size": 96, "augment": True},
    "model": {"features": 32, "unet_depth": 3, "padding_mode": "zeros"},
    "train": {"epochs": 1000, "batch_size": 32, "amp": False, "seed": 1},
    "schema_version": 1,
}


def test_older_configs_migrate_and_future_ones_are_refused(tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SCHEMA_1))
    old = TapConfig.load(path)
    assert old.model.subsample == 1 and old.train.amp is False  # trained as named
    assert old.train.init_from == "" and old.data.size == 96
    assert old.data.foreground == 0  # crops were drawn uniformly before schema 3
    written = old.to_dict()
    assert written["schema_version"] == 3 and written["model"]["subsample"] == 1
    assert TapConfig.from_dict(written) == old
    schema_2 = {**written, "schema_version": 2, "data": {**written["data"]}}
    del schema_2["data"]["foreground"]
    assert TapConfig.from_dict(schema_2) == old
    with pytest.raises(ConfigError, match=r"schema_version=4 .*upgrade"):
        TapConfig.from_dict({**written, "schema_version": 4})
    with pytest.raises(ConfigError, match="amp=1 is invalid"):
        TapConfig.from_dict({**written, "train": {**written["train"], "amp": 1}})


def test_folder_round_trip_gives_identical_outputs(tiny_model_dir) -> None:
    m = TapModel.from_folder(tiny_model_dir)
    assert not m.net.training
    assert (tiny_model_dir / "metrics.jsonl").read_text().count("\n") == 1
    x = torch.rand(2, 2, 32, 32)
    m2 = TapModel.from_folder(tiny_model_dir, which="last")
    torch.testing.assert_close(m.net(x)[0], m2.net(x)[0])  # one epoch: best == last
    # resume state loads without pickle
    state = torch.load(tiny_model_dir / "resume.pt", weights_only=True)
    assert state["epoch"] == 1


def test_corrupt_and_foreign_folders_are_named(tmp_path, tiny_model_dir) -> None:
    with pytest.raises(ModelFolderError, match="does not exist"):
        TapModel.from_folder(tmp_path / "none")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model_state.pt").write_bytes(b"x")
    with pytest.raises(ModelFolderError, match="not a napari-tarrow model folder"):
        TapModel.from_folder(foreign)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (broken / "weights_best.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFolderError, match="corrupt"):
        TapModel.from_folder(broken)
    (broken / "config.json").write_text(json.dumps({"model": {"features": "many"}}))
    with pytest.raises(ModelFolderError, match="corrupt config"):
        TapModel.from_folder(broken)


def test_fine_tuning_starts_from_the_given_weights(
    tmp_path, tiny_model_dir, small_video
) -> None:
    start = TapModel.from_folder(tiny_model_dir)
    cfg = fine_tuning_config(TapConfig(data=start.config.data), start)
    assert cfg.model == start.config.model
    assert cfg.train.init_from == str(tiny_model_dir.resolve())
    out = tmp_path / "tuned"
    # stopped before its first step: the saved weights are the starting ones, bit for bit
    model = drain(train(cfg, [Video(small_video)], out, "cpu", stop=lambda: True))
    saved = TapModel.from_folder(out, which="last")
    for name, value in start.net.state_dict().items():
        assert torch.equal(saved.net.state_dict()[name], value), name
    assert model.config.train.init_from == str(tiny_model_dir.resolve())

    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, features=16))
    with pytest.raises(ConfigError, match="differs \\(features 16 here, 8 there\\)"):
        drain(train(other, [Video(small_video)], tmp_path / "other", "cpu"))
    assert not (tmp_path / "other").exists()  # refused before anything is written
    missing = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, init_from=str(tmp_path / "none"))
    )
    with pytest.raises(
        ModelFolderError, match=r"cannot fine-tune from .*does not exist"
    ):
        drain(train(missing, [Video(small_video)], tmp_path / "m", "cpu"))
    assert cfg.to_dict()["train"]["init_from"] == cfg.train.init_from


@pytest.mark.parametrize(
    ("split_val", "warned"),
    [((0.5, 1.0), None), ((0.8, 1.0), "holds only 1 frame pair"), ((0.95, 1.0), "no")],
)
def test_too_few_validation_pairs_are_warned_about(
    tmp_path, small_video, tiny_model_dir, split_val, warned
) -> None:
    start = TapModel.from_folder(tiny_model_dir).config
    cfg = dataclasses.replace(
        start, data=dataclasses.replace(start.data, split_val=split_val)
    )
    run = train(cfg, [Video(small_video)], tmp_path / "m", "cpu", stop=lambda: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drain(run)
    texts = [str(w.message) for w in caught if w.category is ValidationWarning]
    if warned is None:
        assert texts == []
    else:
        assert len(texts) == 1 and f"{split_val[0]:g}-1 of the time span" in texts[0]
        assert warned in texts[0] and "'best' weights" in texts[0]
