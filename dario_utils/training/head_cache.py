"""The frozen head's cache: the SR net's head computed once per image and reused.

In RRDBNet almost all the work is the trunk of residual dense blocks at the small
resolution (about 93% for the 23-block net). With ``train.frozen_blocks: k`` the head
(``conv_first`` and the first ``k`` blocks) keeps its pretrained weights, so its output for
an image never changes: :func:`head_features` computes it once per split and keeps it in
``runs/<profile>/cache/`` (one file per split and downsampling factor), and training,
validation and evaluation run only the tail.

The cache is keyed by everything its values depend on (the head's weights, ``k``, the
image size, the scale and the split's manifest), so a changed input is recomputed, never
silently reused; an unreadable cache file (truncated, corrupt) is recomputed too, with a line
on stderr that says so. Random flips and crops would change the head's input, so
:func:`dario_utils.core.config.check_config` refuses them with a frozen head; the mirror images of
``train.flipped_copies`` are fixed, and their head is cached beside the originals' (``flipped``).
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dario_utils.core import fileio
from dario_utils.core.config import Config, ConfigError
from dario_utils.data.dataset import collate, manifest_dataset, mirror
from dario_utils.data.degrade import downsample, to_size
from dario_utils.models import RRDBNet
from dario_utils.models.checkpoints import CheckpointReadError, load_weights_only


@dataclass
class HeadFeatures:
    """The head's two outputs for every image of a split (rows in manifest order)."""

    feat: Tensor  # conv_first features (N, nf, h, w)
    trunk: Tensor  # output of the first ``blocks`` RRDBs (N, nf, h, w)
    blocks: int
    seconds: float  # time it took to compute them

    def select(self, indices: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
        """The features of the images at dataset ``indices``, on ``device``, channels-last."""
        return tuple(t[indices].to(device).contiguous(memory_format=torch.channels_last)
                     for t in (self.feat, self.trunk))  # type: ignore[return-value]

    def rows(self, indices: Sequence[int]) -> HeadFeatures:
        """The features of the images at ``indices`` only (their share of the time it took)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return HeadFeatures(self.feat[index], self.trunk[index], self.blocks,
                            self.seconds * len(index) / max(len(self.feat), 1))

    def followed_by(self, other: HeadFeatures) -> HeadFeatures:
        """These rows, then ``other``'s (the features of :class:`~dario_utils.data.dataset.FlippedCopies`)."""
        return HeadFeatures(torch.cat([self.feat, other.feat]), torch.cat([self.trunk, other.trunk]), self.blocks,
                            self.seconds + other.seconds)


class Tail(nn.Module):
    """The trainable part of a frozen-head student: ``(feat, trunk)`` -> SR image.

    A module of its own so that DistributedDataParallel can wrap it.
    """

    def __init__(self, net: RRDBNet, blocks: int) -> None:
        super().__init__()
        self.net, self.blocks = net, blocks

    def forward(self, feat: Tensor, trunk: Tensor) -> Tensor:
        return self.net.tail(feat, trunk, self.blocks)


def freeze_head(net: RRDBNet, blocks: int) -> list[nn.Parameter]:
    """Stop gradients to ``conv_first`` and the first ``blocks`` RRDBs; return the trainable parameters."""
    for module in (net.conv_first, net.body[:blocks]):
        module.requires_grad_(False)
    return [p for p in net.parameters() if p.requires_grad]


def head_fingerprint(net: RRDBNet, blocks: int) -> str:
    """SHA-256 of the head's weights (``conv_first`` and the first ``blocks`` RRDBs)."""
    digest = hashlib.sha256()
    for module in (net.conv_first, net.body[:blocks]):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _cache_key(config: Config, split: str, net: RRDBNet, blocks: int, flipped: bool) -> dict[str, object]:
    manifest = config.layout.manifest(split)
    return {"head": head_fingerprint(net, blocks), "blocks": blocks, "image_size": config.data.image_size,
            "scale": config.data.scale, "manifest": hashlib.sha256(manifest.read_bytes()).hexdigest()[:16],
            "flipped": flipped}


_CACHE_KEYS = ("key", "feat", "trunk", "seconds")


def _read_cache(path) -> dict | None:
    """The cache file ``path``'s contents; None, with a line on stderr, where it is unreadable."""
    try:
        cached = load_weights_only(path)
        if not isinstance(cached, dict) or any(k not in cached for k in _CACHE_KEYS):
            raise CheckpointReadError(f"{path} is not a head cache: it lacks {', '.join(_CACHE_KEYS)}")
    except CheckpointReadError as err:
        tqdm.write(f"head cache unreadable, computing it again: {err}", file=sys.stderr)
        return None
    return cached


@torch.no_grad()
def head_features(config: Config, split: str, net: RRDBNet, device: torch.device,
                  progress: bool = True, flipped: bool = False) -> HeadFeatures:
    """The head's output for every image of ``split`` (with ``flipped``, of its mirror,
    :func:`~dario_utils.data.dataset.mirror`): from the cache when its key matches, else computed (with a
    progress bar) and cached. Unreadable images skipped by the data
    (``data.skip_unreadable``) keep zero rows, which nothing reads. ``config`` has passed
    :func:`dario_utils.core.config.check_config`."""
    blocks = config.train.frozen_blocks
    if blocks is None:
        raise ConfigError("head features need train.frozen_blocks in the profile")
    key = _cache_key(config, split, net, blocks, flipped)
    name = f"head-{split}-{config.data.scale:g}{'-flipped' if flipped else ''}.pt"
    path = config.layout.head_cache(name)
    cached = _read_cache(path) if path.is_file() else None
    if cached is not None and cached["key"] == key:
        return HeadFeatures(cached["feat"], cached["trunk"], blocks, cached["seconds"])
    dataset = manifest_dataset(config, split)
    loader = DataLoader(dataset, batch_size=config.eval.batch_size, shuffle=False, collate_fn=collate,
                        num_workers=config.data.num_workers)
    feat = trunk = None
    start = time.perf_counter()
    net.eval().to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and CUDA
    desc = f"SR head, {split} split{', mirrored' if flipped else ''}"
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        if "image" not in batch:
            continue
        image = mirror(batch["image"]) if flipped else batch["image"]
        small = downsample(image.to(device), config.data.scale)
        f, t = net.head(small.contiguous(memory_format=torch.channels_last), blocks)
        if feat is None:
            feat = torch.zeros((len(dataset), *f.shape[1:]), dtype=torch.float32)
            trunk = torch.zeros_like(feat)
        feat[batch["index"]], trunk[batch["index"]] = f.float().cpu(), t.float().cpu()
    if feat is None:
        raise ValueError(f"no readable image in the {split} split of profile '{config.profile}'")
    seconds = time.perf_counter() - start
    fileio.ensure_dir(path.parent)
    fileio.save_torch({"key": key, "feat": feat, "trunk": trunk, "seconds": seconds}, path)
    return HeadFeatures(feat, trunk, blocks, seconds)


def reconstruct_from_head(tail: nn.Module, features: tuple[Tensor, Tensor], size: int) -> Tensor:
    """:func:`dario_utils.data.degrade.reconstruct` for a frozen-head net: its tail on cached features."""
    return to_size(tail(*features), size)
