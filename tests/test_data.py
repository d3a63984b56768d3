"""Tests of dario_utils.data.dataset: the report's ILSVRC2012 split on a miniature tree in every
val layout, manifests (columns, seeded and byte-identical), the sample-folder split on real
ImageNet JPEGs, the demo's shipped thumbnails, and ManifestDataset on odd image files."""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import TREE_TRAIN_PER_CLASS, TREE_VAL_PER_CLASS, write_jpeg
from dario_utils.core import paths
from dario_utils.core.config import load_config
from dario_utils.core.paths import RunLayout
from dario_utils.data import dataset
from dario_utils.data.imagenet import imagenet_wnids

LAYOUTS = ("folders", "loc", "devkit")


def paper_config(root: Path, **overrides):
    return load_config("paper", {"data_root": str(root), "device": "cpu", "data.num_workers": 0, **overrides})


# ---------------------------------------------------------------- ILSVRC split


@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_ilsvrc_counts_and_labels(tmp_path: Path, make_ilsvrc_tree, tree_wnids, layout: str):
    root, truth = make_ilsvrc_tree(tmp_path / "ilsvrc", layout)
    splits = dataset.split_ilsvrc(root, train_fraction=0.15, seed=2020)
    assert set(splits) == {"train", "val", "test"}
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    for split, rows in splits.items():
        for row in rows:
            assert set(row) == set(dataset.MANIFEST_COLUMNS)
            assert row["path"] in truth, row["path"]
            assert row["wnid"] == truth[row["path"]], (layout, row)
            assert row["label"] == index[row["wnid"]]
            assert (row["width"], row["height"]) == (48, 40)
            assert row["path"].startswith("train/" if split == "train" else "val/")
    per_class = {split: Counter(row["wnid"] for row in rows) for split, rows in splits.items()}
    expected_train = math.ceil(TREE_TRAIN_PER_CLASS * 0.15)
    assert expected_train == 2
    for wnid in tree_wnids:
        assert per_class["train"][wnid] == expected_train
        assert per_class["val"][wnid] == TREE_VAL_PER_CLASS // 2
        assert per_class["test"][wnid] == TREE_VAL_PER_CLASS - TREE_VAL_PER_CLASS // 2
    val_paths = {row["path"] for row in splits["val"]}
    test_paths = {row["path"] for row in splits["test"]}
    assert not val_paths & test_paths
    assert val_paths | test_paths == {p for p in truth if p.startswith("val/")}


def test_val_halves_of_an_odd_class(tmp_path: Path, make_ilsvrc_tree, tree_wnids):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "folders", val_per_class=5)
    splits = dataset.split_ilsvrc(root, 0.15, 2020)
    assert Counter(r["wnid"] for r in splits["val"]) == {w: 2 for w in tree_wnids}
    assert Counter(r["wnid"] for r in splits["test"]) == {w: 3 for w in tree_wnids}


def test_devkit_labels_are_read_through_meta_mat(tmp_path: Path, make_ilsvrc_tree):
    root, truth = make_ilsvrc_tree(tmp_path / "ilsvrc", "devkit")
    labels = dataset._val_labels(root)
    expected = {Path(p).stem: w for p, w in truth.items() if p.startswith("val/")}
    assert labels == expected


def test_loc_labels_file_in_val_folder_is_found(tmp_path: Path, make_ilsvrc_tree):
    root, truth = make_ilsvrc_tree(tmp_path / "ilsvrc", "loc")
    (root / "LOC_val_solution.csv").rename(root / "val" / "LOC_val_solution.csv")
    labels = dataset._val_labels(root)
    assert labels == {Path(p).stem: w for p, w in truth.items() if p.startswith("val/")}
    # the CSV itself is not taken for an image
    rows = dataset.split_ilsvrc(root, 0.15, 2020)
    assert all(r["path"].endswith(".JPEG") for s in rows.values() for r in s)


def test_make_split_frames_have_manifest_columns(tmp_path: Path, make_ilsvrc_tree, output_root: Path):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "folders")
    frames = dataset.make_split(paper_config(root))
    assert set(frames) == {"train", "val", "test"}
    for frame in frames.values():
        assert list(frame.columns) == dataset.MANIFEST_COLUMNS
    assert not output_root.exists()  # make_split writes nothing


def _write(config, frames, out: Path) -> Path:
    return dataset.write_manifests(dataclasses.replace(config, output_root=out.resolve()), frames)


def test_manifests_same_seed_byte_identical_other_seed_differs(tmp_path: Path, make_ilsvrc_tree):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "loc")
    config = paper_config(root)
    folders = [_write(config, dataset.make_split(config), tmp_path / f"out{i}") for i in (1, 2)]
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == ["meta.json", "test.csv", "train.csv", "val.csv"]
    assert sorted(p.name for p in folders[1].iterdir()) == names
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    assert folders[0] == (tmp_path / "out1" / "runs" / "paper" / "manifests").resolve()

    other = paper_config(root, **{"data.split_seed": 7})
    folder3 = _write(other, dataset.make_split(other), tmp_path / "out3")
    for name in ("train.csv", "val.csv", "test.csv"):
        assert (folder3 / name).read_bytes() != (folders[0] / name).read_bytes(), name

    # the manifest reads back as written; paths are relative to meta.json's data root
    frame, data_root = dataset.read_manifest(RunLayout("paper", tmp_path / "out3"), "train")
    assert list(frame.columns) == dataset.MANIFEST_COLUMNS
    assert data_root == root.resolve()
    assert all((data_root / p).is_file() for p in frame["path"])


# ---------------------------------------------------------------- sample folder


def test_split_sample_folder_on_real_images(sample_dir: Path):
    fractions = {"train": 0.6, "val": 0.1, "test": 0.3}
    files = sorted(p.name for p in sample_dir.iterdir() if p.suffix.lower() in dataset.IMAGE_SUFFIXES)
    splits = dataset.split_sample_folder(sample_dir, fractions, seed=2020)
    n = len(files)
    counts = {split: len(rows) for split, rows in splits.items()}
    assert counts["train"] == round(n * 0.6) and counts["val"] == round(n * 0.1)
    assert sum(counts.values()) == n
    seen = [row["path"] for rows in splits.values() for row in rows]
    assert len(seen) == len(set(seen)) == n  # no file in two splits, none left out
    assert sorted(seen) == files
    wnids = imagenet_wnids()
    for rows in splits.values():
        for row in rows:
            assert row["path"].startswith(row["wnid"] + "_")
            assert wnids[row["label"]] == row["wnid"]
            assert row["label_source"] == "filename"
            assert row["width"] > 0 and row["height"] > 0
    again = dataset.split_sample_folder(sample_dir, fractions, seed=2020)
    assert again == splits
    other = dataset.split_sample_folder(sample_dir, fractions, seed=1)
    assert [r["path"] for r in other["test"]] != [r["path"] for r in splits["test"]]


def test_split_sample_folder_rejects_unnamed_file(tmp_path: Path):
    write_jpeg(tmp_path / "n01440764_a.JPEG", 1)
    write_jpeg(tmp_path / "holiday.JPEG", 2)
    with pytest.raises(dataset.DataError, match="holiday.JPEG"):
        dataset.split_sample_folder(tmp_path, {"train": 0.5, "val": 0.25, "test": 0.25})


def test_fractions_must_name_the_three_splits(tmp_path: Path):
    write_jpeg(tmp_path / "n01440764_a.JPEG", 1)
    with pytest.raises(dataset.DataError, match="fractions"):
        dataset.split_sample_folder(tmp_path, {"train": 0.5, "test": 0.5})


# ---------------------------------------------------------------- the demo's shipped images


def test_demo_profile_reads_the_shipped_thumbnails_with_true_labels(output_root: Path):
    config = load_config("demo", output_root=output_root)
    root = dataset.resolve_data_root(config)
    assert root == paths.PROJECT_ROOT / "data" / "imagenet-sample-128"
    frames = dataset.make_split(config)
    assert {s: len(f) for s, f in frames.items()} == {"train": 200, "val": 50, "test": 249}
    test = frames["test"]
    assert (test["label_source"] == "filename").all() and test["label"].nunique() == 249
    assert list(test["wnid"]) == [p[:9] for p in test["path"]]
    assert dataset.ManifestDataset(test, root, config.data.image_size)[0]["image"].shape == (3, 128, 128)


def test_make_thumbnails_resizes_and_keeps_names(tmp_path: Path):
    source = tmp_path / "src"
    write_jpeg(source / "n01440764_tench.JPEG", 1, size=(96, 64))
    write_jpeg(source / "n01443537_goldfish.JPEG", 2, size=(50, 80))
    (source / "notes.txt").write_text("not an image")
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    written = dataset.make_thumbnails(source, tmp_path / "thumbs", 32)
    assert sorted(p.name for p in written) == ["n01440764_tench.JPEG", "n01443537_goldfish.JPEG"]
    assert all(Image.open(p).size == (32, 32) for p in written)
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before  # the source is never modified


# ---------------------------------------------------------------- ManifestDataset


def _dataset(root: Path, names: list[str], size: int = 32, skip: bool = False) -> dataset.ManifestDataset:
    frame = pd.DataFrame([{"path": n, "wnid": "n01440764", "label": 0, "width": 0, "height": 0,
                           "label_source": "filename", "group": "x"} for n in names], columns=dataset.MANIFEST_COLUMNS)
    return dataset.ManifestDataset(frame, root, size, skip_unreadable=skip)


def _odd_images(root: Path) -> list[str]:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "wide.JPEG", quality=95)
    Image.fromarray(rgb[:, :20]).save(root / "tall.JPEG", quality=95)
    Image.fromarray(rgb[..., 0]).save(root / "gray.JPEG")  # mode L
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.JPEG", format="JPEG")
    Image.fromarray(rgb).save(root / "really_png.JPEG", format="PNG")
    Image.fromarray(rgb).convert("P").save(root / "palette.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(root / "rgba.png")
    return ["wide.JPEG", "tall.JPEG", "gray.JPEG", "cmyk.JPEG", "really_png.JPEG", "palette.png", "rgba.png"]


def test_dataset_gives_rgb_square_tensors(tmp_path: Path):
    names = _odd_images(tmp_path)
    with Image.open(tmp_path / "cmyk.JPEG") as img:
        assert img.mode == "CMYK"
    with Image.open(tmp_path / "really_png.JPEG") as img:
        assert img.format == "PNG"
    images = _dataset(tmp_path, names, size=24)
    assert len(images) == len(names)
    for i, name in enumerate(names):
        item = images[i]
        image = item["image"]
        assert image.shape == (3, 24, 24), name
        assert image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0, name
        assert float(image.max()) > 0.2, name  # not a blank tensor
        assert item["label"] == 0 and item["index"] == i
    gray = images[names.index("gray.JPEG")]["image"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_dataset_resize_then_center_crop(tmp_path: Path):
    # left third red, middle third green, right third blue: the centre crop is mostly green
    pixels = np.zeros((40, 120, 3), dtype=np.uint8)
    pixels[:, :40, 0] = 255
    pixels[:, 40:80, 1] = 255
    pixels[:, 80:, 2] = 255
    Image.fromarray(pixels).save(tmp_path / "bands.png")
    image = _dataset(tmp_path, ["bands.png"], size=20)[0]["image"]
    assert image.shape == (3, 20, 20)
    # Resize(20) keeps the aspect (20 x 60); CenterCrop(20) takes the middle band only
    assert float(image[1].mean()) > 0.95
    assert float(image[0].mean()) < 0.05 and float(image[2].mean()) < 0.05


def test_dataset_on_real_sample_image(sample_dir: Path):
    name = sorted(p.name for p in sample_dir.iterdir())[0]
    image = _dataset(sample_dir, [name], size=48)[0]["image"]
    assert image.shape == (3, 48, 48) and 0 <= float(image.min()) <= float(image.max()) <= 1
    assert float(image.std()) > 0.02


def _bad_images(root: Path) -> list[str]:
    write_jpeg(root / "good.JPEG", 1)
    blob = write_jpeg(root / "full.JPEG", 2, size=(64, 64)).read_bytes()
    (root / "truncated.JPEG").write_bytes(blob[: len(blob) // 3])
    Image.new("RGB", (1, 1), (10, 20, 30)).save(root / "tiny.JPEG")
    (root / "text.JPEG").write_text("not an image")
    return ["good.JPEG", "truncated.JPEG", "tiny.JPEG", "text.JPEG"]


@pytest.mark.parametrize("bad", ["truncated.JPEG", "tiny.JPEG", "text.JPEG"])
def test_unreadable_image_error_names_the_file(tmp_path: Path, bad: str):
    names = _bad_images(tmp_path)
    images = _dataset(tmp_path, names)
    with pytest.raises(dataset.ImageReadError) as err:
        images[names.index(bad)]
    assert str(tmp_path / bad) in str(err.value)


def test_skip_unreadable_yields_skipped_and_collate_counts_it(tmp_path: Path):
    names = _bad_images(tmp_path)
    images = _dataset(tmp_path, names, size=16, skip=True)
    items = [images[i] for i in range(len(names))]
    assert items[1] == {"skipped": "truncated.JPEG"}
    assert items[2] == {"skipped": "tiny.JPEG"}
    batch = dataset.collate(items)
    assert batch["skipped"] == ["truncated.JPEG", "tiny.JPEG", "text.JPEG"]
    assert batch["image"].shape == (1, 3, 16, 16)
    assert batch["label"].tolist() == [0] and batch["index"].tolist() == [0]
    only_bad = dataset.collate(items[1:])
    assert len(only_bad["skipped"]) == 3 and "image" not in only_bad

    loader = torch.utils.data.DataLoader(images, batch_size=2, collate_fn=dataset.collate)
    assert sum(len(b["skipped"]) for b in loader) == 3


def test_class_names_of():
    assert dataset.class_names_of([0, 1]) == ["tench", "goldfish"]
