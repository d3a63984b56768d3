"""Tests of dario_utils.evaluation.crossval: the folds partition the images, each fold's split keeps its
test images out of training, and the pooled estimate is computed from per-image hits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dario_utils.core.config import check_config, load_config, with_overrides
from dario_utils.evaluation import crossval
from dario_utils.models.study_models import MODELS

IMAGES = [f"n{i:08d}_x.JPEG" for i in range(50)]


def test_folds_partition_the_images_evenly_and_reproducibly():
    fold_of = crossval.assign_folds(IMAGES, 3, seed=7)
    assert sorted(fold_of.index) == sorted(IMAGES)
    assert sorted(fold_of.value_counts()) == [16, 17, 17]
    assert fold_of.equals(crossval.assign_folds(list(reversed(IMAGES)), 3, seed=7))
    assert not fold_of.equals(crossval.assign_folds(IMAGES, 3, seed=8))


def test_a_folds_test_images_never_train_or_validate_it():
    fold_of = crossval.assign_folds(IMAGES, 3, seed=7)
    tested = []
    for fold in (1, 2, 3):
        splits = crossval.fold_splits(fold_of, fold, val_share=1 / 7, seed=7)
        train, val, test = (set(splits[s]) for s in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(IMAGES)
        assert len(val) == round(len(train | val) / 7)
        tested += splits["test"]
    assert sorted(tested) == sorted(IMAGES)  # every image scored exactly once


def _per_image(hits: dict[str, list[int]], judge: str, fold: int = 1) -> pd.DataFrame:
    n = len(next(iter(hits.values())))
    return pd.concat([pd.DataFrame({"fold": fold, "image": [f"i{k}" for k in range(n)], "model": model,
                                    "judge": judge, "top1": values}) for model, values in hits.items()])


def test_pooled_estimate_recovers_the_gap_from_the_hits():
    config = with_overrides(load_config("imagenet-sample"), {"eval.bootstrap": 200})
    # 10 images: original right on 8, bicubic and bilinear on 4, DarioNet on 7, its start on 5.
    teacher = {"original": [1] * 8 + [0] * 2, "bilinear": [1] * 4 + [0] * 6, "bicubic": [1] * 4 + [0] * 6,
               "esrgan": [1] * 5 + [0] * 5, "darionet": [1] * 7 + [0] * 3}
    unseen = {**teacher, "darionet": [1] * 6 + [0] * 4}
    frame = pd.concat([_per_image(teacher, config.judge), _per_image(unseen, "efficientnet_lite2")])
    pooled = crossval.pooled_estimate(config, frame).set_index("judge")
    assert set(pooled.columns) >= {f"top1_{m}" for m in MODELS}
    assert pooled.loc[config.judge, "gap_vs_bicubic"] == pytest.approx(0.75)
    assert pooled.loc[config.judge, "gap_vs_bilinear"] == pytest.approx(0.75)
    assert pooled.loc["efficientnet_lite2", "gap_vs_bicubic"] == pytest.approx(0.5)
    assert pooled.loc[config.judge, "mcnemar_bicubic_darionet_only"] == 3
    assert pooled.loc[config.judge, "mcnemar_start_darionet_only"] == 2
    assert pooled.loc["efficientnet_lite2", "share_of_teacher_gain"] == pytest.approx(0.5)
    low, high = pooled.loc[config.judge, ["gap_vs_bicubic_low", "gap_vs_bicubic_high"]]
    assert low <= 0.75 <= high


def test_a_fold_that_did_not_train_recovers_nothing():
    config = with_overrides(load_config("imagenet-sample"), {"eval.bootstrap": 50})
    untrained = {"original": [1] * 8 + [0] * 2, "bilinear": [1] * 4 + [0] * 6, "bicubic": [1] * 4 + [0] * 6,
                 "esrgan": [1] * 4 + [0] * 6, "darionet": [1] * 4 + [0] * 6}
    pooled = crossval.pooled_estimate(config, _per_image(untrained, config.judge))
    assert pooled["gap_vs_bicubic"].iloc[0] == 0.0
    assert np.isnan(pooled["share_of_teacher_gain"].iloc[0])


def test_folds_must_exist(output_root):
    config = load_config("imagenet-sample", output_root=output_root)
    with pytest.raises(ValueError, match="do not exist"):
        crossval.cross_validate(config, only=[4])


def test_paired_comparison_counts_the_images_each_darionet_alone_gets_right():
    config = with_overrides(load_config("imagenet-sample"), {"eval.bootstrap": 200})
    base = {"original": [1] * 8 + [0] * 2, "bilinear": [1] * 4 + [0] * 6, "bicubic": [1] * 4 + [0] * 6,
            "esrgan": [1] * 5 + [0] * 5}
    ours = _per_image({**base, "darionet": [1] * 7 + [0] * 3}, "efficientnet_lite2")
    theirs = _per_image({**base, "darionet": [1] * 5 + [0] * 4 + [1]}, "efficientnet_lite2")
    # an image only the other profile scored, and a judge only it used, are left out
    extra = _per_image({**{m: [1] for m in base}, "darionet": [0]}, "efficientnet_lite2").assign(image="i99")
    other_judge = _per_image({**base, "darionet": [0] * 10}, "efficientnet_lite1")
    versus = crossval.paired_comparison(config, ours, pd.concat([theirs, extra, other_judge])).set_index("judge")
    assert list(versus.index) == ["efficientnet_lite2"]
    row = versus.loc["efficientnet_lite2"]
    assert row["n_images"] == 10 and row["role"] == "unseen judge"
    assert row["gap_vs_bicubic"] == pytest.approx(0.75) and row["gap_vs_bicubic_other"] == pytest.approx(0.5)
    assert row["gap_difference"] == pytest.approx(0.25)
    assert (row["mcnemar_this_only"], row["mcnemar_other_only"]) == (2, 1)
    assert row["gap_difference_low"] <= 0.25 <= row["gap_difference_high"]


def test_the_profile_compared_with_must_exist():
    with pytest.raises(ValueError, match="crossval.compare_with"):
        check_config(load_config("imagenet-sample", {"crossval.compare_with": "no-such-profile"}))
