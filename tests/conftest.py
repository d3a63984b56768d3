"""Shared fixtures: a redirected output root, a miniature ILSVRC2012 tree of generated
JPEGs (three real wnids), and the shared folder of real ImageNet sample images (where
``../shared`` is absent, the demo's shipped thumbnails of the same images)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "imagenet-sample-dev"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "imagenet-sample-128"
"""The demo's shipped 128 px thumbnails of the sample's images: what the tests read without ``../shared``."""

# Class indices of the miniature tree: far apart in the sorted-wnid order.
TREE_CLASSES = (0, 417, 999)
TREE_TRAIN_PER_CLASS = 7  # ceil(7 * 0.15) = 2
TREE_VAL_PER_CLASS = 4  # halves: 2 val, 2 test


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (benchmarks/ is no package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A small JPEG with a seeded gradient plus noise (so every file's bytes differ)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], axis=-1)
    pixels = np.clip(base + rng.integers(-40, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


@pytest.fixture
def output_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An output root in the test's tmp folder: the tests pass it to ``load_config``; the entry points
    they start (a CLI's ``main``, a subprocess, the notebooks' ``setup``) read it, as a user gives it to
    them, from ``DARIO_OUTPUT_ROOT``. ``DARIO_WEIGHTS_CACHE`` points into the tmp folder too."""
    root = tmp_path / "out"
    monkeypatch.setenv("DARIO_OUTPUT_ROOT", str(root))
    monkeypatch.setenv("DARIO_WEIGHTS_CACHE", str(tmp_path / "weights-cache"))
    return root


@pytest.fixture
def sample_dir() -> Path:
    """A folder of real ImageNet sample JPEGs (``<wnid>_<name>.JPEG``): the shared one,
    ``../shared/imagenet-sample-dev``, or where it is absent the shipped thumbnails (:data:`SHIPPED_DIR`)."""
    return SAMPLE_DIR if SAMPLE_DIR.is_dir() else SHIPPED_DIR


@pytest.fixture
def tree_wnids() -> list[str]:
    from dario_utils.data.imagenet import imagenet_wnids

    wnids = imagenet_wnids()
    return [wnids[i] for i in TREE_CLASSES]


@pytest.fixture
def make_ilsvrc_tree(tree_wnids: list[str]) -> Callable[..., tuple[Path, dict[str, str]]]:
    """Factory: ``make(root, val_layout)`` writes a miniature ILSVRC2012 tree and returns
    ``(root, truth)`` where ``truth`` maps every image's path relative to root to its wnid.

    ``val_layout``: ``"folders"`` (val/<wnid>/), ``"loc"`` (flat val/ + LOC_val_solution.csv)
    or ``"devkit"`` (flat val/ + ILSVRC2012_devkit_t12 ground truth and meta.mat), or
    ``"none"`` (flat val/ and no labels file).
    """

    def make(root: Path, val_layout: str = "folders", train_per_class: int = TREE_TRAIN_PER_CLASS,
             val_per_class: int = TREE_VAL_PER_CLASS) -> tuple[Path, dict[str, str]]:
        truth: dict[str, str] = {}
        seed = 0
        for wnid in tree_wnids:
            for k in range(train_per_class):
                rel = f"train/{wnid}/{wnid}_{k + 1}.JPEG"
                write_jpeg(root / rel, seed := seed + 1)
                truth[rel] = wnid
        # Interleave classes in the flat val numbering, as ILSVRC2012 does.
        flat = [(i, wnid) for i in range(val_per_class) for wnid in tree_wnids]
        for number, (_, wnid) in enumerate(flat, start=1):
            stem = f"ILSVRC2012_val_{number:08d}"
            rel = f"val/{wnid}/{stem}.JPEG" if val_layout == "folders" else f"val/{stem}.JPEG"
            write_jpeg(root / rel, seed := seed + 1)
            truth[rel] = wnid
        if val_layout == "loc":
            lines = ["ImageId,PredictionString"]
            lines += [f"ILSVRC2012_val_{n:08d},{wnid} 1 2 30 40 {wnid} 5 6 20 30"
                      for n, (_, wnid) in enumerate(flat, start=1)]
            (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
        elif val_layout == "devkit":
            from scipy.io import savemat

            # ILSVRC2012_IDs do not follow the sorted-wnid order in the real devkit;
            # use a shuffled mapping plus a non-leaf synset, as meta.mat holds.
            ids = {tree_wnids[2]: 1, tree_wnids[0]: 2, tree_wnids[1]: 3}
            synsets = np.zeros((4, 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O")])
            for row, (wnid, ident) in enumerate(sorted(ids.items(), key=lambda item: item[1])):
                synsets[row, 0] = (ident, wnid, f"class {wnid}")
            synsets[3, 0] = (1001, "n00001740", "entity")
            data = root / "ILSVRC2012_devkit_t12" / "data"
            data.mkdir(parents=True)
            savemat(data / "meta.mat", {"synsets": synsets})
            (data / "ILSVRC2012_validation_ground_truth.txt").write_text(
                "".join(f"{ids[wnid]}\n" for _, wnid in flat))
        elif val_layout not in ("folders", "none"):
            raise ValueError(val_layout)
        return root, truth

    return make
