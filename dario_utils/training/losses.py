"""DarioNet's loss: the teacher's logits, plus optional pixel and feature-map terms.

:func:`distillation_loss` adds up to three terms, set by the ``train`` section:

- :func:`logit_loss` between the teacher's logits on the reconstruction and on the original:
  their MSE (``train.loss: mse``, the report's) or the KL divergence of their softmaxes at
  ``train.temperature`` (``kl``);
- ``train.l1_weight`` * :func:`pixel_l1` of the reconstruction to the original;
- ``train.feature_weight`` * :func:`feature_loss`, the MSE of the teacher's last feature maps
  on both (read by a :class:`FeatureTap`).

The report trains with the logit MSE alone (both weights 0).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dario_utils.core.config import check_choice, check_positive, ConfigError, LOSSES, TrainConfig


def logit_loss(logits: Tensor, reference: Tensor, kind: str = "mse", temperature: float = 1.0) -> Tensor:
    """The distillation loss between the student's ``logits`` and the teacher's ``reference``:
    ``mse``, their mean squared difference (the report's), or ``kl``, the KL divergence of the
    student's softmax from the teacher's at ``temperature``, times ``temperature**2`` (Hinton et
    al.), averaged over the batch. Another ``kind`` of :data:`~dario_utils.core.config.LOSSES` or a
    temperature not above 0 (for ``kl``) is a :class:`~dario_utils.core.config.ConfigError`."""
    check_choice("train.loss", kind, LOSSES, "loss")
    if kind == "mse":
        return F.mse_loss(logits, reference)
    check_positive("train.temperature", temperature)
    return F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(reference / temperature, 1),
                    log_target=True, reduction="batchmean") * temperature ** 2


def pixel_l1(recon: Tensor, x: Tensor) -> Tensor:
    """Mean absolute difference of the reconstruction to the original, in float32."""
    return F.l1_loss(recon.float(), x.float())


def feature_loss(features: Tensor, reference_features: Tensor) -> Tensor:
    """MSE of the teacher's feature maps on the reconstruction to those on the original, in float32."""
    return F.mse_loss(features.float(), reference_features.float())


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

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def distillation_loss(logits: Tensor, reference: Tensor, recon: Tensor, x: Tensor, train: TrainConfig,
                      tap: FeatureTap | None, reference_features: Tensor | None) -> Tensor:
    """DarioNet's loss on one batch: :func:`logit_loss` between the teacher's ``logits`` on the
    reconstruction ``recon`` and its ``reference`` logits on the original ``x``, plus
    ``train.l1_weight`` * :func:`pixel_l1` and, with a ``tap`` (``train.feature_weight``), the
    weighted :func:`feature_loss` of the tap's features to ``reference_features``."""
    loss = logit_loss(logits, reference, train.loss, train.temperature)
    if train.l1_weight:
        loss = loss + train.l1_weight * pixel_l1(recon, x)
    if tap is not None:
        loss = loss + train.feature_weight * feature_loss(tap.features, reference_features)
    return loss
