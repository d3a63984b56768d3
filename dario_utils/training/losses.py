"""DarioNet's loss, and the one place to add a loss: the registries :data:`LOSSES` and :data:`TERMS`.

DarioNet's loss (:class:`Distillation`) adds up:

- the :data:`LOSSES` entry named by ``train.loss``, between the teacher's logits on the
  reconstruction and on the original: their MSE (``mse``, the report's) or the KL divergence of
  their softmaxes at ``train.temperature`` (``kl``);
- each :data:`TERMS` entry whose weight is set: ``train.l1_weight`` * :func:`pixel_l1` of the
  reconstruction to the original, ``train.feature_weight`` * :func:`feature_loss`, the MSE of
  the teacher's last feature maps on both (read by a :class:`FeatureTap`).

The report trains with the logit MSE alone (both weights 0). Each entry also names its runs of
notebook 06's loss ablation (:func:`ablation_variants`), and :func:`check_loss` checks
``train.loss`` and that loss's settings before any work. A new loss is one ``LOSSES.add`` (or
``TERMS.add``) here, plus the ``train`` fields of its settings in
:mod:`dario_utils.core.config`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dario_utils.core.config import BeyondConfig, check_positive, ConfigError, TrainConfig
from dario_utils.core.registry import Registry


@dataclass(frozen=True)
class Variant:
    """One run of notebook 06's loss ablation: its key (file names), label (tables, figures) and training overrides."""

    key: str
    label: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class LogitLoss:
    """A loss between the teacher's logits on the reconstruction and on the original (a ``train.loss``)."""

    value: Callable[[Tensor, Tensor, TrainConfig], Tensor]  # (logits, reference logits, train) -> loss
    ablation: Callable[[BeyondConfig], list[Variant]]
    check: Callable[[TrainConfig], object] = lambda train: None  # ConfigError where its settings do not fit


@dataclass(frozen=True)
class Term:
    """A term added to the logit loss times its weight; off where the weight is 0."""

    weight: Callable[[TrainConfig], float]
    value: Callable[[Tensor, Tensor, Tensor | None, Tensor | None], Tensor]  # (recon, x, features, reference features)
    ablation: Callable[[BeyondConfig], list[Variant]]
    needs_features: bool = False  # the teacher's last feature maps, on the reconstruction and on the original


LOSSES: Registry[LogitLoss] = Registry("train.loss", "loss")
"""Losses on the teacher's logits, by their ``train.loss`` name."""
TERMS: Registry[Term] = Registry("train.<term>_weight", "loss term")
"""Terms added to the logit loss, in the order they are added."""


def pixel_l1(recon: Tensor, x: Tensor) -> Tensor:
    """Mean absolute difference of the reconstruction to the original, in float32."""
    return F.l1_loss(recon.float(), x.float())


def feature_loss(features: Tensor, reference_features: Tensor) -> Tensor:
    """MSE of the teacher's feature maps on the reconstruction to those on the original, in float32."""
    return F.mse_loss(features.float(), reference_features.float())


def _kl(logits: Tensor, reference: Tensor, train: TrainConfig) -> Tensor:
    """KL divergence of the student's softmax from the teacher's at ``train.temperature``, times
    ``temperature**2`` (Hinton et al.), averaged over the batch."""
    t = train.temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(reference / t, 1),
                    log_target=True, reduction="batchmean") * t ** 2


LOSSES.add("mse", LogitLoss(lambda logits, reference, train: F.mse_loss(logits, reference),
                            lambda beyond: [Variant("mse", "logit MSE (report)", {})]))
LOSSES.add("kl", LogitLoss(
    _kl,
    lambda beyond: [Variant(f"kl_t{t:g}", f"KL, T = {t:g}", {"train.loss": "kl", "train.temperature": float(t)})
                    for t in beyond.ablation_temperatures],
    lambda train: check_positive("train.temperature", train.temperature)))
TERMS.add("l1", Term(
    lambda train: train.l1_weight, lambda recon, x, features, reference_features: pixel_l1(recon, x),
    lambda beyond: [Variant("mse_l1", f"logit MSE + {beyond.ablation_l1_weight:g} × L1",
                            {"train.l1_weight": beyond.ablation_l1_weight})]))
TERMS.add("features", Term(
    lambda train: train.feature_weight,
    lambda recon, x, features, reference_features: feature_loss(features, reference_features),
    lambda beyond: [Variant("mse_features", f"logit MSE + {beyond.ablation_feature_weight:g} × features",
                            {"train.feature_weight": beyond.ablation_feature_weight})],
    needs_features=True))


def check_loss(train: TrainConfig) -> None:
    """:class:`ConfigError` naming the key where ``train.loss`` is not in :data:`LOSSES` or its settings do not fit."""
    LOSSES.get(train.loss).check(train)


def logit_loss(logits: Tensor, reference: Tensor, train: TrainConfig | None = None) -> Tensor:
    """The loss ``train.loss`` (default: the report's MSE) between the student's ``logits`` and the
    teacher's ``reference``; a loss not in :data:`LOSSES` or settings that do not fit are a :class:`ConfigError`."""
    train = train or TrainConfig()
    check_loss(train)
    return LOSSES.get(train.loss).value(logits, reference, train)


def ablation_variants(beyond: BeyondConfig) -> list[Variant]:
    """Notebook 06's loss ablation: the runs of every entry of :data:`LOSSES`, then of :data:`TERMS`."""
    return [variant for entry in (*LOSSES, *TERMS) for variant in entry.ablation(beyond)]


class FeatureTap:
    """Keeps the input of the teacher's global pooling layer (its last feature map)."""

    def __init__(self, teacher: nn.Module) -> None:
        pools = [m for m in teacher.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        if not pools:
            raise ConfigError("train.feature_weight needs a teacher with a global pooling layer "
                              "(nn.AdaptiveAvgPool2d); set train.feature_weight: 0")
        self.features: Tensor | None = None
        self._handle = pools[-1].register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.features = args[0]

    def remove(self) -> None:
        """Take the hook off the teacher."""
        self._handle.remove()


class Distillation:
    """DarioNet's loss for one run, a context manager: ``train.loss`` on the teacher's logits plus each
    term of :data:`TERMS` whose weight is set; the teacher's feature maps are tapped while a term needs them."""

    def __init__(self, teacher: nn.Module, train: TrainConfig, extra_teachers: Sequence[nn.Module] = ()) -> None:
        self.teacher, self.train, self.extra_teachers = teacher, train, list(extra_teachers)
        self.terms = [(term.weight(train), term) for term in TERMS if term.weight(train)]
        self.tap = FeatureTap(teacher) if any(term.needs_features for _, term in self.terms) else None

    def __enter__(self) -> Distillation:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tap is not None:
            self.tap.remove()

    @torch.no_grad()
    def reference(self, x: Tensor) -> tuple[Tensor, Tensor | None, list[Tensor]]:
        """The teacher's float logits on the originals ``x``, where tapped its feature maps on them, and
        each extra teacher's float logits on them."""
        logits = self.teacher(x).float()
        features = self.tap.features if self.tap else None
        return logits, features, [teacher(x).float() for teacher in self.extra_teachers]

    def __call__(self, recon: Tensor, x: Tensor, reference: Tensor, reference_features: Tensor | None,
                 extra_references: Sequence[Tensor] = ()) -> tuple[Tensor, Tensor]:
        """The loss on one batch, and the teacher's float logits on the reconstruction ``recon``. With
        extra teachers the logit loss is the mean of every teacher's (``train.extra_teachers``)."""
        logits = self.teacher(recon).float()
        loss = logit_loss(logits, reference, self.train)
        if self.extra_teachers:
            for teacher, extra_reference in zip(self.extra_teachers, extra_references, strict=True):
                loss = loss + logit_loss(teacher(recon).float(), extra_reference, self.train)
            loss = loss / (1 + len(self.extra_teachers))
        for weight, term in self.terms:
            loss = loss + weight * term.value(recon, x, self.tap.features if self.tap else None, reference_features)
        return loss, logits
