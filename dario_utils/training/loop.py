"""The generic training loop, with its progress meter: called by its users, it never calls back.

:class:`Trainer` steps through one epoch of a training split: it reorders the data per epoch,
sets the learning rate of each step (:func:`lr_schedule`), stops on a non-finite loss and sums
each step's per-image statistics in a :class:`Meter`, whose means (:class:`Totals`) hold every
process's images; the caller does the forward pass between (what it computes, how it augments,
what is validated and saved are :mod:`dario_utils.training.train`'s, or
:mod:`dario_utils.studies.classifier_route`'s). :meth:`Meter.batches` is every validation pass's
loop. The loaders of every split are here too (:func:`train_loader`, :func:`shard_loader`).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from dario_utils.core import distributed
from dario_utils.core.config import check_choice, Config, LR_SCHEDULES
from dario_utils.data.dataset import collate

NON_FINITE_CHECK_EVERY = 50
"""On CUDA, batches between two checks for a non-finite loss (each check waits for the GPU)."""


class TrainingError(RuntimeError):
    """Training cannot go on: a non-finite loss, no images read, an unusable checkpoint."""


def to_device(images: Tensor, device: torch.device) -> Tensor:
    """Images on ``device``, channels-last (the study's convolutions are faster in that format)."""
    return images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``amp``; a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@dataclass
class Totals:
    """Means of per-image statistics over one pass, all processes together."""

    means: dict[str, float]
    count: int
    seconds: float

    def row(self, epoch: int, phase: str) -> dict[str, Any]:
        """One ``history.csv`` row."""
        return {"epoch": epoch, "phase": phase, **self.means, "seconds": self.seconds,
                "images_per_s": self.count / self.seconds}


class Meter:
    """Sums per-image statistics of one pass and shows its progress bar (loss, images/s)."""

    def __init__(self, names: Sequence[str], total: int, desc: str, device: torch.device, show: bool,
                 world: int) -> None:
        self.names, self.desc, self.world, self.device = tuple(names), desc, world, device
        self.sums = torch.zeros(len(names), dtype=torch.float64, device=device)
        self.count = self.skipped = 0
        self.start = self.shown = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="batch", disable=not show,
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

    def batches(self, loader: DataLoader) -> Iterator[tuple[Tensor, dict[str, Any]]]:
        """Each batch of ``loader`` that holds images, with its images on the meter's device (channels-last);
        unreadable images are counted. The validation passes' loop."""
        for batch in loader:
            self.skipped += len(batch["skipped"])
            if "image" in batch:
                yield to_device(batch["image"], self.device), batch

    def totals(self) -> Totals:
        """Means over every process; raises :class:`TrainingError` if no image was read."""
        self.bar.close()
        counts = torch.tensor([self.count, self.skipped], dtype=torch.float64, device=self.sums.device)
        packed = distributed.all_reduce(torch.cat([self.sums, counts]), self.world).cpu()
        count, skipped = int(packed[-2]), int(packed[-1])
        if count == 0:
            raise TrainingError(f"{self.desc}: no images were read ({skipped} unreadable skipped)")
        if skipped and not self.bar.disable:
            tqdm.write(f"{self.desc}: skipped {skipped} unreadable images")
        means = dict(zip(self.names, (packed[:-2] / count).tolist()))
        return Totals(means, count, time.perf_counter() - self.start)


def lr_schedule(kind: str) -> Callable[[float], float]:
    """The factor on the base learning rate at a fraction ``progress`` in [0, 1) of the whole run: 1
    throughout (``constant``), or a cosine from 1 down towards 0 (``cosine``). A function of the step
    alone, so a resumed run follows the same schedule. Another ``kind`` is a
    :class:`~dario_utils.core.config.ConfigError` naming ``train.lr_schedule``."""
    check_choice("train.lr_schedule", kind, LR_SCHEDULES, "schedule")
    if kind == "constant":
        return lambda progress: 1.0
    return lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Trainer:
    """One optimisation loop over a training split, driven by its caller::

        for batch in trainer.epoch(epoch):      # the lr of the step is set
            loss, stats = ...                   # the caller's forward pass
            trainer.step(loss, stats)           # checked, backpropagated, applied, counted
        totals = trainer.totals()
    """

    model: nn.Module  # the net that trains, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    names: tuple[str, ...]  # the per-image statistics of each step
    device: torch.device
    amp: bool
    max_batches: int | None
    show: bool
    world: int
    schedule: str = "constant"  # :func:`lr_schedule`'s kind, over ``epochs``
    epochs: int = 1  # of the whole run, for the schedule

    def epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The batches of epoch ``epoch`` (1-based) that hold images, each after the learning rate of its
        step is set; after the last, the deferred non-finite check (CUDA) of :meth:`step`."""
        self.model.train()
        self.loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        n = len(self.loader) if self.max_batches is None else min(len(self.loader), self.max_batches)
        self.meter = Meter(self.names, n, f"epoch {epoch} train", self.device, self.show, self.world)
        self._epoch, self._deferred = epoch, self.device.type == "cuda"
        self._first_bad = torch.zeros((), dtype=torch.long, device=self.device)  # 0: none yet
        self._bad_loss = torch.zeros((), dtype=torch.float32, device=self.device)
        factor_at = lr_schedule(self.schedule)
        base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in self.optimizer.param_groups]
        for number, batch in enumerate(itertools.islice(self.loader, n), start=1):
            self.meter.skipped += len(batch["skipped"])
            if "image" not in batch:
                continue
            factor = factor_at((epoch - 1 + (number - 1) / n) / self.epochs)
            for group, base in zip(self.optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            self._number = number
            yield batch
        if self._deferred:
            self._check_finite(self._first_bad, self._bad_loss, epoch)

    def step(self, loss: Tensor, stats: Tensor) -> None:
        """Apply the current batch's ``loss`` and count its per-image ``stats``; :class:`TrainingError` on
        a non-finite loss.

        On CPU each loss is checked before its update. On CUDA the check does not wait for the
        GPU at every step: the first non-finite batch is noted on the device and reported
        every :data:`NON_FINITE_CHECK_EVERY` batches and at the end of the epoch, before
        anything is saved (the updates in between are lost with the run)."""
        number, epoch = self._number, self._epoch
        if self._deferred:
            new = torch.isfinite(loss.detach()).logical_not() & (self._first_bad == 0)
            self._first_bad = torch.where(new, number, self._first_bad)
            self._bad_loss = torch.where(new, loss.detach().float(), self._bad_loss)
            if number % NON_FINITE_CHECK_EVERY == 0:
                self._check_finite(self._first_bad, self._bad_loss, epoch)
        else:
            finite = distributed.all_reduce(torch.isfinite(loss.detach()).float(), self.world, dist.ReduceOp.MIN)
            if not finite.item():
                raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch}, batch {number}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.meter.add(stats, loss.detach())

    def totals(self) -> Totals:
        """The epoch's means (:meth:`Meter.totals`)."""
        return self.meter.totals()

    def _check_finite(self, first_bad: Tensor, bad_loss: Tensor, epoch: int) -> None:
        """Raise :class:`TrainingError` naming the first batch (over all processes) whose loss
        was non-finite; one wait for the GPU."""
        never = torch.iinfo(torch.long).max
        first = distributed.all_reduce(torch.where(first_bad > 0, first_bad, never), self.world, dist.ReduceOp.MIN)
        number = int(first.item())
        if number != never:
            value = bad_loss.item() if int(first_bad.item()) == number else float("nan")
            raise TrainingError(f"non-finite loss ({value}) at epoch {epoch}, batch {number}")


def loader_options(config: Config) -> dict[str, Any]:
    """DataLoader options shared by every split: the data's collate, workers, pinning on CUDA.

    Workers persist across epochs (started once, not once per epoch); the sampler stays in
    this process, so ``set_epoch`` still reorders each epoch."""
    workers = config.data.num_workers
    return {"collate_fn": collate, "num_workers": workers, "persistent_workers": workers > 0,
            "pin_memory": torch.device(config.device).type == "cuda"}


def train_loader(dataset: Dataset, batch_size: int, seed: int, config: Config, rank: int,
                 world: int) -> DataLoader:
    """Shuffled loader of this process's share: ``batch_size // world`` images per batch."""
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size=batch_size // world, sampler=sampler, **loader_options(config))


def shard_loader(dataset: Dataset, batch_size: int, config: Config, rank: int, world: int) -> DataLoader:
    """Loader of every ``world``-th image from ``rank``, in order (no padding, no repeats)."""
    shard = Subset(dataset, range(rank, len(dataset), world))
    return DataLoader(shard, batch_size=batch_size // world, shuffle=False, **loader_options(config))
