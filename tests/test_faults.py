"""Faults and bad input: clear errors that name what is wrong, and nothing lost or
half-written (missing images, wrong data roots, bad layouts, unwritable outputs,
mismatched checkpoints, a writer that fails midway)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import write_jpeg
from dario_utils.core import fileio
from dario_utils.core.config import load_config
from dario_utils.data import dataset
from dario_utils.models import CheckpointError, load_sr, RRDBNet, save_sr_checkpoint
from dario_utils.runner import reproduce
from dario_utils.training.train import build_student


def _one_line(message: str) -> None:
    assert "\n" not in message.strip(), message


# ---------------------------------------------------------------- images and data roots


def test_image_listed_but_missing_names_it(tmp_path: Path):
    write_jpeg(tmp_path / "here.JPEG", 1)
    frame = pd.DataFrame([{"path": p, "wnid": "n01440764", "label": 0, "width": 48, "height": 40,
                           "label_source": "filename", "group": "n01440764"} for p in ("here.JPEG", "gone.JPEG")],
                         columns=dataset.MANIFEST_COLUMNS)
    images = dataset.ManifestDataset(frame, tmp_path, 32)
    assert images[0]["image"].shape == (3, 32, 32)
    with pytest.raises(dataset.ImageReadError) as err:
        images[1]
    assert str(tmp_path / "gone.JPEG") in str(err.value) and "missing" in str(err.value)
    skipping = dataset.ManifestDataset(frame, tmp_path, 32, skip_unreadable=True)
    assert skipping[1] == {"skipped": "gone.JPEG"}


@pytest.mark.parametrize("profile", ["imagenet-sample", "paper"])
def test_missing_data_root_is_one_line_naming_it_and_writes_nothing(tmp_path: Path, output_root: Path,
                                                                     profile: str):
    missing = tmp_path / "no" / "such" / "folder"
    config = load_config(profile, {"data_root": str(missing), "device": "cpu"}, output_root=output_root)
    with pytest.raises(dataset.DataError) as err:
        dataset.make_split(config)
    message = str(err.value)
    _one_line(message)
    assert str(missing) in message and "--data-root" in message
    assert not output_root.exists()
    assert not config.layout.manifests.exists()


def test_no_data_root_says_what_to_pass(output_root: Path):
    config = load_config("imagenet-sample", output_root=output_root)
    with pytest.raises(dataset.DataError) as err:
        dataset.make_split(config)
    _one_line(str(err.value))
    assert "--data-root" in str(err.value) and "imagenet-sample" in str(err.value)


def test_data_root_that_is_a_file(tmp_path: Path, output_root: Path):
    afile = write_jpeg(tmp_path / "n01440764_x.JPEG", 1)
    config = load_config("imagenet-sample", {"data_root": str(afile)}, output_root=output_root)
    with pytest.raises(dataset.DataError, match="not a folder"):
        dataset.make_split(config)


def test_wrong_data_root_on_the_runner_exits_2_and_writes_nothing(tmp_path: Path, output_root: Path,
                                                                   capsys: pytest.CaptureFixture):
    missing = tmp_path / "nope"
    code = reproduce.main(["--profile", "imagenet-sample", "--data-root", str(missing)])
    assert code == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert err.startswith("error: ") and str(missing) in err and "--data-root" in err
    assert not output_root.exists()


def test_sample_root_of_the_wrong_shape(tmp_path: Path, output_root: Path):
    """An ILSVRC-style tree given to the flat sample-folder profile: no images at its top."""
    (tmp_path / "tree" / "train" / "n01440764").mkdir(parents=True)
    config = load_config("imagenet-sample", {"data_root": str(tmp_path / "tree")}, output_root=output_root)
    with pytest.raises(dataset.DataError, match="<wnid>_<name>.JPEG"):
        dataset.make_split(config)
    assert not output_root.exists()


def test_ilsvrc_root_without_train_and_val(tmp_path: Path, output_root: Path):
    config = load_config("paper", {"data_root": str(tmp_path), "device": "cpu"}, output_root=output_root)
    with pytest.raises(dataset.DataError) as err:
        dataset.make_split(config)
    assert str(tmp_path / "train") in str(err.value)
    _one_line(str(err.value))


def test_flat_val_without_labels_file(tmp_path: Path, make_ilsvrc_tree, output_root: Path):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "none")
    config = load_config("paper", {"data_root": str(root), "device": "cpu"}, output_root=output_root)
    with pytest.raises(dataset.DataError) as err:
        dataset.make_split(config)
    message = str(err.value)
    assert "LOC_val_solution.csv" in message and str(root / "val") in message
    assert "ILSVRC2012_validation_ground_truth.txt" in message
    assert not output_root.exists()


def test_flat_val_image_without_label(tmp_path: Path, make_ilsvrc_tree):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "loc")
    stray = write_jpeg(root / "val" / "ILSVRC2012_val_00099999.JPEG", 99)
    with pytest.raises(dataset.DataError, match=str(stray)):
        dataset.split_ilsvrc(root)


@pytest.mark.parametrize("where", ["train", "val"])
def test_empty_class_folder_is_named(tmp_path: Path, make_ilsvrc_tree, tree_wnids, output_root: Path, where: str):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "folders")
    empty = root / where / tree_wnids[1]
    shutil.rmtree(empty)
    empty.mkdir()
    config = load_config("paper", {"data_root": str(root), "device": "cpu"}, output_root=output_root)
    with pytest.raises(dataset.DataError) as err:
        dataset.make_split(config)
    assert str(empty) in str(err.value) and "no images" in str(err.value)
    assert not output_root.exists()


def test_folder_that_is_not_a_class(tmp_path: Path, make_ilsvrc_tree):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "folders")
    write_jpeg(root / "train" / "holiday_photos" / "a.JPEG", 1)
    with pytest.raises(dataset.DataError, match="holiday_photos"):
        dataset.split_ilsvrc(root)


# ---------------------------------------------------------------- outputs


def test_unwritable_output_root(tmp_path: Path, make_ilsvrc_tree, monkeypatch: pytest.MonkeyPatch):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "folders")
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    config = load_config("paper", {"data_root": str(root), "device": "cpu"}, output_root=blocker / "x")
    frames = dataset.make_split(config)
    with pytest.raises(fileio.OutputNotWritableError) as err:
        dataset.write_manifests(config, frames)
    message = str(err.value)
    assert str(config.layout.manifests) in message
    assert "DARIO_OUTPUT_ROOT" in message
    _one_line(message)
    assert blocker.read_text() == "a file, not a folder"


def test_ensure_dir_and_write_text_name_the_folder(tmp_path: Path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(fileio.OutputNotWritableError, match=str(blocker / "sub")):
        fileio.ensure_dir(blocker / "sub")
    with pytest.raises(fileio.OutputNotWritableError, match=str(blocker / "sub")):
        fileio.write_text(blocker / "sub" / "table1.md", "hello")


def test_atomic_path_failure_keeps_old_content_and_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "results" / "per_image.csv"
    fileio.write_text(target, "old content\n")
    with pytest.raises(RuntimeError, match="writer died"):
        with fileio.atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_text("half-writ")
            raise RuntimeError("writer died")
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["per_image.csv"]

    fileio.write_text(target, "new content\n")
    assert target.read_text() == "new content\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["per_image.csv"]


def test_atomic_path_failure_on_new_target_leaves_nothing(tmp_path: Path):
    target = tmp_path / "table1.csv"
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- checkpoints


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    net = RRDBNet(nf=8, nb=1, gc=4, scale=4)
    return save_sr_checkpoint(tmp_path / "tiny.pt", net, {"profile": "test"})


def test_checkpoint_of_another_architecture(tiny_checkpoint: Path, output_root: Path):
    config = load_config("demo", {"sr.pretrained": str(tiny_checkpoint), "sr.nf": 8, "sr.nb": 2, "sr.gc": 4})
    with pytest.raises(CheckpointError) as err:
        build_student(config, "cpu")
    message = str(err.value)
    assert "nb=1" in message and "requested 2" in message and str(tiny_checkpoint) in message
    with pytest.raises(CheckpointError, match="nf=8"):
        load_sr(tiny_checkpoint, expect_config={"nf": 16})
    # the matching architecture loads
    fitting = load_config("demo", {"sr.pretrained": str(tiny_checkpoint), "sr.nf": 8, "sr.nb": 1, "sr.gc": 4})
    assert build_student(fitting, "cpu").config["nb"] == 1


def test_file_that_is_no_checkpoint(tmp_path: Path):
    bogus = tmp_path / "weights.pt"
    import torch

    torch.save({"fc.weight": torch.zeros(2, 2)}, bogus)
    with pytest.raises(CheckpointError):
        load_sr(bogus)


def test_missing_start_weights_say_where_to_put_them(output_root: Path, tmp_path: Path):
    config = load_config("paper", {"device": "cpu"}, output_root=output_root)
    with pytest.raises(FileNotFoundError) as err:
        build_student(config, "cpu")
    assert "RRDB_PSNR_x4.pth" in str(err.value) and str(tmp_path / "weights-cache") in str(err.value)


def test_missing_image_in_a_worker_process_still_names_it(tmp_path: Path):
    """With DataLoader workers (the paper profile uses 8) the error crosses a process boundary."""
    import torch

    frame = pd.DataFrame([{"path": "gone.JPEG", "wnid": "n01440764", "label": 0, "width": 48, "height": 40,
                           "label_source": "filename", "group": "n01440764"}], columns=dataset.MANIFEST_COLUMNS)
    loader = torch.utils.data.DataLoader(dataset.ManifestDataset(frame, tmp_path, 32), batch_size=1,
                                         num_workers=1, collate_fn=dataset.collate)
    with pytest.raises(dataset.ImageReadError) as err:
        next(iter(loader))
    assert str(tmp_path / "gone.JPEG") in str(err.value)


def test_data_root_other_than_the_manifests_is_refused(tmp_path: Path, make_ilsvrc_tree, output_root: Path):
    """Training or evaluating with a --data-root other than the one the split was made from is an error."""
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "folders")
    config = load_config("paper", {"data_root": str(root), "device": "cpu"}, output_root=output_root)
    dataset.write_manifests(config, dataset.make_split(config))
    assert len(dataset.manifest_dataset(config, "train")) > 0
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(dataset.DataError) as err:
        other_root = load_config("paper", {"data_root": str(other), "device": "cpu"}, output_root=output_root)
        dataset.manifest_dataset(other_root, "train")
    _one_line(str(err.value))
    assert str(root) in str(err.value) and str(other) in str(err.value) and "notebook 01" in str(err.value)
