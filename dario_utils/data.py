"""Data: the report's split, the manifests between stages, and the Dataset that reads them.

Two sources, one manifest format (``runs/<profile>/manifests/{train,val,test}.csv``,
columns :data:`MANIFEST_COLUMNS`, paths relative to the data root in ``meta.json``):

- ``ilsvrc``: ILSVRC2012 as users keep it (``train/<wnid>/*.JPEG``; ``val/<wnid>/`` or a
  flat ``val/`` with ``LOC_val_solution.csv`` or the devkit's ground truth), split as the
  report did: ``ceil(15%)`` of each train class; each val class shuffled and halved.
- ``sample_folder``: a flat folder of ``<wnid>_*.JPEG`` files, seeded split by fractions
  (the demo's shipped thumbnails ``data/imagenet-sample-128``, or ImageNet sample images).

Images are never copied or modified.
"""
from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF
from tqdm import tqdm

from . import fileio, paths
from .config import Config
from .imagenet import imagenet_class_names, imagenet_wnids

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["path", "wnid", "label", "width", "height", "label_source", "group"]
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
MIN_IMAGE_SIDE = 8
WNID_PATTERN = re.compile(r"^(n\d{8})")


class DataError(ValueError):
    """The data root or its layout is not what the profile expects."""


class ImageReadError(OSError):
    """An image cannot be decoded or is too small; the message names the file."""


# ---------------------------------------------------------------- reading images


def load_rgb(path: Path) -> Image.Image:
    """Decode any image PIL reads (grayscale, CMYK, palette, PNG named .JPEG) as RGB."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from None
    if min(rgb.size) < MIN_IMAGE_SIDE:
        raise ImageReadError(f"image {path} is {rgb.size[0]}x{rgb.size[1]} px, smaller than {MIN_IMAGE_SIDE} px")
    return rgb


def _resize_crop(img: Image.Image, size: int) -> Image.Image:
    img = TF.resize(img, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(img, [size, size])


def resize_center_crop(img: Image.Image, size: int) -> torch.Tensor:
    """``Resize(size)`` then ``CenterCrop(size)``; a float tensor (3, size, size) in [0, 1]."""
    return TF.pil_to_tensor(_resize_crop(img, size)).float().div_(255.0).contiguous()


class ManifestDataset(Dataset):
    """Images of one manifest, prepared as the report did (Resize + CenterCrop).

    Items are dicts ``{"image", "label", "index"}``. An unreadable image raises
    :class:`ImageReadError`, or with ``skip_unreadable`` yields ``{"skipped": path}``
    which :func:`collate` turns into a count, so nothing is skipped silently.
    """

    def __init__(self, manifest: pd.DataFrame, root: Path, image_size: int, skip_unreadable: bool = False):
        self.manifest = manifest.reset_index(drop=True)
        self.root = Path(root)
        self.image_size = image_size
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.manifest.iloc[index]
        path = self.root / row["path"]
        if not path.is_file():
            error: Exception = ImageReadError(f"image listed in the manifest is missing: {path}")
        else:
            try:
                image = resize_center_crop(load_rgb(path), self.image_size)
                return {"image": image, "label": int(row["label"]), "index": index}
            except ImageReadError as err:
                error = err
        if self.skip_unreadable:
            return {"skipped": str(row["path"])}
        raise error


def mirror(image: torch.Tensor) -> torch.Tensor:
    """``image`` flipped left-right: the mirror of :class:`FlippedCopies` and of the head cached for it."""
    return image.flip(-1)


class FlippedCopies(Dataset):
    """A dataset followed by its mirror images: item ``n + i`` is item ``i`` flipped left-right,
    with ``"index"`` ``n + i`` (``n = len(dataset)``), so each epoch sees both copies."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 2 * len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.dataset)  # type: ignore[arg-type]
        item = self.dataset[index % n]
        if index < n or "skipped" in item:
            return item
        return {**item, "image": mirror(item["image"]), "index": index}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack readable items; list the skipped ones under ``"skipped"``."""
    kept = [item for item in items if "skipped" not in item]
    batch: dict[str, Any] = {"skipped": [item["skipped"] for item in items if "skipped" in item]}
    if kept:
        batch["image"] = torch.stack([item["image"] for item in kept])
        batch["label"] = torch.tensor([item["label"] for item in kept])
        batch["index"] = torch.tensor([item["index"] for item in kept])
    return batch


# ---------------------------------------------------------------- splits


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError):
        return (0, 0)  # recorded as 0x0; the Dataset names the file when it is read


def _rows(files: Iterable[Path], root: Path, wnid_of: Callable[[Path], str], label_source: str,
          desc: str) -> list[dict[str, Any]]:
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    rows = []
    for path in tqdm(list(files), desc=desc, unit="img", leave=False):
        wnid = wnid_of(path)
        width, height = _image_size(path)
        rows.append({"path": path.relative_to(root).as_posix(), "wnid": wnid, "label": index[wnid],
                     "width": width, "height": height, "label_source": label_source, "group": wnid})
    return rows


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_wnid(wnid: str, where: Path) -> str:
    if wnid not in set(imagenet_wnids()):
        raise DataError(f"'{wnid}' in {where} is not an ImageNet-1k class id (wnid)")
    return wnid


def _val_labels(root: Path) -> dict[str, str]:
    """Map flat val file stems to wnids from LOC_val_solution.csv or the devkit."""
    for candidate in (root / "LOC_val_solution.csv", root / "val" / "LOC_val_solution.csv"):
        if candidate.is_file():
            table = pd.read_csv(candidate)
            return {row.ImageId: row.PredictionString.split()[0] for row in table.itertuples()}
    for devkit in (root / "ILSVRC2012_devkit_t12", root / "devkit"):
        truth = devkit / "data" / "ILSVRC2012_validation_ground_truth.txt"
        meta = devkit / "data" / "meta.mat"
        if truth.is_file() and meta.is_file():
            from scipy.io import loadmat

            synsets = loadmat(meta, squeeze_me=True)["synsets"]
            id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
            ids = [int(line) for line in truth.read_text().split()]
            return {f"ILSVRC2012_val_{i + 1:08d}": id_to_wnid[v] for i, v in enumerate(ids)}
    raise DataError(
        f"the flat val folder {root / 'val'} has no labels file: put LOC_val_solution.csv in {root} "
        f"or the devkit (ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt and meta.mat), "
        f"or sort val images into val/<wnid>/ folders"
    )


def split_ilsvrc(root: Path, train_fraction: float = 0.15, seed: int = 2020) -> dict[str, list[dict]]:
    """The report's split of ILSVRC2012: ``ceil(n * fraction)`` of each train class;
    each val class shuffled and cut in halves (validation, test)."""
    train_dir, val_dir = root / "train", root / "val"
    for folder in (train_dir, val_dir):
        if not folder.is_dir():
            raise DataError(f"ILSVRC2012 layout expected: {folder} is missing (need train/<wnid>/ and val/)")
    rng = random.Random(seed)
    train_files: list[Path] = []
    for class_dir in sorted(p for p in train_dir.iterdir() if p.is_dir()):
        _check_wnid(class_dir.name, train_dir)
        files = _image_files(class_dir)
        if not files:
            raise DataError(f"train class folder {class_dir} holds no images; remove it or add its images")
        train_files += sorted(rng.sample(files, math.ceil(len(files) * train_fraction)))
    if not train_files:
        raise DataError(f"no class folders under {train_dir}")

    class_dirs = sorted(p for p in val_dir.iterdir() if p.is_dir())
    if class_dirs:
        by_class = {d.name: _image_files(d) for d in class_dirs}
        for wnid, files in by_class.items():
            _check_wnid(wnid, val_dir)
            if not files:
                raise DataError(f"val class folder {val_dir / wnid} holds no images")
    else:
        labels = _val_labels(root)
        by_class = {}
        for path in _image_files(val_dir):
            if path.stem not in labels:
                raise DataError(f"val image {path} has no label in the labels file")
            by_class.setdefault(_check_wnid(labels[path.stem], val_dir), []).append(path)
    rng = random.Random(seed)
    val_files, test_files = [], []
    for wnid in sorted(by_class):
        files = sorted(by_class[wnid])
        rng.shuffle(files)
        half = len(files) // 2
        val_files += files[:half]
        test_files += files[half:]
    wnid_of_val = {p: w for w, fs in by_class.items() for p in fs}
    return {
        "train": _rows(train_files, root, lambda p: p.parent.name, "folder", "train"),
        "val": _rows(val_files, root, wnid_of_val.__getitem__, "folder", "val"),
        "test": _rows(test_files, root, wnid_of_val.__getitem__, "folder", "test"),
    }


def _cut(items: Sequence, fractions: dict[str, float]) -> dict[str, list]:
    """Cut an already shuffled sequence into train/val/test by fractions."""
    if set(fractions) != set(SPLITS) or any(f < 0 for f in fractions.values()):
        raise DataError(f"data.fractions must give train, val and test (non-negative), got {fractions}")
    total = sum(fractions.values())
    n = len(items)
    n_train = round(n * fractions["train"] / total)
    n_val = round(n * fractions["val"] / total)
    return {"train": list(items[:n_train]), "val": list(items[n_train:n_train + n_val]),
            "test": list(items[n_train + n_val:])}


def split_sample_folder(root: Path, fractions: dict[str, float], seed: int = 2020) -> dict[str, list[dict]]:
    """Seeded split of a flat folder of ``<wnid>_*.JPEG`` files."""
    files = _image_files(root)
    if not files:
        raise DataError(f"no images in {root}: expected files named <wnid>_<name>.JPEG")
    wnids = {}
    for path in files:
        match = WNID_PATTERN.match(path.name)
        if not match:
            raise DataError(f"file {path} is not named <wnid>_*.JPEG, so its class is unknown")
        wnids[path] = _check_wnid(match.group(1), path)
    random.Random(seed).shuffle(files)
    return {split: _rows(sorted(chunk), root, wnids.__getitem__, "filename", split)
            for split, chunk in _cut(files, fractions).items()}


# ---------------------------------------------------------------- manifests


def resolve_data_root(config: Config) -> Path:
    """The folder the manifests' paths are relative to (a relative ``data_root`` is relative to
    the project root: the demo's shipped images)."""
    if not config.data_root:
        raise DataError(f"profile '{config.profile}' needs a data root: pass --data-root DIR "
                        f"(or DATA=DIR to make, or data_root in the profile)")
    root = (paths.PROJECT_ROOT / Path(config.data_root).expanduser()).resolve()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder; check --data-root")
    return root


def make_split(config: Config) -> dict[str, pd.DataFrame]:
    """Compute the profile's split (nothing is written; see :func:`write_manifests`)."""
    root = resolve_data_root(config)
    kind = config.data.kind
    if kind == "ilsvrc":
        splits = split_ilsvrc(root, config.data.train_fraction, config.data.split_seed)
    elif kind == "sample_folder":
        splits = split_sample_folder(root, config.data.fractions, config.data.split_seed)
    else:
        raise DataError(f"data.kind '{kind}' is unknown: use sample_folder or ilsvrc")
    frames = {split: pd.DataFrame(rows, columns=MANIFEST_COLUMNS) for split, rows in splits.items()}
    for split, frame in frames.items():
        if frame.empty:
            raise DataError(f"the {split} split of {root} is empty: add images or change data.fractions")
    return frames


def write_manifests(config: Config, frames: dict[str, pd.DataFrame]) -> Path:
    """Write ``{train,val,test}.csv`` and ``meta.json`` under ``runs/<profile>/manifests/``."""
    folder = fileio.ensure_dir(paths.manifests_dir(config.profile))
    for split, frame in frames.items():
        fileio.write_csv(frame, folder / f"{split}.csv")
    meta = {"kind": config.data.kind, "data_root": str(resolve_data_root(config)),
            "split_seed": config.data.split_seed, "counts": {s: len(f) for s, f in frames.items()}}
    fileio.write_text(folder / "meta.json", json.dumps(meta, indent=2) + "\n")
    return folder


def read_manifest(profile: str, split: str) -> tuple[pd.DataFrame, Path]:
    """A split's manifest and the data root its paths are relative to."""
    folder = paths.manifests_dir(profile)
    csv, meta = folder / f"{split}.csv", folder / "meta.json"
    if not csv.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no {split} manifest for profile '{profile}' at {csv}: "
                                f"run notebook 01 (python -m dario_utils.reproduce --profile {profile} --only 01)")
    return pd.read_csv(csv, dtype={"path": str, "wnid": str}), Path(json.loads(meta.read_text())["data_root"])


def manifest_dataset(config: Config, split: str) -> ManifestDataset:
    """The Dataset of one split of the profile's manifests."""
    frame, root = read_manifest(config.profile, split)
    given = resolve_data_root(config) if config.data_root else root
    if given != root:
        raise DataError(f"the manifests of profile '{config.profile}' list images under {root}, not under the "
                        f"data root given ({given}): rerun notebook 01 with that data root "
                        f"(python -m dario_utils.reproduce --profile {config.profile} --data-root DIR)")
    if frame.empty:
        raise DataError(f"the {split} split of profile '{config.profile}' has no images")
    return ManifestDataset(frame, root, config.data.image_size, config.data.skip_unreadable)


def training_set(config: Config) -> Dataset:
    """The train split as every fine-tuning of the study steps through it: with
    ``train.flipped_copies``, followed by its mirrors (:class:`FlippedCopies`)."""
    images = manifest_dataset(config, "train")
    return FlippedCopies(images) if config.train.flipped_copies else images


def split_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Images, classes, source groups and label sources per split."""
    sources = sorted(set(pd.concat(frames.values())["label_source"]))
    return pd.DataFrame([{"split": split, "images": len(frame), "classes": frame["label"].nunique(),
                          "groups": frame["group"].nunique(),
                          **{f"labels from {source}": int((frame["label_source"] == source).sum())
                             for source in sources}}
                         for split, frame in frames.items()]).set_index("split")


def class_names_of(labels: Iterable[int]) -> list[str]:
    """Readable ImageNet class names for class indices."""
    names = imagenet_class_names()
    return [names[int(label)] for label in labels]



def make_thumbnails(source: Path, target: Path, size: int, quality: int = 90) -> list[Path]:
    """Write a ``size`` px copy (Resize + CenterCrop, as the study prepares images) of every
    ``<wnid>_*.JPEG`` in ``source`` to ``target`` under the same name, as JPEG ``quality``.

    How the demo's shipped images (``data/imagenet-sample-128``) and the GPU bundle's
    256 px images are made; ``source`` is never modified.
    """
    files = [p for p in _image_files(source) if WNID_PATTERN.match(p.name)]
    if not files:
        raise DataError(f"no <wnid>_*.JPEG images in {source}")
    fileio.ensure_dir(target)
    written = []
    for path in tqdm(files, desc=f"thumbnails {size} px", unit="img"):
        image = _resize_crop(load_rgb(path), size)
        with fileio.atomic_path(target / path.name) as tmp:
            image.save(tmp, format="JPEG", quality=quality)
        written.append(target / path.name)
    return written
