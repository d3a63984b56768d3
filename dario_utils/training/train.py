"""Fine-tuning DarioNet with the frozen teacher's logits (notebook 03 and the command line).

DarioNet is an RRDBNet fine-tuned with :class:`dario_utils.training.losses.Distillation`: the
teacher's logits on the reconstruction of the downsampled copy compared with its logits on
the original image, by their MSE (the report's loss) or by the KL divergence of their
softmaxes at a temperature (``train.loss``, ``train.temperature``), plus two optional terms,
off in the report: the pixel L1 to the original (``train.l1_weight``) and the MSE of the
teacher's last feature maps (``train.feature_weight``).

The generic loop (the epoch's batches and learning rates, the non-finite checks, the meter, the
loaders of every split) is :mod:`dario_utils.training.loop`, which this module calls and which
never calls back; the process group is :mod:`dario_utils.core.distributed`. This module holds
what is DarioNet's: the forward pass, its statistics and augmentation, validation, the
checkpoints of a run, :func:`finetune` and the command line.

Reproducibility: data order comes from :class:`~torch.utils.data.DistributedSampler`
(``world = 1`` without DDP) and every random augmentation is drawn per sample from
``(seed, epoch, dataset index)``, so a global batch holds the same images, augmented the
same way, whatever the number of processes (DDP runs ``batch_size // world`` per process).
A run killed (Ctrl-C or SIGTERM) and resumed from ``darionet_last.pt`` ends with the same
weights, bit for bit on CPU, as one that was never interrupted.

Files (all written atomically, by rank 0 only):

- ``runs/<p>/checkpoints/darionet_last.pt``: every ``train.checkpoint_every`` epochs (1 by
  default) and after the last; model, optimizer, RNG states, config and history, for
  ``resume`` (which redoes the epochs after it). ``darionet_best.pt``: the epoch with the
  lowest validation loss, written with ``darionet_last.pt``. Both load with
  :func:`dario_utils.models.load_sr`.
- ``runs/<p>/results/history.csv``: columns :data:`HISTORY_COLUMNS`, one row per epoch
  and phase (``train``, ``val``), after a first row (epoch 0, phase ``start``): the
  untrained start on the validation split, which every trained epoch is measured against.

Command line (alone or under ``torchrun --nproc_per_node=N``)::

    python -m dario_utils.training.train --profile demo [--data-root DIR] [--device cpu|cuda]
                                [--resume] [--epochs N]
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dario_utils.core import distributed, fileio, paths
from dario_utils.core.config import check_config, Config, load_config
from dario_utils.core.metrics import cross_entropy_per_image, logit_mse, psnr
from dario_utils.data.dataset import manifest_dataset, training_set
from dario_utils.data.degrade import downsample, reconstruct
from dario_utils.training.head_cache import freeze_head, head_features, HeadFeatures, reconstruct_from_head, Tail
from dario_utils.training.loop import autocast, Meter, shard_loader, to_device, Totals, train_loader, Trainer, TrainingError
from dario_utils.training.losses import check_loss, Distillation
from dario_utils.models import (
    CheckpointError, CheckpointReadError, RRDBNet, Snapshot, build_student, load_sr, rng_state, save_sr_checkpoint,
    set_rng_state, student_architecture, teacher_of,
)
from dario_utils.core.paths import BEST_FILE, HISTORY_FILE, LAST_FILE
from dario_utils.core.result_files import START_PHASE
from dario_utils.core.runtime import git_commit, setup_torch
from dario_utils.models.checkpoints import load_weights_only

STATS = ("logit_mse", "ce", "psnr", "agreement", "val_loss")
"""Per-image statistics averaged into each history row (see :func:`_image_stats`)."""
HISTORY_COLUMNS = ["epoch", "phase", *STATS, "seconds", "images_per_s"]
"""Columns of ``history.csv``."""


# ---------------------------------------------------------------- devices


def _device(config: Config) -> torch.device:
    """:func:`setup_torch`'s device; on CUDA the current (per-process) GPU."""
    device = setup_torch(config)
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" else device


def _channels_last(module: nn.Module) -> nn.Module:
    """``module`` in channels-last memory format: faster convolutions on CUDA and on CPU (oneDNN:
    a demo training step 10-20% faster)."""
    return module.to(memory_format=torch.channels_last)


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


# ---------------------------------------------------------------- statistics


def _image_stats(logits: Tensor, reference: Tensor, recon: Tensor, x: Tensor, labels: Tensor) -> Tensor:
    """Per-image :data:`STATS` (B, 5), float64: logit MSE to the teacher on the original, CE of
    the reconstruction, PSNR, top-1 agreement with the teacher, CE(recon) - CE(original)."""
    ce = cross_entropy_per_image(logits, labels)
    columns = [logit_mse(logits, reference), ce, psnr(recon.float(), x.float()),
               logits.argmax(1) == reference.argmax(1), ce - cross_entropy_per_image(reference, labels)]
    return torch.stack([c.double() for c in columns], dim=1)


# ---------------------------------------------------------------- one step, validation


def _reconstruct(model: nn.Module, x: Tensor, indices: Tensor, scale: float,
                 head: HeadFeatures | None) -> Tensor:
    """The student's reconstruction of ``x``'s downsampled copy; with a frozen head ``model``
    is its :class:`~dario_utils.training.head_cache.Tail`, run on the cached head features of ``indices``."""
    if head is None:
        return reconstruct(model, downsample(x, scale), x.shape[-1])
    return reconstruct_from_head(model, head.select(indices, x.device), x.shape[-1])


def _forward_batch(model: nn.Module, x: Tensor, labels: Tensor, indices: Tensor, *, loss: Distillation,
                   scale: float, head: HeadFeatures | None) -> tuple[Tensor, Tensor]:
    """DarioNet's loss (:class:`~dario_utils.training.losses.Distillation`) on one batch and its
    per-image :data:`STATS`."""
    reference, reference_features, extra_references = loss.reference(x)
    recon = _reconstruct(model, x, indices, scale, head)
    value, logits = loss(recon, x, reference, reference_features, extra_references)
    return value, _image_stats(logits.detach(), reference, recon.detach(), x, labels)


def _train_epoch(trainer: Trainer, epoch: int, augment: _Augment, loss: Distillation, scale: float,
                 head: HeadFeatures | None) -> Totals:
    """One epoch of :class:`~dario_utils.training.loop.Trainer`, each batch augmented and passed forward here."""
    for batch in trainer.epoch(epoch):
        x = to_device(augment(batch["image"], batch["index"], epoch), trainer.device)
        with autocast(trainer.device, trainer.amp):
            value, stats = _forward_batch(trainer.model, x, batch["label"].to(trainer.device, non_blocking=True),
                                          batch["index"], loss=loss, scale=scale, head=head)
        trainer.step(value, stats)
    return trainer.totals()


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, loader: DataLoader, device: torch.device,
                    amp: bool) -> dict[int, Tensor]:
    """The teacher's float logits on each original image of ``loader``, by dataset index."""
    logits: dict[int, Tensor] = {}
    for batch in loader:
        if "image" in batch:
            with autocast(device, amp):
                out = teacher(to_device(batch["image"], device)).float()
            logits.update(zip(batch["index"].tolist(), out))
    return logits


@torch.no_grad()
def _validate(net: nn.Module, teacher: nn.Module, loader: DataLoader, references: dict[int, Tensor],
              head: HeadFeatures | None, config: Config, device: torch.device, epoch: int, show: bool,
              world: int) -> Totals:
    """:data:`STATS` of the reconstructions of the validation split (this process's shard);
    ``net`` is the student, or its tail with the val split's ``head`` features."""
    net.eval()
    meter = Meter(STATS, len(loader), f"epoch {epoch} val", device, show, world)
    for x, batch in meter.batches(loader):
        with autocast(device, config.train.amp):
            recon = _reconstruct(net, x, batch["index"], config.data.scale, head)
            logits = teacher(recon).float()
        reference = torch.stack([references[i] for i in batch["index"].tolist()])
        stats = _image_stats(logits, reference, recon, x, batch["label"].to(device))
        meter.add(stats, stats[:, 0].mean())
    return meter.totals()


# ---------------------------------------------------------------- checkpoints


def _history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def _save_epoch(folder: Path, results: Path, net: nn.Module, optimizer: torch.optim.Optimizer,
                config: Config, history: list[dict[str, Any]], provenance: dict[str, Any],
                best: float, pending: Snapshot | None = None,
                write_last: bool = True) -> tuple[float, Snapshot | None]:
    """Write history.csv; with ``write_last`` also darionet_best.pt (if the val loss improved since
    it was last written) and darionet_last.pt. Without it an improved epoch's weights are kept
    in memory (``pending``) until the next epoch that writes (``train.checkpoint_every``), so
    that the two files always belong to the same run up to the same epoch.

    Returns the best validation loss so far and the weights still to be written as best.
    """
    fileio.write_csv(_history_frame(history), results / HISTORY_FILE)
    val_loss = history[-1]["val_loss"]
    if val_loss < best:
        pending = Snapshot.of(net, {**provenance, "val_loss": val_loss})
        best = val_loss
    if write_last:
        if pending is not None:
            save_sr_checkpoint(folder / BEST_FILE, pending, pending.provenance)
            pending = None
        save_sr_checkpoint(folder / LAST_FILE, net, provenance, optimizer=optimizer.state_dict(),
                           rng=rng_state(), config=config.to_dict(), history=history)
    return best, pending


_RESUME_KEYS = ("provenance", "optimizer", "rng", "history")


def _training_state(last: Path) -> dict[str, Any]:
    """``darionet_last.pt`` read for resuming; :class:`CheckpointError` in one line naming it and saying
    what to do where it is unreadable or holds no training state."""
    fix = "delete it to start over, or drop --resume (resume=False)"
    try:
        state = load_weights_only(last)
    except CheckpointReadError as err:
        raise CheckpointReadError(f"{err}; {fix}") from None
    if not isinstance(state, dict) or any(key not in state for key in _RESUME_KEYS) \
            or not isinstance(state["provenance"], dict) or "teacher" not in state["provenance"]:
        raise CheckpointError(f"{last} holds no training state to resume ({', '.join(_RESUME_KEYS)}); {fix}")
    return state


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
        state = _training_state(last)
        trained = [state["provenance"]["teacher"], *state["provenance"].get("extra_teachers", [])]
        if trained != config.teachers:
            raise TrainingError(f"{last} was trained with teachers {trained}, the profile asks for "
                                f"{config.teachers}: resume=False starts over")
        net = load_sr(last, device, student_architecture(config))
    blocks = config.train.frozen_blocks
    params = net.parameters() if blocks is None else freeze_head(net, blocks)
    optimizer = torch.optim.Adam(params, lr=config.train.lr)
    if state is None:
        return _channels_last(net), optimizer, []
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return _channels_last(net), optimizer, list(state["history"])


# ---------------------------------------------------------------- entry points


def finetune(config: Config, resume: bool = False, progress: bool = True,
             out_dir: Path | None = None, label: str = "",
             heads: Mapping[str, HeadFeatures] | None = None) -> pd.DataFrame:
    """Fine-tune DarioNet with the teacher's logits; return the history (:data:`HISTORY_COLUMNS`).

    Checkpoints go to ``runs/<p>/checkpoints/`` and the history to ``runs/<p>/results/``, or
    both to ``out_dir`` (a variant of the study's run, such as notebook 06's loss ablation).

    Starts from :func:`build_student`, or with ``resume`` from ``darionet_last.pt`` (the
    epoch it was in when killed is redone). Under ``torch.distributed`` each process takes
    ``train.batch_size // world`` images of each global batch; metrics are reduced over all
    processes and only rank 0 writes files. Raises :class:`TrainingError` on a non-finite
    loss (the last good checkpoint is kept). ``config`` is checked first (:func:`check_config`).

    With a frozen head, ``heads`` may give its cached features of the ``"train"`` images (rows
    in :func:`~dario_utils.data.dataset.training_set` order, mirrors included) and of the ``"val"``
    images, computed once for several runs (the folds of :mod:`dario_utils.evaluation.crossval`);
    otherwise :func:`head_features` reads or computes them per split.
    """
    check_config(config)
    check_loss(config.train)
    device = _device(config)
    rank, world = distributed.world()
    show = progress and rank == 0
    batch = config.train.batch_size
    train_batches = train_loader(training_set(config), batch, config.train.seed, config, rank, world)
    val_loader = shard_loader(manifest_dataset(config, "val"), batch, config, rank, world)
    folder, results = ((out_dir, out_dir) if out_dir is not None else
                       (config.layout.checkpoints, config.layout.results))
    if rank == 0:  # an output folder that cannot be written fails now, not after the first epoch
        fileio.check_writable(folder)
        fileio.check_writable(results)
    net, optimizer, history = _start(config, device, folder / LAST_FILE if resume else None, show)
    teacher = _channels_last(teacher_of(config, device))
    extra_teachers = [_channels_last(teacher_of(config, device, name)) for name in config.train.extra_teachers]
    start = history[-1]["epoch"] + 1 if history else 1
    best = min((row["val_loss"] for row in history if row["phase"] == "val"), default=math.inf)
    provenance = {"profile": config.profile, "stage": "darionet", "teacher": config.teacher.name,
                  "extra_teachers": list(config.train.extra_teachers),
                  "commit": git_commit()}
    references = _teacher_logits(teacher, val_loader, device, config.train.amp)
    every = config.train.checkpoint_every
    saved, pending = start - 1, None  # the epoch darionet_last.pt holds; best weights not yet written
    blocks = config.train.frozen_blocks
    if blocks is None:
        student, train_head, val_head = net, None, None
    else:  # only the tail trains, on the head's cached output
        student = Tail(net, blocks)
        if heads is not None:
            train_head, val_head = heads["train"], heads["val"]
        else:
            train_head, val_head = (head_features(config, split, net, device, show) for split in ("train", "val"))
            if config.train.flipped_copies:
                train_head = train_head.followed_by(head_features(config, "train", net, device, show, flipped=True))
    prefix = f"{label}: " if label else ""
    if not history:  # a fresh start: the untrained net on the validation split, the trained epochs' baseline
        untrained = _validate(student, teacher, val_loader, references, val_head, config, device, 0, show, world)
        history.append(untrained.row(0, START_PHASE))
        if show:
            tqdm.write(f"{prefix}start (untrained): val loss {untrained.means['val_loss']:.4f}, "
                       f"val agreement {untrained.means['agreement']:.2f}, val PSNR {untrained.means['psnr']:.2f} dB")

    with distributed.sigterm_as_interrupt(), Distillation(teacher, config.train, extra_teachers) as loss:
        augment = _Augment(config.train.seed, config.train.hflip, config.train.vflip, config.train.crop)
        trainer = Trainer(distributed.parallel(student, device, world), optimizer, train_batches, STATS, device,
                          config.train.amp, config.train.max_batches, show, world, config.train.lr_schedule,
                          config.train.epochs)
        for epoch in range(start, config.train.epochs + 1):
            try:
                totals = _train_epoch(trainer, epoch, augment, loss, config.data.scale, train_head)
                train_row = totals.row(epoch, "train")
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
                tqdm.write(f"{prefix}epoch {epoch}/{config.train.epochs}: train logit MSE {train_row['logit_mse']:.4f}, "
                           f"val loss {val_row.means['val_loss']:.4f}, val agreement {val_row.means['agreement']:.2f}, "
                           f"val PSNR {val_row.means['psnr']:.2f} dB")
    return _history_frame(history)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fine-tune one profile; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m dario_utils.training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", help="profile name or YAML file")
    parser.add_argument("--data-root", help="data folder (overrides the profile's data_root)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="overrides the profile's device")
    parser.add_argument("--resume", action="store_true", help="continue from darionet_last.pt")
    parser.add_argument("--epochs", type=int, help="overrides train.epochs")
    parser.add_argument("--no-progress", action="store_false", dest="progress", help="draw no progress bars")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.profile, {"data_root": args.data_root, "device": args.device,
                                            "train.epochs": args.epochs}, output_root=paths.output_root_from_env())
        with distributed.process_group(config.device):
            finetune(config, resume=args.resume, progress=args.progress)
    except (ValueError, OSError, TrainingError, fileio.OutputNotWritableError) as err:
        # config, device, data, checkpoint, teacher weights, output folder and training errors
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
