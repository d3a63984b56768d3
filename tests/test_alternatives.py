"""Notebook 07's logic: WordNet super-categories, the dogs test, FLOP counts and the cost frontier,
and the classifier fine-tuned for small images (on the tiny set-up of test_train)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dario_utils.core.config import check_config, ConfigError, with_overrides
from dario_utils.data.dataset import manifest_dataset
from dario_utils.data.degrade import downsample, upsample
from dario_utils.evaluation import scorings
from dario_utils.evaluation.evaluate import evaluate
from dario_utils.models import load_teacher, TeacherWeightsError
from dario_utils.studies import classifier_route, costs, super_categories
from dario_utils.training import train

# the tiny training set-up of test_train (its fixtures are registered here by the import)
from test_train import image_rows, output_root, start_checkpoint, tiny_config  # noqa: F401

DOG, FISH, CAR = "n02085620", "n01440764", "n04285008"  # Chihuahua, tench, sports car


def test_every_class_has_one_of_twelve_groups() -> None:
    groups = super_categories.read_groups()
    assert len(groups) == 1000 and groups.index.is_unique
    assert len(set(groups)) == 12
    assert (groups[DOG], groups[FISH], groups[CAR]) == ("dogs", "fish, reptiles and amphibians", "vehicles")
    assert (groups == "dogs").sum() == 118  # ImageNet's 118 dog breeds, from WordNet's hypernyms


def _per_image(hits: dict[str, list[int]], wnids: list[str]) -> pd.DataFrame:
    rows = [{"image": f"img{i}", "wnid": wnid, "model": model, "top1": values[i]}
            for model, values in hits.items() for i, wnid in enumerate(wnids)]
    return pd.DataFrame(rows)


def test_group_table_pools_the_images_of_each_group_and_pairs_the_gains() -> None:
    wnids = [DOG, DOG, FISH, FISH, CAR]
    per_image = _per_image({"bicubic": [0, 1, 0, 0, 1], "darionet": [1, 1, 1, 0, 1], "esrgan": [0, 0, 0, 0, 1]},
                           wnids)
    table = super_categories.group_table(per_image, ["bicubic", "darionet"], n_boot=200, seed=0).set_index("group")
    assert list(table.index) == ["fish, reptiles and amphibians", "dogs", "vehicles", "all groups"]
    assert table.loc["dogs", "n_images"] == 2 and table.loc["all groups", "n_images"] == 5
    assert table.loc["dogs", "top1_bicubic"] == 0.5 and table.loc["dogs", "top1_darionet"] == 1.0
    assert table.loc["fish, reptiles and amphibians", "gain_darionet_vs_bicubic"] == 0.5
    assert table.loc["all groups", "gain_darionet_vs_esrgan"] == pytest.approx(0.6)
    low, high = table.loc["all groups", ["ci_low_darionet", "ci_high_darionet"]]
    assert low <= table.loc["all groups", "top1_darionet"] <= high


def test_dogs_test_tells_a_smaller_gain_on_dogs_from_an_equal_one() -> None:
    wnids = [DOG] * 20 + [CAR] * 20
    smaller = _per_image({"bicubic": [0] * 40, "darionet": [0] * 20 + [1] * 20}, wnids)
    test = super_categories.dogs_test(smaller, n_permutations=2000, seed=0)
    assert (test["gain_dogs"], test["gain_rest"], test["n_dogs"]) == (0.0, 1.0, 20)
    assert test["p_value"] < 0.001
    equal = _per_image({"bicubic": [0] * 40, "darionet": [1, 0] * 20}, wnids)
    assert super_categories.dogs_test(equal, n_permutations=2000, seed=0)["p_value"] > 0.3
    assert "not significantly smaller" in super_categories.dogs_answer(
        super_categories.dogs_test(equal, n_permutations=2000, seed=0), {"darionet": "DarioNet", "bicubic": "bicubic"})


def test_flops_of_a_convolution_are_counted_as_two_per_multiply_add() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    gflops = costs.gflops_per_image(conv, torch.zeros(1, 3, 10, 10))
    assert gflops == pytest.approx(2 * 8 * 3 * 9 * 100 / 1e9)
    assert costs.count_parameters((conv, conv)) == 8 * 3 * 9  # a network shared by two parts counts once


def test_cost_frontier_keeps_the_methods_nothing_cheaper_beats() -> None:
    points = pd.DataFrame({"gflops_per_image": [0.4, 0.4, 60.0, 60.0], "top1": [0.30, 0.42, 0.41, 0.45]})
    assert costs.frontier(points).tolist() == [False, True, False, True]


def test_cost_table_measures_every_route() -> None:
    conv = nn.Conv2d(3, 4, 3)
    route = costs.CostedRoute("conv", "a convolution", conv, (conv,))
    table = costs.cost_table([route], [torch.zeros(2, 3, 8, 8)] * 2)
    assert table.loc[0, "route"] == "conv" and table.loc[0, "images_per_s"] > 0
    assert table.loc[0, "parameters"] == 4 * 3 * 9 + 4


def _bicubic_logit_mse(config, weights=None, name=None) -> float:
    """Validation logit MSE of a classifier (default the teacher) on bicubic images to the frozen one on the originals."""
    dataset = manifest_dataset(config, "val")
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    teacher = load_teacher(name or config.teacher.name)
    classifier = load_teacher(name or config.teacher.name, weights=weights)
    with torch.no_grad():
        small = upsample(downsample(images, config.data.scale), images.shape[-1], "bicubic")
        return float(((classifier(small) - teacher(images)) ** 2).mean())


def test_fine_tuned_classifier_steps_through_the_mirrors_where_darionet_does(output_root, start_checkpoint,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Both routes get the same training images: with ``train.flipped_copies`` the classifier's
    epoch, like DarioNet's, holds every train image and its mirror."""
    config = tiny_config(start_checkpoint, output_root, **{"train.epochs": 1, "train.max_batches": None,
                                                           "train.crop": None, "train.flipped_copies": True})
    sizes: list[int] = []
    loader = classifier_route.train_loader

    def counting_loader(dataset, *args, **kwargs):
        sizes.append(len(dataset))
        return loader(dataset, *args, **kwargs)

    monkeypatch.setattr(classifier_route, "train_loader", counting_loader)
    classifier_route.finetune_classifier(config, progress=False)
    assert sizes == [2 * len(manifest_dataset(config, "train"))]


def test_fine_tuned_classifier_comes_closer_to_the_teacher_on_small_images(output_root, start_checkpoint) -> None:
    config = tiny_config(start_checkpoint, output_root, **{"train.epochs": 2, "train.max_batches": None,
                                                           "train.crop": None, "alternatives.classifier_lr": 1e-4})
    history = classifier_route.finetune_classifier(config, progress=False)
    assert history[["epoch", "phase"]].values.tolist() == [[1, "train"], [1, "val"], [2, "train"], [2, "val"]]
    path = config.layout.classifier_checkpoint
    before, after = _bicubic_logit_mse(config), _bicubic_logit_mse(config, weights=path)
    assert after < before, f"validation logit MSE on bicubic images {before:.4f} -> {after:.4f}"
    best = history[history["phase"] == "val"]["logit_mse"].min()
    assert after == pytest.approx(best, rel=1e-4)  # the kept weights are the best epoch's
    assert np.isfinite(history["logit_mse"]).all()


UNSEEN = "efficientnet_lite1"


def test_under_an_unseen_judge_route_b_is_that_judge_fine_tuned_by_its_own_logits(output_root, start_checkpoint) -> None:
    """Notebook 07's routes under a classifier DarioNet never trained against: the judge's own copy is
    fine-tuned towards the frozen judge (not the teacher), and scores the routes beside the frozen judge."""
    config = tiny_config(start_checkpoint, output_root, **{"train.epochs": 1, "train.max_batches": None,
                                                           "train.crop": None, "alternatives.classifier_lr": 1e-4,
                                                           "alternatives.unseen_judges": [UNSEEN]})
    train.finetune(config, progress=False)
    table = classifier_route.unseen_judge_routes(config, progress=False)
    assert table["judge"].tolist() == [UNSEEN] * len(classifier_route.ROUTES)
    assert table["route"].tolist() == [key for key, _, _ in classifier_route.ROUTES]
    path = config.layout.classifier_checkpoint_of(UNSEEN)
    assert not config.layout.classifier_checkpoint.exists()  # the teacher's copy is not this one
    with pytest.raises(TeacherWeightsError):  # the judge's weights, not the teacher's
        load_teacher(config.teacher.name, weights=path)
    before, after = _bicubic_logit_mse(config, name=UNSEEN), _bicubic_logit_mse(config, weights=path, name=UNSEEN)
    assert after < before, f"the judge's validation logit MSE on bicubic images {before:.4f} -> {after:.4f}"
    frozen = table.set_index("route")
    judged = evaluate(with_overrides(config, {"eval.judge": UNSEEN}), ["original", "darionet"],
                      progress=False, save=False).per_image.groupby("model")[["top1"]].mean()
    assert frozen.loc["original", "top1"] == pytest.approx(judged.loc["original", "top1"])
    assert frozen.loc["a", "top1"] == pytest.approx(judged.loc["darionet", "top1"])
    logged = scorings.read_scorings(config.layout.scorings_log)
    assert logged["judge"].tolist() == [UNSEEN]  # one scoring of the test split, by the unseen judge
    assert logged.iloc[-1]["top1"] == pytest.approx(judged.loc["darionet", "top1"])
    shown = config.layout.table("table3_routes_unseen_judges").with_suffix(".md").read_text()
    assert f"Judged by `{UNSEEN}`" in shown and classifier_route.tie_answer(table) in shown


def test_without_unseen_judges_the_routes_are_not_repeated(output_root, start_checkpoint) -> None:
    config = tiny_config(start_checkpoint, output_root, **{"alternatives.unseen_judges": []})
    assert classifier_route.unseen_judge_routes(config, progress=False) is None
    with pytest.raises(ConfigError, match="alternatives.unseen_judges"):
        check_config(with_overrides(config, {"alternatives.unseen_judges": [config.teacher.name]}))


def _routes(top1_a: float, top1_b: float, p_value: float, only_a: int, only_b: int) -> pd.DataFrame:
    return pd.DataFrame([{"route": "a", "top1": top1_a, "p_vs_a": np.nan, "right_vs_a": 0, "wrong_vs_a": 0},
                         {"route": "b", "top1": top1_b, "p_vs_a": p_value, "right_vs_a": only_b, "wrong_vs_a": only_a}])


def test_the_tie_answer_says_which_route_wins_only_where_mcnemar_does() -> None:
    assert classifier_route.tie_answer(_routes(0.70, 0.60, 0.01, 20, 5)) == (
        "(a) 0.700 against (b) 0.600: (a) is better (McNemar p = 0.01); 20 images only (a) gets right, 5 only (b)")
    assert "(b) is better" in classifier_route.tie_answer(_routes(0.60, 0.70, 0.01, 5, 20))
    assert "no significant difference (McNemar p = 0.5)" in classifier_route.tie_answer(_routes(0.70, 0.68, 0.5, 9, 6))
