"""Training: L1 pretraining of an SR net (notebook 02) and DarioNet fine-tuning (notebook 03).

DarioNet is an RRDBNet fine-tuned with one loss only: the MSE between the frozen teacher's
logits on the original image and on the reconstruction of its downsampled copy.

Reproducibility: data order comes from :class:`~torch.utils.data.DistributedSampler`
(``world = 1`` without DDP) and every random augmentation is drawn per sample from
``(seed, epoch, dataset index)``, so a global batch holds the same images, augmented the
same way, whatever the number of processes (DDP runs ``batch_size // world`` per process).
A run killed (Ctrl-C or SIGTERM) and resumed from ``darionet_last.pt`` ends with the same
weights, bit for bit on CPU, as one that was never interrupted.

Files (all written atomically, by rank 0 only):

- ``runs/<p>/checkpoints/sr_pretrained.pt``: :func:`pretrain_l1`.
- ``runs/<p>/checkpoints/darionet_last.pt``: every ``train.checkpoint_every`` epochs (1 by
  default) and after the last; model, optimizer, RNG states, config and history, for
  ``resume`` (which redoes the epochs after it). ``darionet_best.pt``: the epoch with the
  lowest validation loss, written with ``darionet_last.pt``. Both load with
  :func:`dario_utils.models.load_sr`.
- ``runs/<p>/results/history.csv``: columns :data:`HISTORY_COLUMNS`, one row per epoch
  and phase (``train``, ``val``).

Command line (alone or under ``torchrun --nproc_per_node=N``)::

    python -m dario_utils.train --profile demo [--data-root DIR] [--device cpu|cuda]
                                [--resume] [--epochs N] [--pretrain]
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from . import fileio, paths
from .config import Config, TrainConfig, load_config
from .data import collate, manifest_dataset
from .degrade import downsample, reconstruct
from .metrics import cross_entropy_per_image, logit_mse, psnr
from .models import SR_NAMES, CheckpointError, CheckpointReadError, RRDBNet, load_sr, load_teacher, save_sr_checkpoint
from .runtime import git_commit, progress_enabled, setup_torch
from .trunk import HeadFeatures, Tail, check_frozen, freeze_head, head_features, reconstruct_from_head

STATS = ("logit_mse", "ce", "psnr", "agreement", "val_loss")
"""Per-image statistics averaged into each history row (see :func:`_image_stats`)."""
HISTORY_COLUMNS = ["epoch", "phase", *STATS, "seconds", "images_per_s"]
"""Columns of ``history.csv``."""
NON_FINITE_CHECK_EVERY = 50
"""On CUDA, batches between two checks for a non-finite loss (each check waits for the GPU)."""
PRETRAINED_FILE = "sr_pretrained.pt"
LAST_FILE = "darionet_last.pt"
BEST_FILE = "darionet_best.pt"
HISTORY_FILE = "history.csv"

# (model, images, labels, dataset indices) -> (loss, per-image statistics (B, n_stats))
Step = Callable[[nn.Module, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


class TrainingError(RuntimeError):
    """Training cannot go on: a non-finite loss, no images read, an unusable checkpoint."""


# ---------------------------------------------------------------- the student


def _architecture(config: Config) -> dict[str, int]:
    """RRDBNet kwargs the profile's ``sr`` section asks for."""
    return {"nf": config.sr.nf, "nb": config.sr.nb, "gc": config.sr.gc, "scale": config.sr.sr_scale}


def _student_source(config: Config) -> str | Path:
    """What ``sr.pretrained`` names: the L1-pretrained file, a known name, a path or a cached file."""
    name = config.sr.pretrained
    if name == "l1":
        path = paths.checkpoints_dir(config.profile) / PRETRAINED_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"profile '{config.profile}' starts from its L1-pretrained SR net, but {path} is missing: "
                f"run notebook 02 (or python -m dario_utils.train --profile {config.profile} --pretrain)")
        return path
    if name in SR_NAMES or Path(name).expanduser().is_file():
        return name if name in SR_NAMES else Path(name).expanduser()
    cached = paths.weights_cache() / name
    if cached.is_file():
        return cached
    raise FileNotFoundError(
        f"sr.pretrained '{name}' is neither a known name ({', '.join(SR_NAMES)}), nor a file, nor in the "
        f"weights cache: put the file at {cached} (or set DARIO_WEIGHTS_CACHE), or give its full path")


def build_student(config: Config, device: str | torch.device) -> RRDBNet:
    """The RRDBNet fine-tuning starts from (``sr.pretrained``), in eval mode on ``device``.

    ``sr.pretrained`` is ``"l1"`` (``runs/<p>/checkpoints/sr_pretrained.pt`` from
    :func:`pretrain_l1`), a name of :data:`dario_utils.models.SR_NAMES`, a checkpoint path,
    or a file name in :func:`dario_utils.paths.weights_cache`. Its architecture must be the
    one of the ``sr`` section (nf, nb, gc, sr_scale), else :class:`CheckpointError`.
    """
    source = _student_source(config)
    try:
        return load_sr(source, device, expect_config=_architecture(config))
    except CheckpointReadError:
        raise  # an unreadable file, not an architecture mismatch
    except CheckpointError as err:
        raise CheckpointError(
            f"the start weights of profile '{config.profile}' (sr.pretrained={config.sr.pretrained!r}) do not "
            f"fit its sr section {_architecture(config)}: {err}. Set sr.nf/nb/gc/sr_scale to the file's "
            f"architecture or point sr.pretrained at another file") from None


# ---------------------------------------------------------------- processes and devices


def _world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside ``torch.distributed``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def _process_group(device: str) -> Iterator[None]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (nccl on CUDA, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def _device(config: Config) -> torch.device:
    """:func:`setup_torch`'s device; on CUDA the current (per-process) GPU."""
    device = setup_torch(config)
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" else device


def _parallel(net: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``net`` wrapped in DistributedDataParallel when there are several processes."""
    if world == 1:
        return net
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def _all_reduce(tensor: Tensor, world: int, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    """``tensor`` reduced over all processes (in place); unchanged in a single process."""
    if world > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


def _channels_last(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in channels-last memory format: faster convolutions on CUDA and on CPU (oneDNN:
    a demo training step 10-20% faster)."""
    return module.to(memory_format=torch.channels_last)


def _to_device(images: Tensor, device: torch.device) -> Tensor:
    """Images on ``device``, channels-last (see :func:`_channels_last`)."""
    return images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``amp``; a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (a job scheduler, torchrun) into KeyboardInterrupt while training."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class _Augment:
    """Random horizontal / vertical flips and square crop, drawn per sample.

    The draws of a sample depend only on ``(seed, epoch, dataset index)``, never on the
    batch it is in or the process that reads it.
    """

    seed: int
    hflip: float
    vflip: float
    crop: int | None

    def __call__(self, images: Tensor, indices: Tensor, epoch: int) -> Tensor:
        out = []
        for image, index in zip(images, indices.tolist()):
            rng = np.random.default_rng([self.seed, epoch, index])
            if rng.random() < self.hflip:
                image = image.flip(-1)
            if rng.random() < self.vflip:
                image = image.flip(-2)
            if self.crop:
                top = int(rng.integers(0, image.shape[-2] - self.crop + 1))
                left = int(rng.integers(0, image.shape[-1] - self.crop + 1))
                image = image[:, top:top + self.crop, left:left + self.crop]
            out.append(image)
        return torch.stack(out)


def _augment(config: Config, seed: int, crop: int | None) -> _Augment:
    """The profile's flips with ``crop`` (checked against ``data.image_size``)."""
    if crop is not None and not 1 <= crop <= config.data.image_size:
        raise ValueError(f"crop {crop} must be between 1 and data.image_size ({config.data.image_size})")
    return _Augment(seed, config.train.hflip, config.train.vflip, crop)


def _loader_options(config: Config) -> dict[str, Any]:
    """DataLoader options shared by every split: the data's collate, workers, pinning on CUDA.

    Workers persist across epochs (started once, not once per epoch); the sampler stays in
    this process, so ``set_epoch`` still reorders each epoch."""
    workers = config.data.num_workers
    return {"collate_fn": collate, "num_workers": workers, "persistent_workers": workers > 0,
            "pin_memory": torch.device(config.device).type == "cuda"}


def _train_loader(dataset: Dataset, batch_size: int, seed: int, config: Config, rank: int,
                  world: int) -> DataLoader:
    """Shuffled loader of this process's share: ``batch_size // world`` images per batch."""
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=batch_size // world, sampler=sampler, **_loader_options(config))


def _shard_loader(dataset: Dataset, batch_size: int, config: Config, rank: int, world: int) -> DataLoader:
    """Loader of every ``world``-th image from ``rank``, in order (no padding, no repeats)."""
    shard = Subset(dataset, range(rank, len(dataset), world))
    return DataLoader(shard, batch_size=batch_size // world, shuffle=False, **_loader_options(config))


# ---------------------------------------------------------------- statistics


@dataclass
class _Totals:
    """Means of per-image statistics over one pass, all processes together."""

    means: dict[str, float]
    count: int
    seconds: float

    def row(self, epoch: int, phase: str) -> dict[str, Any]:
        """One ``history.csv`` row."""
        return {"epoch": epoch, "phase": phase, **self.means, "seconds": self.seconds,
                "images_per_s": self.count / self.seconds}


class _Meter:
    """Sums per-image statistics of one pass and shows its progress bar (loss, images/s)."""

    def __init__(self, names: Sequence[str], total: int, desc: str, device: torch.device, show: bool,
                 world: int) -> None:
        self.names, self.desc, self.world = tuple(names), desc, world
        self.sums = torch.zeros(len(names), dtype=torch.float64, device=device)
        self.count = self.skipped = 0
        self.start = self.shown = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="batch", disable=not progress_enabled(show),
                        leave=False)
        # reading the loss for the bar waits for the GPU: on CUDA at most once a second, never without a bar
        self.postfix_every = 1.0 if device.type == "cuda" else 0.0

    def add(self, stats: Tensor, loss: Tensor | float) -> None:
        """Add a batch's (B, n_stats) statistics (summed on their device: no wait for the GPU)."""
        self.sums += stats.sum(0)
        self.count += len(stats)
        self.bar.update(1)
        now = time.perf_counter()
        if not self.bar.disable and now - self.shown >= self.postfix_every:
            self.shown = now
            rate = self.count * self.world / (now - self.start)
            self.bar.set_postfix(loss=f"{float(loss):.4g}", img_s=f"{rate:.1f}")

    def totals(self) -> _Totals:
        """Means over every process; raises :class:`TrainingError` if no image was read."""
        self.bar.close()
        counts = torch.tensor([self.count, self.skipped], dtype=torch.float64, device=self.sums.device)
        packed = _all_reduce(torch.cat([self.sums, counts]), self.world).cpu()
        count, skipped = int(packed[-2]), int(packed[-1])
        if count == 0:
            raise TrainingError(f"{self.desc}: no images were read ({skipped} unreadable skipped)")
        if skipped and not self.bar.disable:
            tqdm.write(f"{self.desc}: skipped {skipped} unreadable images")
        means = dict(zip(self.names, (packed[:-2] / count).tolist()))
        return _Totals(means, count, time.perf_counter() - self.start)


def _image_stats(logits: Tensor, reference: Tensor, recon: Tensor, x: Tensor, labels: Tensor) -> Tensor:
    """Per-image :data:`STATS` (B, 5), float64: logit MSE to the teacher on the original, CE of
    the reconstruction, PSNR, top-1 agreement with the teacher, CE(recon) - CE(original)."""
    ce = cross_entropy_per_image(logits, labels)
    columns = [logit_mse(logits, reference), ce, psnr(recon.float(), x.float()),
               logits.argmax(1) == reference.argmax(1), ce - cross_entropy_per_image(reference, labels)]
    return torch.stack([c.double() for c in columns], dim=1)


# ---------------------------------------------------------------- one epoch


@dataclass
class _Trainer:
    """One optimisation loop over a training split, shared by pretraining and fine-tuning."""

    model: nn.Module  # the SR net, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    augment: _Augment
    step: Step
    names: tuple[str, ...]  # the statistics ``step`` returns
    device: torch.device
    amp: bool
    max_batches: int | None
    show: bool
    world: int
    schedule: Callable[[float], float] = lambda progress: 1.0  # lr factor at a fraction of training done
    epochs: int = 1  # of the whole run, for ``schedule``

    def run_epoch(self, epoch: int) -> _Totals:
        """Train one epoch (1-based); :class:`TrainingError` on a non-finite loss.

        On CPU each loss is checked before its update. On CUDA the check does not wait for the
        GPU at every step: the first non-finite batch is noted on the device and reported
        every :data:`NON_FINITE_CHECK_EVERY` batches and at the end of the epoch, before
        anything is saved (the updates in between are lost with the run)."""
        self.model.train()
        self.loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        n = len(self.loader) if self.max_batches is None else min(len(self.loader), self.max_batches)
        meter = _Meter(self.names, n, f"epoch {epoch} train", self.device, self.show, self.world)
        deferred = self.device.type == "cuda"
        first_bad = torch.zeros((), dtype=torch.long, device=self.device)  # 0: none yet
        bad_loss = torch.zeros((), dtype=torch.float32, device=self.device)
        base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in self.optimizer.param_groups]
        for number, batch in enumerate(itertools.islice(self.loader, n), start=1):
            meter.skipped += len(batch["skipped"])
            if "image" not in batch:
                continue
            factor = self.schedule((epoch - 1 + (number - 1) / n) / self.epochs)
            for group, base in zip(self.optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            x = _to_device(self.augment(batch["image"], batch["index"], epoch), self.device)
            with _autocast(self.device, self.amp):
                loss, stats = self.step(self.model, x, batch["label"].to(self.device, non_blocking=True),
                                        batch["index"])
            if deferred:
                new = torch.isfinite(loss.detach()).logical_not() & (first_bad == 0)
                first_bad = torch.where(new, number, first_bad)
                bad_loss = torch.where(new, loss.detach().float(), bad_loss)
                if number % NON_FINITE_CHECK_EVERY == 0:
                    self._check_finite(first_bad, bad_loss, epoch)
            else:
                finite = _all_reduce(torch.isfinite(loss.detach()).float(), self.world, dist.ReduceOp.MIN)
                if not finite.item():
                    raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch}, batch {number}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            meter.add(stats, loss.detach())
        if deferred:
            self._check_finite(first_bad, bad_loss, epoch)
        return meter.totals()

    def _check_finite(self, first_bad: Tensor, bad_loss: Tensor, epoch: int) -> None:
        """Raise :class:`TrainingError` naming the first batch (over all processes) whose loss
        was non-finite; one wait for the GPU."""
        never = torch.iinfo(torch.long).max
        first = _all_reduce(torch.where(first_bad > 0, first_bad, never), self.world, dist.ReduceOp.MIN)
        number = int(first.item())
        if number != never:
            value = bad_loss.item() if int(first_bad.item()) == number else float("nan")
            raise TrainingError(f"non-finite loss ({value}) at epoch {epoch}, batch {number}")


def _l1_batch(model: nn.Module, x: Tensor, labels: Tensor, indices: Tensor, *,
              scale: float) -> tuple[Tensor, Tensor]:
    """L1 pretraining loss of one batch and the per-image L1 (B, 1)."""
    recon = reconstruct(model, downsample(x, scale), x.shape[-1])
    per_image = (recon.float() - x.float()).abs().mean(dim=(1, 2, 3))
    return per_image.mean(), per_image.detach().double()[:, None]


class _FeatureTap:
    """Keeps the input of the teacher's global pooling layer (its last feature map)."""

    def __init__(self, teacher: nn.Module) -> None:
        pools = [m for m in teacher.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        if not pools:
            raise TrainingError("train.feature_weight needs a teacher with a global pooling layer "
                                "(nn.AdaptiveAvgPool2d); set train.feature_weight: 0")
        self.features: Tensor | None = None
        self._handle = pools[-1].register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.features = args[0]

    def __enter__(self) -> _FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def _reconstruct(model: nn.Module, x: Tensor, indices: Tensor, scale: float,
                 head: HeadFeatures | None) -> Tensor:
    """The student's reconstruction of ``x``'s downsampled copy; with a frozen head ``model``
    is its :class:`~dario_utils.trunk.Tail`, run on the cached head features of ``indices``."""
    if head is None:
        return reconstruct(model, downsample(x, scale), x.shape[-1])
    return reconstruct_from_head(model, head.select(indices, x.device), x.shape[-1])


LR_SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules (``train.lr_schedule``)."""


def lr_schedule(kind: str) -> Callable[[float], float]:
    """The factor on ``train.lr`` at a fraction ``progress`` in [0, 1) of the whole run: 1 throughout
    (``constant``), or a cosine from 1 down towards 0 (``cosine``). A function of the step alone, so a
    resumed run follows the same schedule."""
    if kind == "constant":
        return lambda progress: 1.0
    if kind == "cosine":
        return lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"config key 'train.lr_schedule': unknown schedule {kind!r}; choose from {', '.join(LR_SCHEDULES)}")


LOSSES = ("mse", "kl")
"""Losses on the teacher's logits (``train.loss``)."""


def logit_loss(logits: Tensor, reference: Tensor, kind: str = "mse", temperature: float = 1.0) -> Tensor:
    """The distillation loss between the student's ``logits`` and the teacher's ``reference``:
    ``mse``, their mean squared difference (the report's), or ``kl``, the KL divergence of the
    student's softmax from the teacher's at ``temperature``, times ``temperature**2`` (Hinton et
    al.), averaged over the batch."""
    if kind == "mse":
        return F.mse_loss(logits, reference)
    if kind == "kl":
        if temperature <= 0:
            raise ValueError(f"config key 'train.temperature': {temperature} must be positive")
        return F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(reference / temperature, 1),
                        log_target=True, reduction="batchmean") * temperature ** 2
    raise ValueError(f"config key 'train.loss': unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def _forward_batch(model: nn.Module, x: Tensor, labels: Tensor, indices: Tensor, *, teacher: nn.Module,
                   scale: float, train: TrainConfig, tap: _FeatureTap | None,
                   head: HeadFeatures | None) -> tuple[Tensor, Tensor]:
    """DarioNet's loss on one batch and its per-image :data:`STATS`.

    Loss: :func:`logit_loss` between the teacher's logits on the reconstruction and on the
    original (the report's MSE by default), plus ``l1_weight`` * pixel L1 and
    ``feature_weight`` * MSE of the teacher's last feature maps (both off in the report).
    """
    with torch.no_grad():
        reference = teacher(x).float()
        reference_features = tap.features if tap else None
    recon = _reconstruct(model, x, indices, scale, head)
    logits = teacher(recon).float()
    loss = logit_loss(logits, reference, train.loss, train.temperature)
    if train.l1_weight:
        loss = loss + train.l1_weight * F.l1_loss(recon.float(), x.float())
    if tap is not None:
        loss = loss + train.feature_weight * F.mse_loss(tap.features.float(), reference_features.float())
    return loss, _image_stats(logits.detach(), reference, recon.detach(), x, labels)


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, loader: DataLoader, device: torch.device,
                    amp: bool) -> dict[int, Tensor]:
    """The teacher's float logits on each original image of ``loader``, by dataset index."""
    logits: dict[int, Tensor] = {}
    for batch in loader:
        if "image" in batch:
            with _autocast(device, amp):
                out = teacher(_to_device(batch["image"], device)).float()
            logits.update(zip(batch["index"].tolist(), out))
    return logits


@torch.no_grad()
def _validate(net: nn.Module, teacher: nn.Module, loader: DataLoader, references: dict[int, Tensor],
              head: HeadFeatures | None, config: Config, device: torch.device, epoch: int, show: bool,
              world: int) -> _Totals:
    """:data:`STATS` of the reconstructions of the validation split (this process's shard);
    ``net`` is the student, or its tail with the val split's ``head`` features."""
    net.eval()
    meter = _Meter(STATS, len(loader), f"epoch {epoch} val", device, show, world)
    for batch in loader:
        meter.skipped += len(batch["skipped"])
        if "image" not in batch:
            continue
        x = _to_device(batch["image"], device)
        with _autocast(device, config.train.amp):
            recon = _reconstruct(net, x, batch["index"], config.data.scale, head)
            logits = teacher(recon).float()
        reference = torch.stack([references[i] for i in batch["index"].tolist()])
        stats = _image_stats(logits, reference, recon, x, batch["label"].to(device))
        meter.add(stats, stats[:, 0].mean())
    return meter.totals()


# ---------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states, in types ``torch.load(weights_only=True)`` reads."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`_rng_state` saved."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])


def _history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


@dataclass
class _Snapshot:
    """An epoch's weights kept in memory until written; saved by :func:`save_sr_checkpoint` like the net."""

    state: dict[str, Tensor]
    config: dict[str, int]
    provenance: dict[str, Any]

    def state_dict(self) -> dict[str, Tensor]:
        return self.state


def _save_epoch(folder: Path, results: Path, net: nn.Module, optimizer: torch.optim.Optimizer,
                config: Config, history: list[dict[str, Any]], provenance: dict[str, Any],
                best: float, pending: _Snapshot | None = None,
                write_last: bool = True) -> tuple[float, _Snapshot | None]:
    """Write history.csv; with ``write_last`` also darionet_best.pt (if the val loss improved since
    it was last written) and darionet_last.pt. Without it an improved epoch's weights are kept
    in memory (``pending``) until the next epoch that writes (``train.checkpoint_every``), so
    that the two files always belong to the same run up to the same epoch.

    Returns the best validation loss so far and the weights still to be written as best.
    """
    fileio.write_csv(_history_frame(history), results / HISTORY_FILE)
    val_loss = history[-1]["val_loss"]
    if val_loss < best:
        model = getattr(net, "module", net)
        pending = _Snapshot({k: v.detach().clone() for k, v in model.state_dict().items()}, model.config,
                            {**provenance, "val_loss": val_loss})
        best = val_loss
    if write_last:
        if pending is not None:
            save_sr_checkpoint(folder / BEST_FILE, pending, pending.provenance)
            pending = None
        save_sr_checkpoint(folder / LAST_FILE, net, provenance, optimizer=optimizer.state_dict(),
                           rng=_rng_state(), config=config.to_dict(), history=history)
    return best, pending


def _start(config: Config, device: torch.device, last: Path | None,
           show: bool) -> tuple[RRDBNet, torch.optim.Adam, list[dict[str, Any]]]:
    """The student, its Adam optimizer and the history so far (two rows per finished epoch).

    From ``last`` (``darionet_last.pt``: weights, optimizer, RNG states, history) when it is
    given and exists, else a fresh start from :func:`build_student`. With
    ``train.frozen_blocks`` the head is frozen and the optimizer holds only the tail.
    """
    state = None
    if last is None or not last.is_file():
        if last is not None and show:
            tqdm.write(f"resume: no {last}; starting from sr.pretrained={config.sr.pretrained!r}")
        net = build_student(config, device)
    else:
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state["provenance"]["teacher"] != config.teacher.name:
            raise TrainingError(f"{last} was trained with teacher {state['provenance']['teacher']!r}, the profile "
                                f"asks for {config.teacher.name!r}: resume=False starts over")
        net = load_sr(last, device, _architecture(config))
    blocks = check_frozen(config)
    params = net.parameters() if blocks is None else freeze_head(net, blocks)
    optimizer = torch.optim.Adam(params, lr=config.train.lr)
    if state is None:
        return _channels_last(net, device), optimizer, []
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"])
    return _channels_last(net, device), optimizer, list(state["history"])


# ---------------------------------------------------------------- entry points


def _fresh_sr(config: Config, device: torch.device) -> RRDBNet:
    """A new RRDBNet seeded with ``config.seed``, its output starting at mid-grey.

    :func:`reconstruct` clamps to [0, 1], which passes no gradient to pixels below 0; with
    PyTorch's default init a whole colour channel can start negative and never recover
    (seen with the demo's net), so the last convolution's bias starts at 0.5.
    """
    torch.manual_seed(config.seed)
    net = RRDBNet(**_architecture(config))
    with torch.no_grad():
        net.conv_last.bias.fill_(0.5)
    return _channels_last(net.to(device), device)


def pretrain_l1(config: Config, progress: bool = True) -> Path:
    """Train an RRDBNet from scratch with L1 (``pretrain`` section); write ``sr_pretrained.pt``.

    For profiles whose SR architecture has no published weights (demo). Starts from
    :func:`_fresh_sr`; uses the train split, the profile's flips and ``pretrain.crop``.
    Returns the checkpoint path.
    """
    if config.pretrain.epochs < 1:
        raise ValueError(f"profile '{config.profile}' has pretrain.epochs {config.pretrain.epochs}: nothing to do")
    device = _device(config)
    rank, world = _world()
    loader = _train_loader(manifest_dataset(config, "train"), config.pretrain.batch_size, config.seed,
                           config, rank, world)
    net = _fresh_sr(config, device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.pretrain.lr)
    step = functools.partial(_l1_batch, scale=config.data.scale)
    trainer = _Trainer(_parallel(net, device, world), optimizer, loader,
                       _augment(config, config.seed, config.pretrain.crop), step, ("l1",), device,
                       config.train.amp, None, progress and rank == 0, world)
    with _sigterm_as_interrupt():
        for epoch in range(1, config.pretrain.epochs + 1):
            l1 = trainer.run_epoch(epoch).means["l1"]
            if progress and rank == 0:
                tqdm.write(f"pretrain epoch {epoch}/{config.pretrain.epochs}: L1 {l1:.5f}")
    path = paths.checkpoints_dir(config.profile) / PRETRAINED_FILE
    if rank == 0:
        save_sr_checkpoint(path, net, {"profile": config.profile, "stage": "l1-pretrain",
                                       "commit": git_commit(), "epoch": config.pretrain.epochs, "l1": l1})
    if world > 1:
        dist.barrier()
    return path


def finetune(config: Config, resume: bool = False, progress: bool = True,
             out_dir: Path | None = None) -> pd.DataFrame:
    """Fine-tune DarioNet with the teacher's logits; return the history (:data:`HISTORY_COLUMNS`).

    Checkpoints go to ``runs/<p>/checkpoints/`` and the history to ``runs/<p>/results/``, or
    both to ``out_dir`` (a variant of the study's run, such as notebook 06's loss ablation).

    Starts from :func:`build_student`, or with ``resume`` from ``darionet_last.pt`` (the
    epoch it was in when killed is redone). Under ``torch.distributed`` each process takes
    ``train.batch_size // world`` images of each global batch; metrics are reduced over all
    processes and only rank 0 writes files. Raises :class:`TrainingError` on a non-finite
    loss (the last good checkpoint is kept).
    """
    device = _device(config)
    rank, world = _world()
    show = progress and rank == 0
    batch = config.train.batch_size
    train_loader = _train_loader(manifest_dataset(config, "train"), batch, config.train.seed, config, rank, world)
    val_loader = _shard_loader(manifest_dataset(config, "val"), batch, config, rank, world)
    if config.train.loss not in LOSSES:
        raise ValueError(f"config key 'train.loss': unknown loss {config.train.loss!r}; choose from {', '.join(LOSSES)}")
    folder, results = ((out_dir, out_dir) if out_dir is not None else
                       (paths.checkpoints_dir(config.profile), paths.results_dir(config.profile)))
    net, optimizer, history = _start(config, device, folder / LAST_FILE if resume else None, show)
    teacher = _channels_last(load_teacher(config.teacher.name, device, config.teacher.weights,
                                          config.teacher.input_size), device)
    start = history[-1]["epoch"] + 1 if history else 1
    best = min((row["val_loss"] for row in history if row["phase"] == "val"), default=math.inf)
    provenance = {"profile": config.profile, "stage": "darionet", "teacher": config.teacher.name,
                  "commit": git_commit()}
    references = _teacher_logits(teacher, val_loader, device, config.train.amp)
    every = config.train.checkpoint_every
    if every < 1:
        raise ValueError(f"config key 'train.checkpoint_every': {every} must be at least 1")
    saved, pending = start - 1, None  # the epoch darionet_last.pt holds; best weights not yet written
    blocks = check_frozen(config)
    if blocks is None:
        student, train_head, val_head = net, None, None
    else:  # only the tail trains, on the head's cached output
        student = Tail(net, blocks)
        train_head, val_head = (head_features(config, split, net, device, show) for split in ("train", "val"))

    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_as_interrupt())
        tap = stack.enter_context(_FeatureTap(teacher)) if config.train.feature_weight else None
        step = functools.partial(_forward_batch, teacher=teacher, scale=config.data.scale,
                                 train=config.train, tap=tap, head=train_head)
        trainer = _Trainer(_parallel(student, device, world), optimizer, train_loader,
                           _augment(config, config.train.seed, config.train.crop), step, STATS, device,
                           config.train.amp, config.train.max_batches, show, world,
                           lr_schedule(config.train.lr_schedule), config.train.epochs)
        for epoch in range(start, config.train.epochs + 1):
            try:
                train_row = trainer.run_epoch(epoch).row(epoch, "train")
            except TrainingError as err:
                kept = f"{folder / LAST_FILE} (epoch {saved})" if saved else "none (no epoch finished)"
                raise TrainingError(f"{err}; stopped, the last good checkpoint is kept: {kept}") from None
            except KeyboardInterrupt:
                if show:
                    redone = "it" if saved == epoch - 1 else f"epochs {saved + 1}-{epoch}"
                    tqdm.write(f"interrupted in epoch {epoch}: resume=True (--resume) redoes {redone} "
                               f"from {folder / LAST_FILE}")
                raise
            val_row = _validate(student, teacher, val_loader, references, val_head, config, device, epoch, show,
                                world)
            history += [train_row, val_row.row(epoch, "val")]
            write_last = epoch % every == 0 or epoch == config.train.epochs
            if rank == 0:
                best, pending = _save_epoch(folder, results, net, optimizer, config, history,
                                            {**provenance, "epoch": epoch}, best, pending, write_last)
            if write_last:
                saved = epoch
            if show:
                tqdm.write(f"epoch {epoch}/{config.train.epochs}: train logit MSE {train_row['logit_mse']:.4f}, "
                           f"val loss {val_row.means['val_loss']:.4f}, val PSNR {val_row.means['psnr']:.2f} dB")
    return _history_frame(history)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fine-tune (or with ``--pretrain`` L1-pretrain) one profile; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m dario_utils.train", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", help="profile name or YAML file")
    parser.add_argument("--data-root", help="data folder (overrides the profile's data_root)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="overrides the profile's device")
    parser.add_argument("--resume", action="store_true", help="continue from darionet_last.pt")
    parser.add_argument("--epochs", type=int, help="overrides train.epochs (pretrain.epochs with --pretrain)")
    parser.add_argument("--pretrain", action="store_true", help="L1-pretrain sr_pretrained.pt instead")
    args = parser.parse_args(argv)
    if args.pretrain and args.resume:
        parser.error("--resume applies to fine-tuning only")
    stage = "pretrain" if args.pretrain else "train"
    try:
        config = load_config(args.profile, {"data_root": args.data_root, "device": args.device,
                                            f"{stage}.epochs": args.epochs})
        with _process_group(config.device):
            if args.pretrain:
                pretrain_l1(config)
            else:
                finetune(config, resume=args.resume)
    except (ValueError, OSError, TrainingError) as err:  # config, data, checkpoint and training errors
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
