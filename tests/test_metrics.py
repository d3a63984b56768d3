"""Tests of dario_utils.core.metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dario_utils.core.metrics import (
    bootstrap_interval,
    class_differences,
    cross_entropy_per_image,
    format_metric,
    logit_mse,
    mcnemar,
    per_class_report,
    psnr,
    ssim,
    topk_hits,
)


def _smooth_images(batch: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Images with structure (gradients and blobs) plus some noise, in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, 6, 6, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    noise = 0.05 * torch.randn(batch, channels, size, size, generator=gen)
    return (smooth + noise).clamp(0, 1)


# --- PSNR ---------------------------------------------------------------------------


def test_psnr_of_known_mse():
    reference = torch.zeros(2, 3, 4, 4)
    reconstruction = reference.clone()
    reconstruction[0] += 0.1  # MSE 0.01 -> 20 dB
    reconstruction[1, :, :2] += 0.2  # half the pixels off by 0.2 -> MSE 0.02
    values = psnr(reconstruction, reference)
    assert values.shape == (2,)
    assert values.dtype == torch.float64
    assert values[0].item() == pytest.approx(20.0, abs=1e-5)
    assert values[1].item() == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-5)


def test_psnr_data_range():
    reference = torch.zeros(1, 1, 2, 2)
    reconstruction = torch.full((1, 1, 2, 2), 25.5)  # MSE 650.25, range 255 -> 20 dB
    assert psnr(reconstruction, reference, data_range=255.0).item() == pytest.approx(20.0)


def test_psnr_identical_is_inf():
    images = torch.rand(3, 3, 8, 8)
    values = psnr(images, images.clone())
    assert torch.isinf(values).all() and (values > 0).all()


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


# --- SSIM ---------------------------------------------------------------------------


def test_ssim_identical_is_one():
    images = _smooth_images(2, 3, 32, seed=1)
    values = ssim(images, images.clone())
    assert values.shape == (2,)
    assert torch.allclose(values, torch.ones(2, dtype=torch.float64), atol=1e-12)


def test_ssim_decreases_with_noise():
    reference = _smooth_images(1, 3, 32, seed=2)
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(reference.shape, generator=gen)
    slightly = ssim((reference + 0.02 * noise).clamp(0, 1), reference).item()
    strongly = ssim((reference + 0.2 * noise).clamp(0, 1), reference).item()
    assert 1.0 > slightly > strongly


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    reference = _smooth_images(3, 3, 40, seed=4)[..., :33]  # non-square: rows and columns differ
    gen = torch.Generator().manual_seed(5)
    reconstruction = (reference + 0.1 * torch.randn(reference.shape, generator=gen)).clamp(0, 1)
    ours = ssim(reconstruction, reference)
    for i in range(reference.shape[0]):
        expected = metrics.structural_similarity(
            reconstruction[i].permute(1, 2, 0).double().numpy(),
            reference[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=-1,
            data_range=1,
        )
        assert ours[i].item() == pytest.approx(expected, abs=1e-4)


def test_ssim_too_small():
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 10, 10))


# --- classifier metrics --------------------------------------------------------------


def test_cross_entropy_uniform_and_known():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0, 0.0]])
    labels = torch.tensor([2, 0])
    ce = cross_entropy_per_image(logits, labels)
    assert ce.shape == (2,)
    assert ce[0].item() == pytest.approx(math.log(4.0))
    # softmax of class 0 is 3 / (3 + 1 + 1 + 1) = 0.5
    assert ce[1].item() == pytest.approx(math.log(2.0))


def test_topk_hits():
    logits = torch.tensor([[0.1, 0.5, 0.3, 0.2], [0.9, 0.0, 0.05, 0.04]])
    labels = torch.tensor([2, 3])
    assert topk_hits(logits, labels, 1).tolist() == [False, False]
    assert topk_hits(logits, labels, 2).tolist() == [True, False]
    assert topk_hits(logits, labels, 3).tolist() == [True, True]
    assert topk_hits(logits, labels, 1).dtype == torch.bool


def test_logit_mse():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    reference = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    values = logit_mse(logits, reference)
    assert values.tolist() == pytest.approx([(0 + 4 + 9) / 3, 0.0])


# --- bootstrap ----------------------------------------------------------------------


def test_bootstrap_reproducible_and_brackets_mean():
    hits = np.random.default_rng(7).random(500) < 0.7
    first = bootstrap_interval(hits, n_boot=500, seed=3)
    assert first == bootstrap_interval(hits, n_boot=500, seed=3)
    assert first != bootstrap_interval(hits, n_boot=500, seed=4)
    low, high = first
    assert low < hits.mean() < high
    # Roughly +-1.96 standard errors for a proportion.
    se = math.sqrt(hits.mean() * (1 - hits.mean()) / hits.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_bootstrap_narrower_at_lower_level():
    hits = np.random.default_rng(8).random(300) < 0.5
    low95, high95 = bootstrap_interval(hits, level=0.95)
    low50, high50 = bootstrap_interval(hits, level=0.5)
    assert high50 - low50 < high95 - low95


def test_bootstrap_keeps_the_columns_of_an_image_together():
    """A paired statistic sees each resampled image's columns side by side: a difference of two
    columns that are equal on every image has a zero-width interval, as it would not if the
    columns were resampled apart."""
    hits = np.random.default_rng(9).random(200) < 0.6
    paired = np.column_stack([hits, hits])
    difference = lambda rows: rows[:, 0].mean() - rows[:, 1].mean()  # noqa: E731
    assert bootstrap_interval(paired, statistic=difference) == (0.0, 0.0)
    shifted = np.column_stack([hits, np.roll(hits, 1)])
    low, high = bootstrap_interval(shifted, statistic=difference)
    assert low < 0 < high


def test_bootstrap_leaves_out_resamples_where_the_statistic_is_undefined():
    values = np.array([0.0] * 5 + [1.0])
    ratio = lambda rows: 1.0 if rows.sum() else np.nan  # noqa: E731
    assert bootstrap_interval(values, statistic=ratio) == (1.0, 1.0)
    with pytest.raises(ValueError, match="undefined on every resample"):
        bootstrap_interval(np.zeros(4), statistic=ratio)


def test_bootstrap_constant_and_empty():
    assert bootstrap_interval(np.ones(10, dtype=bool)) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_interval(np.array([]))


# --- McNemar ------------------------------------------------------------------------


def _paired(b: int, c: int, both_right: int = 5, both_wrong: int = 3) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    other = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return np.array(a), np.array(other)


def test_mcnemar_exact():
    result = mcnemar(*_paired(10, 2))
    assert result["b"] == 10 and result["c"] == 2
    assert result["method"] == "exact-binomial"
    # Two-sided: 2 * P(X <= 2) for X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096.
    assert result["p_value"] == pytest.approx(2 * 79 / 4096)
    assert result["statistic"] == 2.0


def test_mcnemar_chi2():
    result = mcnemar(*_paired(30, 10))
    assert result["b"] == 30 and result["c"] == 10
    assert result["method"] == "chi2-continuity"
    assert result["statistic"] == pytest.approx((20 - 1) ** 2 / 40)  # 9.025
    # Chi-square with 1 d.o.f.: P(X > s) = erfc(sqrt(s / 2)).
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))


def test_mcnemar_no_discordant_pairs():
    hits = np.array([True, False, True])
    result = mcnemar(hits, hits.copy())
    assert result["b"] == 0 and result["c"] == 0
    assert result["p_value"] == 1.0


def test_mcnemar_threshold_at_25():
    assert mcnemar(*_paired(13, 11))["method"] == "exact-binomial"  # b + c = 24
    assert mcnemar(*_paired(13, 12))["method"] == "chi2-continuity"  # b + c = 25


# --- per-class reports ---------------------------------------------------------------

CLASS_NAMES = ["tench", "goldfish", "shark", "hen"]
WNIDS = ["n01440764", "n01443537", "n01484850", "n01514859"]


def test_per_class_report_hand_computed():
    # Classes 0, 1, 3 present; class 2 never a label but predicted once.
    labels = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3])
    predictions = np.array([0, 0, 1, 1, 2, 3, 3, 0, 3])
    report = per_class_report(labels, predictions, CLASS_NAMES, WNIDS)
    assert list(report.columns) == ["label", "wnid", "class_name", "precision", "recall", "f1", "support"]
    assert report["label"].tolist() == [0, 1, 3]
    assert report["wnid"].tolist() == ["n01440764", "n01443537", "n01514859"]
    assert report["class_name"].tolist() == ["tench", "goldfish", "hen"]
    # class 0: TP 2, predicted 3, true 3 -> P 2/3, R 2/3, F1 2/3
    # class 1: TP 1, predicted 2, true 2 -> P 1/2, R 1/2, F1 1/2
    # class 3: TP 3, predicted 3, true 4 -> P 1, R 3/4, F1 6/7
    assert report["precision"].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert report["recall"].tolist() == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert report["f1"].tolist() == pytest.approx([2 / 3, 1 / 2, 6 / 7])
    assert report["support"].tolist() == [3, 2, 4]


def test_per_class_report_never_predicted_class_is_zero():
    labels = np.array([0, 1])
    predictions = np.array([0, 0])
    report = per_class_report(labels, predictions, CLASS_NAMES, WNIDS)
    never_predicted = report.loc[report["label"] == 1, ["precision", "recall", "f1"]]
    assert never_predicted.to_numpy().tolist() == [[0.0, 0.0, 0.0]]


def _report(f1: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": [0, 1, 2],
            "wnid": WNIDS[:3],
            "class_name": CLASS_NAMES[:3],
            "precision": f1,
            "recall": f1,
            "f1": f1,
            "support": [10, 20, 30],
        }
    )


def test_class_differences_ordering():
    reference = _report([0.9, 0.5, 0.8])
    model = _report([0.6, 0.7, 0.8])
    diff = class_differences(reference, model)
    assert list(diff.columns) == [
        "label", "wnid", "class_name", "f1_reference", "f1_model", "f1_difference", "hardness", "support",
    ]
    assert diff["label"].tolist() == [0, 2, 1]  # -0.3, 0.0, +0.2
    assert diff["f1_difference"].tolist() == pytest.approx([-0.3, 0.0, 0.2])
    assert diff["hardness"].tolist() == pytest.approx([0.1, 0.2, 0.5])
    assert diff["class_name"].tolist() == ["tench", "shark", "goldfish"]
    assert diff["support"].tolist() == [10, 30, 20]


def test_class_differences_rejects_mismatched_support():
    model = _report([0.6, 0.7, 0.8])
    model["support"] = [10, 20, 31]
    with pytest.raises(ValueError):
        class_differences(_report([0.9, 0.5, 0.8]), model)


# --- formatting ---------------------------------------------------------------------


def test_format_metric():
    assert format_metric(25.24661) == "25.2466"
    assert format_metric(0.5, digits=2) == "0.50"
    assert format_metric(float("inf")) == "inf"
    assert format_metric(float("-inf")) == "-inf"
    assert format_metric(float("nan")) == "n/a"
    assert format_metric(np.float32(1.5)) == "1.5000"
    assert format_metric(psnr(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))[0]) == "inf"
