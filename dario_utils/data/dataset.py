"""Data: the report's split, the manifests between stages, and the Dataset that reads them.

Two sources, one manifest format (``runs/<profile>/manifests/{train,val,test}.csv``,
columns :data:`MANIFEST_COLUMNS`, paths relative to the data root in ``meta.json``):

- ``ilsvrc``: ILSVRC2012 as users keep it (``train/<wnid>/*.JPEG``; ``val/<wnid>/`` or a
  flat ``val/`` with ``LOC_val_solution.csv`` or the devkit's ground truth), split as the
  report did: ``ceil(15%)`` of each train class; each val class shuffled and halved.
- ``sample_folder``: a flat folder of ``<wnid>_*.JPEG`` files, seeded split by fractions
  (the demo's shipped thumbnails ``data/imagenet-sample-128``, or ImageNet sample images).

At split time every image is read whole (its bytes hashed, decoded at reduced scale): an
unreadable one (corrupt, truncated, empty, no image, smaller than ``MIN_IMAGE_SIDE``) is a
:class:`DataError` naming it, or with ``data.skip_unreadable`` left out of the manifests and
counted (:func:`split_summary`, ``meta.json``'s ``skipped``). ``meta.json`` records the sha256
of the listed images' bytes (``images_sha256``), which identifies the data by content,
wherever the folder lies.

Images are never copied or modified.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF
from tqdm import tqdm

from dario_utils.core import fileio, paths
from dario_utils.core.config import Config
from dario_utils.core.paths import RunLayout
from dario_utils.data.imagenet import imagenet_class_names, imagenet_wnids

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["path", "wnid", "label", "width", "height", "label_source", "group"]
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
MIN_IMAGE_SIDE = 8
WNID_PATTERN = re.compile(r"^(n\d{8})")


class DataError(ValueError):
    """The data root or its layout is not what the profile expects."""


class ImageReadError(OSError):
    """An image cannot be decoded or is too small; the message names the file.

    Raised in a DataLoader worker, it comes back as torch re-creates it, from a message that
    wraps the worker's traceback: the original one-line message is taken back out of it."""

    def __init__(self, message: str) -> None:
        wrapped = re.search(r"ImageReadError: (.*)\s*\Z", message) if "\nOriginal Traceback" in message else None
        super().__init__(wrapped.group(1).strip() if wrapped else message)


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


def inspect_image(path: Path) -> tuple[int, int, str]:
    """Width, height and the sha256 of the bytes of an image file, read whole and decoded (a JPEG
    at 1/8 scale, which still reads every byte); :class:`ImageReadError` naming the file where
    it cannot be read, is empty, no image, truncated or corrupt, or smaller than ``MIN_IMAGE_SIDE``."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"cannot read image {path}: {err.strerror or err}") from None
    if not raw:
        raise ImageReadError(f"image {path} is an empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            size = img.size
            if img.format == "JPEG":
                img.draft(None, (max(size[0] // 8, 1), max(size[1] // 8, 1)))
            img.load()
    except UnidentifiedImageError:
        raise ImageReadError(f"image {path} is no image file PIL can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImageReadError(f"image {path} is truncated or corrupt ({reason})") from None
    if min(size) < MIN_IMAGE_SIDE:
        raise ImageReadError(f"image {path} is {size[0]}x{size[1]} px, smaller than {MIN_IMAGE_SIDE} px")
    return size[0], size[1], hashlib.sha256(raw).hexdigest()


class SplitFrames(dict):
    """A split's manifests (``{"train": frame, ...}``, what :func:`make_split` returns) with what
    reading its images found: each listed image's sha256 (``digests``, by path) and, with
    ``data.skip_unreadable``, the images left out, per split (``skipped``: ``path: reason``)."""

    def __init__(self, frames: dict[str, pd.DataFrame], digests: dict[str, str],
                 skipped: dict[str, list[str]]) -> None:
        super().__init__(frames)
        self.digests = digests
        self.skipped = skipped

    def images_sha256(self) -> str:
        """Short sha256 over the listed images' bytes, split by split in manifest order."""
        digest = hashlib.sha256()
        for split, frame in self.items():
            digest.update(split.encode())
            for path in frame["path"]:
                digest.update(self.digests[path].encode())
        return digest.hexdigest()[:12]


class _ImageCheck:
    """What :func:`_rows` found reading the images: their digests, and those it left out (with
    ``skip_unreadable``; else an unreadable image is a :class:`DataError`)."""

    def __init__(self, skip_unreadable: bool = False) -> None:
        self.skip_unreadable = skip_unreadable
        self.digests: dict[str, str] = {}
        self.skipped: dict[str, list[str]] = {}


def _rows(files: Iterable[Path], root: Path, wnid_of: Callable[[Path], str], label_source: str,
          desc: str, check: _ImageCheck | None = None, progress: bool = True) -> list[dict[str, Any]]:
    check = check if check is not None else _ImageCheck()
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    rows = []
    for path in tqdm(list(files), desc=desc, unit="img", leave=False, disable=not progress):
        wnid = wnid_of(path)
        relative = path.relative_to(root).as_posix()
        try:
            width, height, sha = inspect_image(path)
        except ImageReadError as err:
            if not check.skip_unreadable:
                raise DataError(f"{err}: remove or replace it, or set data.skip_unreadable: true in the profile "
                                "to leave it out of the split") from None
            check.skipped.setdefault(desc, []).append(str(err))
            continue
        check.digests[relative] = sha
        rows.append({"path": relative, "wnid": wnid, "label": index[wnid],
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


def split_ilsvrc(root: Path, train_fraction: float = 0.15, seed: int = 2020,
                 check: _ImageCheck | None = None, progress: bool = True) -> dict[str, list[dict]]:
    """The report's split of ILSVRC2012: ``ceil(n * fraction)`` of each train class;
    each val class shuffled and cut in halves (validation, test). Every listed image is read
    (``check``: see :func:`_rows`)."""
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
        "train": _rows(train_files, root, lambda p: p.parent.name, "folder", "train", check, progress),
        "val": _rows(val_files, root, wnid_of_val.__getitem__, "folder", "val", check, progress),
        "test": _rows(test_files, root, wnid_of_val.__getitem__, "folder", "test", check, progress),
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


def split_sample_folder(root: Path, fractions: dict[str, float], seed: int = 2020,
                        check: _ImageCheck | None = None, progress: bool = True) -> dict[str, list[dict]]:
    """Seeded split of a flat folder of ``<wnid>_*.JPEG`` files. Every image is read
    (``check``: see :func:`_rows`)."""
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
    return {split: _rows(sorted(chunk), root, wnids.__getitem__, "filename", split, check, progress)
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


def make_split(config: Config, progress: bool = True) -> SplitFrames:
    """Compute the profile's split (nothing is written; see :func:`write_manifests`). An unreadable
    image is a :class:`DataError` naming it, unless ``data.skip_unreadable``: then it is left out
    and listed in the result's ``skipped``."""
    root = resolve_data_root(config)
    kind = config.data.kind
    check = _ImageCheck(config.data.skip_unreadable)
    if kind == "ilsvrc":
        splits = split_ilsvrc(root, config.data.train_fraction, config.data.split_seed, check, progress)
    elif kind == "sample_folder":
        splits = split_sample_folder(root, config.data.fractions, config.data.split_seed, check, progress)
    else:
        raise DataError(f"data.kind '{kind}' is unknown: use sample_folder or ilsvrc")
    frames = SplitFrames({split: pd.DataFrame(rows, columns=MANIFEST_COLUMNS) for split, rows in splits.items()},
                         check.digests, check.skipped)
    for split, frame in frames.items():
        if frame.empty:
            raise DataError(f"the {split} split of {root} is empty: add images or change data.fractions")
    left_out = [reason for reasons in check.skipped.values() for reason in reasons]
    if left_out:
        print(f"left {len(left_out)} unreadable image(s) out of the split (data.skip_unreadable is on): "
              f"{left_out[0]}" + (f" and {len(left_out) - 1} more" if len(left_out) > 1 else ""), file=sys.stderr)
    return frames


def write_manifests(config: Config, frames: dict[str, pd.DataFrame]) -> Path:
    """Write ``{train,val,test}.csv`` and ``meta.json`` under ``runs/<profile>/manifests/``; from
    :func:`make_split`'s frames, ``meta.json`` also holds ``images_sha256`` and the skipped images."""
    folder = fileio.ensure_dir(config.layout.manifests)
    for split, frame in frames.items():
        fileio.write_csv(frame, config.layout.manifest(split))
    meta = {"kind": config.data.kind, "data_root": str(resolve_data_root(config)),
            "split_seed": config.data.split_seed, "counts": {s: len(f) for s, f in frames.items()}}
    if isinstance(frames, SplitFrames):
        meta["images_sha256"] = frames.images_sha256()
        if any(frames.skipped.values()):
            meta["skipped"] = frames.skipped
    fileio.write_text(config.layout.manifests_meta, json.dumps(meta, indent=2) + "\n")
    return folder


def read_manifest(layout: RunLayout, split: str) -> tuple[pd.DataFrame, Path]:
    """A split's manifest and the data root its paths are relative to."""
    csv, meta = layout.manifest(split), layout.manifests_meta
    if not csv.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no {split} manifest for profile '{layout.profile}' at {csv}: run notebook 01 "
                                f"(python -m dario_utils.runner.reproduce --profile {layout.profile} --only 01)")
    return pd.read_csv(csv, dtype={"path": str, "wnid": str}), Path(json.loads(meta.read_text())["data_root"])


def manifest_dataset(config: Config, split: str) -> ManifestDataset:
    """The Dataset of one split of the profile's manifests."""
    frame, root = read_manifest(config.layout, split)
    given = resolve_data_root(config) if config.data_root else root
    if given != root:
        raise DataError(f"the manifests of profile '{config.profile}' list images under {root}, not under the "
                        f"data root given ({given}): rerun notebook 01 with that data root "
                        f"(python -m dario_utils.runner.reproduce --profile {config.profile} --data-root DIR)")
    if frame.empty:
        raise DataError(f"the {split} split of profile '{config.profile}' has no images")
    return ManifestDataset(frame, root, config.data.image_size, config.data.skip_unreadable)


def training_set(config: Config) -> Dataset:
    """The train split as every fine-tuning of the study steps through it: with
    ``train.flipped_copies``, followed by its mirrors (:class:`FlippedCopies`)."""
    images = manifest_dataset(config, "train")
    return FlippedCopies(images) if config.train.flipped_copies else images


def split_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Images, classes, source groups and label sources per split; where :func:`make_split` left
    unreadable images out (``data.skip_unreadable``), their count per split (``skipped unreadable``)."""
    sources = sorted(set(pd.concat(frames.values())["label_source"]))
    skipped = getattr(frames, "skipped", {})
    return pd.DataFrame([{"split": split, "images": len(frame), "classes": frame["label"].nunique(),
                          "groups": frame["group"].nunique(),
                          **{f"labels from {source}": int((frame["label_source"] == source).sum())
                             for source in sources},
                          **({"skipped unreadable": len(skipped.get(split, []))} if any(skipped.values()) else {})}
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
