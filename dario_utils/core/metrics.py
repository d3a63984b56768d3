"""Metrics of the study: image quality, classifier agreement and their statistics.

Image metrics take batches ``(B, C, H, W)`` of images in ``[0, data_range]`` and
return one value per image ``(B,)``, so that results can be stored per image and
averaged, bootstrapped or compared later. Classifier metrics take logits ``(B, K)``
and integer labels ``(B,)`` and also return one value per image.

The statistics (bootstrap interval, McNemar test, per-class reports) work on
numpy arrays / pandas frames of such per-image results.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import precision_recall_fscore_support
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
MCNEMAR_EXACT_BELOW = 25


def _check_image_pair(reconstruction: Tensor, reference: Tensor) -> None:
    if reconstruction.shape != reference.shape or reconstruction.dim() != 4:
        raise ValueError(
            "expected two (B, C, H, W) batches of the same shape, got "
            f"{tuple(reconstruction.shape)} and {tuple(reference.shape)}"
        )


def psnr(reconstruction: Tensor, reference: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB of each image of a batch.

    ``10 * log10(data_range**2 / MSE)`` with the MSE taken over channels and pixels
    of each image, computed in float64. Identical images give ``+inf``.

    Returns a float64 tensor of shape ``(B,)``.
    """
    _check_image_pair(reconstruction, reference)
    diff = reconstruction.double() - reference.double()
    mse = diff.pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(channels: int, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian (11 taps, sigma 1.5) as a (C, 1, 1, 11) grouped kernel."""
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device)
    coords -= (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g /= g.sum()
    return g.expand(channels, 1, 1, SSIM_WINDOW).contiguous()


def ssim(reconstruction: Tensor, reference: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity (Wang et al. 2004) of each image of a batch.

    Local means, variances and covariance are Gaussian-weighted (11x11 window,
    sigma 1.5, population statistics) with constants ``C1 = (0.01 * L)**2`` and
    ``C2 = (0.03 * L)**2`` for ``L = data_range``; the window is applied as two
    1-D grouped convolutions (it is separable). The SSIM map is computed per
    channel on the 'valid' region (no padding, so ``H`` and ``W`` lose 10 pixels),
    averaged over that region and then over channels. This matches
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``, which also averages only the part of the map
    unaffected by its border padding. Computed in float64; identical images give 1.

    Returns a float64 tensor of shape ``(B,)``.
    """
    _check_image_pair(reconstruction, reference)
    channels, height, width = reconstruction.shape[1:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    x = reconstruction.double()
    y = reference.double()
    window = _gaussian_window(channels, x.device)

    def local_mean(t: Tensor) -> Tensor:
        # The 11x11 Gaussian is separable: filter rows, then columns ('valid' region).
        rows = F.conv2d(t, window, groups=channels)
        return F.conv2d(rows, window.transpose(2, 3), groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


def _at_least_float32(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def cross_entropy_per_image(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the softmax of ``logits`` (B, K) against ``labels`` (B,), per image."""
    return F.cross_entropy(_at_least_float32(logits), labels, reduction="none")


def topk_hits(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Boolean ``(B,)``: whether each label is among the ``k`` largest logits of its row."""
    top = logits.topk(k, dim=1).indices
    return (top == labels.unsqueeze(1)).any(dim=1)


def logit_mse(logits: Tensor, reference_logits: Tensor) -> Tensor:
    """Mean over classes of the squared difference of two (B, K) logit tensors, per image.

    This is the per-image form of DarioNet's training loss (teacher logits on the
    original image as ``reference_logits``).
    """
    if logits.shape != reference_logits.shape:
        raise ValueError(f"shape mismatch: {tuple(logits.shape)} vs {tuple(reference_logits.shape)}")
    diff = _at_least_float32(logits) - _at_least_float32(reference_logits)
    return diff.pow(2).mean(dim=1)


def bootstrap_interval(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` (the mean by default) of per-image values.

    ``values`` holds one value per image (booleans for accuracy, or floats), or one row per
    image whose columns a resample keeps together (paired values, such as several models'
    hits). ``n_boot`` resamples of the same number of images are drawn with replacement from
    ``numpy.random.default_rng(seed)``, so the interval is reproducible; the ``(1 - level) / 2``
    and ``(1 + level) / 2`` quantiles of the statistic over them are returned, leaving out
    resamples where it is undefined (NaN).
    """
    values = np.asarray(values, dtype=np.float64)
    values = values.ravel() if values.ndim < 2 else values
    if values.shape[0] == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    # One resample at a time keeps memory at O(n) for ~25k test images.
    resampled = np.array([statistic(values[rng.integers(0, n, n)]) for _ in range(n_boot)], dtype=np.float64)
    resampled = resampled[~np.isnan(resampled)]
    if resampled.size == 0:
        raise ValueError("the statistic is undefined on every resample")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(resampled, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mcnemar(hits_a: np.ndarray, hits_b: np.ndarray) -> dict:
    """McNemar test of paired per-image correctness of two models on the same images.

    Returns a dict with ``b`` (images A got right and B wrong), ``c`` (A wrong, B
    right), ``statistic``, ``p_value`` (two-sided) and ``method``:

    * ``b + c == 0``: no discordant pairs, ``statistic`` 0.0 and ``p_value`` 1.0
      (method ``"exact-binomial"``);
    * ``b + c < 25``: ``"exact-binomial"``, ``scipy.stats.binomtest(b, b + c, 0.5)``,
      with ``statistic = min(b, c)``;
    * otherwise ``"chi2-continuity"``: ``(|b - c| - 1)**2 / (b + c)`` against a
      chi-square distribution with one degree of freedom.
    """
    a = np.asarray(hits_a, dtype=bool).ravel()
    b_hits = np.asarray(hits_b, dtype=bool).ravel()
    if a.shape != b_hits.shape:
        raise ValueError(f"paired hits differ in length: {a.size} vs {b_hits.size}")
    b = int(np.sum(a & ~b_hits))
    c = int(np.sum(~a & b_hits))
    n = b + c
    if n == 0:
        statistic, p_value, method = 0.0, 1.0, "exact-binomial"
    elif n < MCNEMAR_EXACT_BELOW:
        statistic = float(min(b, c))
        p_value = float(stats.binomtest(b, n, 0.5, alternative="two-sided").pvalue)
        method = "exact-binomial"
    else:
        statistic = (abs(b - c) - 1) ** 2 / n
        p_value = float(stats.chi2.sf(statistic, df=1))
        method = "chi2-continuity"
    return {"b": b, "c": c, "statistic": float(statistic), "p_value": p_value, "method": method}


def per_class_report(
    labels: np.ndarray,
    predictions: np.ndarray,
    class_names: Sequence[str],
    wnids: Sequence[str],
) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class present in ``labels``.

    Computed by ``sklearn.metrics.precision_recall_fscore_support`` with
    ``zero_division=0``; ``class_names`` and ``wnids`` are indexed by label.
    One row per class, sorted by label, with columns
    ``label, wnid, class_name, precision, recall, f1, support``.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    present = np.unique(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=present, zero_division=0
    )
    return pd.DataFrame(
        {
            "label": present.astype(int),
            "wnid": [wnids[i] for i in present],
            "class_name": [class_names[i] for i in present],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(int),
        }
    )


def class_differences(per_class_reference: pd.DataFrame, per_class_model: pd.DataFrame) -> pd.DataFrame:
    """Per-class F1 change from a reference (e.g. original images) to a model.

    Inner-joins two :func:`per_class_report` frames on ``label`` and returns columns
    ``label, wnid, class_name, f1_reference, f1_model, f1_difference`` (model minus
    reference), ``hardness`` (``1 - f1_reference``) and ``support``, sorted by
    ``f1_difference`` ascending (worst first, ties by label). Both reports must
    come from the same labels, so their supports must agree.
    """
    merged = per_class_reference[["label", "wnid", "class_name", "f1", "support"]].merge(
        per_class_model[["label", "f1", "support"]],
        on="label",
        suffixes=("_reference", "_model"),
        validate="one_to_one",
    )
    if not (merged["support_reference"] == merged["support_model"]).all():
        raise ValueError("per-class supports differ: the reports were not computed on the same labels")
    merged["f1_difference"] = merged["f1_model"] - merged["f1_reference"]
    merged["hardness"] = 1.0 - merged["f1_reference"]
    merged["support"] = merged["support_reference"]
    columns = [
        "label", "wnid", "class_name", "f1_reference", "f1_model", "f1_difference", "hardness", "support",
    ]
    return merged.sort_values(["f1_difference", "label"], kind="stable")[columns].reset_index(drop=True)


def format_metric(value: float, digits: int = 4) -> str:
    """Format a metric for tables: ``digits`` decimals, ``inf``/``-inf``, NaN as ``n/a``."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"
