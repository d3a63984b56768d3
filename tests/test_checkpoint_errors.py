"""Unusable checkpoint files (truncated, no PyTorch file, a pickle that weights_only loading
refuses): one line ``error: <path> is not a readable checkpoint: <reason>`` and exit 2 from
every command that takes a checkpoint, and the unsafe pickle is never unpickled."""
from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from conftest import write_jpeg
from dario_utils.core import paths
from dario_utils.core.paths import RunLayout
from dario_utils.data.dataset import MANIFEST_COLUMNS
from dario_utils.evaluation import evaluate, upscale
from dario_utils.training import train
from dario_utils.models import (
    CheckpointError, CheckpointReadError, RRDBNet, load_sr, read_sr_checkpoint, save_sr_checkpoint,
)

PROFILE = "ckpt-errors"
TINY = {"nf": 8, "nb": 1, "gc": 4}
UNPICKLED: list[str] = []  # what unsafe loading of an Unsafe object would append to


def _record_unpickling() -> None:
    UNPICKLED.append("unsafe code ran")


class Unsafe:
    """An object whose unpickling runs code (``_record_unpickling``): it must stay refused."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple]:
        return _record_unpickling, ()


def _valid(path: Path) -> Path:
    return save_sr_checkpoint(path, RRDBNet(**TINY, scale=4), {"profile": "test"})


def _truncated(path: Path) -> None:
    whole = _valid(path).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def _text(path: Path) -> None:
    path.write_text("these are not the weights you are looking for\n")


def _jpeg(path: Path) -> None:
    write_jpeg(path.with_suffix(".jpg"), 1).rename(path)


def _torch_save_custom(path: Path) -> None:
    torch.save({"state_dict": Unsafe()}, path)


def _pickle_custom(path: Path) -> None:
    with path.open("wb") as file:
        pickle.dump(Unsafe(), file)


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncated, "truncated or corrupt file ("),
    "text": (_text, "not a PyTorch file"),
    "jpeg": (_jpeg, "not a PyTorch file"),
    "torch-save-custom-class": (_torch_save_custom, "it holds objects that weights_only loading refuses ("),
    "pickle-custom-class": (_pickle_custom, "a plain pickle, not a PyTorch file, that weights_only loading refuses ("),
}


@pytest.fixture(params=list(BROKEN))
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A broken ``.pt`` file of each kind and the start of the reason it must be given."""
    make, reason = BROKEN[request.param]
    path = tmp_path / "broken" / "weights.pt"
    path.parent.mkdir()
    make(path)
    return path, reason


def _assert_one_error_line(err: str, path: Path, reason: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"error: {path} is not a readable checkpoint: {reason}"), err
    assert "Traceback" not in err and "architecture" not in err
    assert UNPICKLED == []


@pytest.fixture
def profile_file(tmp_path: Path, output_root: Path, broken: tuple[Path, str]) -> Path:
    """A tiny demo-kind profile starting from the broken file, with manifests of three JPEGs."""
    raw = yaml.safe_load(paths.profile_file("imagenet-sample").read_text())
    raw.update(profile=PROFILE, num_threads=1)
    raw["data"].update(image_size=32, num_workers=0)
    raw["teacher"]["weights"] = "random"
    raw["sr"].update(**TINY, pretrained=str(broken[0]))
    raw["train"].update(epochs=1, batch_size=2, max_batches=1, crop=32, frozen_blocks=None)  # a 1-block net
    raw["eval"].update(batch_size=2, bootstrap=10)
    path = tmp_path / f"{PROFILE}.yaml"
    path.write_text(yaml.safe_dump(raw))

    images = tmp_path / "images"
    rows = []
    for k in range(3):
        write_jpeg(images / f"{k}.JPEG", k)
        rows.append(f"{k}.JPEG,n01440764,0,48,40,test,g")
    manifests = RunLayout(PROFILE, output_root).manifests
    manifests.mkdir(parents=True)
    for split in ("train", "val", "test"):
        (manifests / f"{split}.csv").write_text("\n".join([",".join(MANIFEST_COLUMNS), *rows]) + "\n")
    (manifests / "meta.json").write_text(json.dumps({"data_root": str(images)}))
    return path


def test_reading_names_the_file_and_why(broken: tuple[Path, str]):
    path, reason = broken
    for read in (read_sr_checkpoint, load_sr):
        with warnings.catch_warnings(record=True) as caught, pytest.raises(CheckpointReadError) as err:
            warnings.simplefilter("always")
            read(path)
        assert not caught, "a warning would be a second line on stderr"
        assert isinstance(err.value, CheckpointError)
        _assert_one_error_line(f"error: {err.value}\n", path, reason)


def test_upscale(broken: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture):
    path, reason = broken
    image = write_jpeg(tmp_path / "photo.jpg", 1)
    out = tmp_path / "panels"
    code = upscale.main([str(image), "--sr", str(path), "--teacher-weights", "random", "--size", "32",
                         "--out", str(out)])
    assert code == 2
    _assert_one_error_line(capsys.readouterr().err, path, reason)
    assert not out.exists()


def test_evaluate(broken: tuple[Path, str], profile_file: Path, capsys: pytest.CaptureFixture):
    path, reason = broken
    code = evaluate.main(["--profile", str(profile_file), "--models", "darionet", "--checkpoint", str(path)])
    assert code == 2
    _assert_one_error_line(capsys.readouterr().err, path, reason)


def test_train_from_it(broken: tuple[Path, str], profile_file: Path, output_root: Path,
                      capsys: pytest.CaptureFixture):
    path, reason = broken
    assert train.main(["--profile", str(profile_file)]) == 2
    _assert_one_error_line(capsys.readouterr().err, path, reason)
    assert not (RunLayout(PROFILE, output_root).checkpoints / "darionet_last.pt").exists()


def test_valid_checkpoints_still_load(tmp_path: Path):
    net = load_sr(_valid(tmp_path / "zip.pt"))
    assert net.config["nb"] == 1 and not net.training
    legacy = tmp_path / "legacy.pt"  # the pickle format written before PyTorch 1.6
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    loaded = read_sr_checkpoint(legacy)
    assert loaded.config == net.config
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in net.state_dict().items())
