"""Tests of notebook 06's logic (dario_utils.studies.beyond, figures 8-10, the runner's default run, the
recorded check) on CPU in seconds: 12 of the shipped demo thumbnails at 64 px, an RRDBNet with
nf 8, nb 2, gc 4 whose first block stays frozen, efficientnet_lite0 as the teacher and
efficientnet_lite2 as the unseen judge, one batch per epoch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dario_utils.core import paths
from dario_utils.core.config import BeyondConfig, Config, ConfigError, load_config, TrainConfig, with_overrides
from dario_utils.data import dataset
from dario_utils.evaluation import evaluate, scorings, tables
from dario_utils.figures import registry
from dario_utils.models import load_sr, RRDBNet, save_sr_checkpoint, study_models
from dario_utils.runner import execute, recorded, reproduce
from dario_utils.studies import beyond
from dario_utils.training import losses, train

DEMO_IMAGES = paths.PROJECT_ROOT / "data" / "imagenet-sample-128"
N_IMAGES = 12


def _tiny_study(root: Path, lr: float) -> tuple[Path, Config]:
    """Notebooks 01-04 of a tiny demo under ``root``, done at learning rate ``lr``: manifests, a
    fine-tuned DarioNet, Table 1."""
    images = root / "images"
    images.mkdir()
    for path in sorted(DEMO_IMAGES.glob("*.JPEG"))[::40][:N_IMAGES]:
        (images / path.name).symlink_to(path)
    torch.manual_seed(0)
    start = save_sr_checkpoint(root / "start.pt", RRDBNet(nf=8, nb=2, gc=4), {"stage": "test"})
    config = load_config("demo", {
        "data_root": str(images), "num_threads": 1, "data.image_size": 64,
        "data.fractions": {"train": 0.34, "val": 0.33, "test": 0.33}, "teacher.input_size": 64,
        "sr.nf": 8, "sr.nb": 2, "sr.gc": 4, "sr.pretrained": str(start), "train.frozen_blocks": 1,
        "train.batch_size": 4, "train.epochs": 2, "train.max_batches": 1, "train.lr": lr,
        "eval.batch_size": 4, "eval.bootstrap": 50, "beyond.scales": [0.25, 0.5],
        "beyond.loss_ablation": True, "beyond.ablation_epochs": 1, "beyond.ablation_temperatures": [2.0]},
        output_root=root / "out")
    dataset.write_manifests(config, dataset.make_split(config))
    train.finetune(config, progress=False)
    run = evaluate.evaluate(config, progress=False)
    tables.write_tables(config, run)
    return root / "out", config


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Config]:
    """A tiny demo's notebooks 01-04, done (learning rate 1e-3)."""
    return _tiny_study(tmp_path_factory.mktemp("beyond"), lr=1e-3)


@pytest.fixture
def in_study(study) -> Config:
    return study[1]


def test_judge_transfer_scores_every_model_under_both_judges(in_study: Config) -> None:
    table2 = beyond.judge_transfer(in_study, progress=False)
    assert list(table2["judge"].unique()) == ["efficientnet_lite0", "efficientnet_lite2"]
    assert list(table2["role"].unique()) == ["teacher", "unseen judge"]
    for role, rows in table2.groupby("role"):
        assert list(rows["model"]) == list(study_models.MODELS), role
        assert rows["n_images"].nunique() == 1
    table1 = pd.read_csv(in_study.layout.figures / "table1.csv").set_index("model")
    teacher = table2[table2["role"] == "teacher"].set_index("model")
    assert np.allclose(teacher["top1"], table1.loc[teacher.index, "top1"])
    assert set(table2.loc[table2["gap_recovered"].notna(), "model"]) <= {"darionet"}  # NaN where undefined
    unseen = table2[table2["role"] == "unseen judge"].set_index("model")
    assert (unseen.loc["original", "agreement"] == 1.0) and np.isinf(unseen.loc["original", "avg_psnr"])
    expected = tables.gap_closed(unseen.reset_index())
    found = beyond.gaps(table2)["unseen judge"]
    assert np.isnan(found) if expected is None else found == pytest.approx(expected)
    markdown = (in_study.layout.figures / "table2_judge_transfer.md").read_text()
    assert "top-1, efficientnet_lite2" in markdown and "DarioNet" in markdown and "esrgan" not in markdown
    logged = scorings.read_scorings(in_study.layout.scorings_log).iloc[-1]  # the unseen judge's scoring, on record
    assert (logged["judge"], logged["n_images"]) == ("efficientnet_lite2", unseen.loc["darionet", "n_images"])
    assert logged["top1"] == pytest.approx(unseen.loc["darionet", "top1"])


def test_judge_transfer_refuses_the_teacher_as_judge(in_study: Config) -> None:
    with pytest.raises(ValueError, match="is the teacher"):
        beyond.judge_transfer(with_overrides(in_study, {"beyond.judge": "efficientnet_lite0"}), progress=False)


@pytest.mark.parametrize("teacher, unseen, applies, holds", [
    (0.85, 0.80, True, True), (0.85, 0.60, True, False), (0.40, 0.10, False, None)])
def test_transfer_check_applies_only_where_the_teacher_recovers_enough(teacher, unseen, applies, holds) -> None:
    table2 = pd.DataFrame({"role": ["teacher", "unseen judge"], "model": ["darionet", "darionet"],
                           "gap_recovered": [teacher, unseen]})
    check = beyond.transfer_check(table2).iloc[0]
    assert check["applies"] == applies and check["holds"] == holds


def test_scale_sweep_scores_each_factor_with_its_own_head_cache(in_study: Config) -> None:
    sweep = beyond.scale_sweep(in_study, progress=False)
    assert sorted(sweep["scale"].unique()) == [0.25, 0.5]  # data.scale 0.32 is not in this profile's list
    for scale, rows in sweep.groupby("scale"):
        assert list(rows["model"]) == ["original", *beyond.SWEEP_MODELS]
        assert (rows["small_size"] == int(64 * scale)).all()
    assert sweep.groupby("model")["top1"].nunique()["original"] == 1  # the originals do not depend on the factor
    cached = {p.name for p in (in_study.layout.run / "cache").iterdir()}
    assert {"head-test-0.25.pt", "head-test-0.5.pt", "head-test-0.32.pt"} <= cached
    with_study = beyond.scale_sweep(with_overrides(in_study, {"beyond.scales": [0.32]}), progress=False)
    table1 = pd.read_csv(in_study.layout.figures / "table1.csv").set_index("model")
    at_study = with_study.set_index("model")
    assert np.allclose(at_study["top1"], table1.loc[at_study.index, "top1"])  # notebook 04's rows, reused


def test_loss_ablation_trains_each_loss_apart_from_the_study(in_study: Config) -> None:
    study_checkpoint = evaluate.darionet_checkpoint(in_study)
    before = study_checkpoint.read_bytes()
    ablation = beyond.loss_ablation(in_study, progress=False)
    assert list(ablation["loss"]) == ["mse", "kl_t2", "mse_l1", "mse_features"]
    assert (ablation["epochs"] == 1).all() and (ablation["best_epoch"] == 1).all()
    assert study_checkpoint.read_bytes() == before  # the study's DarioNet is left as it was
    weights = {key: load_sr(in_study.layout.beyond_results / f"loss-{key}" / train.BEST_FILE).state_dict()
               for key in ablation["loss"]}
    last = "conv_last.weight"
    assert not any(torch.equal(weights["mse"][last], weights[key][last]) for key in ("kl_t2", "mse_l1", "mse_features"))
    assert ablation["top1"].between(0, 1).all() and np.isfinite(ablation["avg_psnr"]).all()


def test_an_ablation_turned_off_trains_nothing_and_leaves_no_earlier_table(in_study: Config,
                                                                           capsys: pytest.CaptureFixture) -> None:
    for step in (beyond.judge_transfer, beyond.scale_sweep, beyond.loss_ablation):
        step(in_study, progress=False)
    registry.draw_figures(in_study.layout, "06")
    outputs = [in_study.layout.figures / name for name in (
        "loss_ablation.csv", "loss_ablation.md", "fig10_loss_ablation.png", "fig10_loss_ablation.pdf")]
    assert all(path.is_file() for path in outputs)
    off = with_overrides(in_study, {"beyond.loss_ablation": False})
    try:
        assert beyond.loss_ablation(off, progress=False) is None
        assert "the loss ablation is off" in capsys.readouterr().out
        assert not any(path.exists() for path in outputs[:2])
        drawn = {p.stem for p in registry.draw_figures(off.layout, "06")}
        assert drawn == {"fig8_judge_transfer", "fig9_scale_sweep"}
        assert not any(path.exists() for path in outputs)  # figure 10 follows its table
        assert "3. **The loss:** not compared" in beyond.answers(off.layout)
        assert not recorded.trained_margins(off.layout)["what"].str.contains("loss").any()
    finally:  # the other tests of this module find the ablation's table
        beyond.loss_ablation(in_study, progress=False)


def test_the_study_budget_reuses_the_study_run_for_logit_mse(in_study: Config) -> None:
    config = with_overrides(in_study, {"beyond.ablation_epochs": None, "beyond.ablation_temperatures": []})
    ablation = beyond.loss_ablation(config, progress=False)
    table1 = pd.read_csv(config.layout.figures / "table1.csv").set_index("model")
    mse = ablation.set_index("loss").loc["mse"]
    assert mse["epochs"] == config.train.epochs and mse["top1"] == pytest.approx(table1.loc["darionet", "top1"])


def test_beyond_figures_answers_and_the_recorded_check(in_study: Config, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    for step in (beyond.judge_transfer, beyond.scale_sweep, beyond.loss_ablation):
        step(in_study, progress=False)
    written = registry.draw_figures(in_study.layout, "06")
    beyond_figures = ("fig8_judge_transfer", "fig9_scale_sweep", "fig10_loss_ablation")
    assert [figure.name for figure in registry.of_notebook("06")] == list(beyond_figures)
    assert sorted(p.name for p in written) == sorted(f"{name}.{ext}" for ext in ("png", "pdf")
                                                     for name in beyond_figures)
    assert all(registry.FIGURES[name].caption for name in beyond_figures)
    first = {p.name: p.read_bytes() for p in written}
    assert {p.name: p.read_bytes() for p in registry.draw_figures(in_study.layout, "06")} == first
    text = beyond.answers(in_study.layout)
    assert "efficientnet_lite2" in text and "at 0.25 (16 px)" in text and "logit MSE" in text
    assert "the ablation is inconclusive" in text

    monkeypatch.setattr(recorded, "RECORD_FILE", tmp_path / "recorded.json")
    monkeypatch.setattr(recorded, "_results", lambda profile: {"table1": {}, "best_val": {}})
    recorded.record(in_study.layout)
    saved = json.loads(recorded.RECORD_FILE.read_text())["beyond"]
    assert set(saved) == {"unseen judge", "factor 0.25", "factor 0.5", "loss mse", "loss kl_t2", "loss mse_l1",
                          "loss mse_features"}
    assert recorded.compare(in_study.layout)["ok"].all()
    saved["loss mse"]["top1"] += 0.2
    recorded.RECORD_FILE.write_text(json.dumps({"profile": in_study.profile, "table1": {}, "best_val": {},
                                                "beyond": saved}))
    frame = recorded.compare(in_study.layout)
    assert list(frame.loc[~frame["ok"], "what"]) == ["06, DarioNet, loss mse"]


TRAINED_ROWS = ["Table 1, DarioNet", "best validation epoch", "06, DarioNet, unseen judge", "06, DarioNet, factor 0.25",
                "06, DarioNet, factor 0.5", "06, DarioNet, loss mse", "06, DarioNet, loss kl_t2", "06, DarioNet, loss mse_l1",
                "06, DarioNet, loss mse_features"]


def test_trained_margins_name_every_trained_row(in_study: Config) -> None:
    if not in_study.layout.figures.joinpath("loss_ablation.csv").is_file():
        for step in (beyond.judge_transfer, beyond.scale_sweep, beyond.loss_ablation):
            step(in_study, progress=False)
    frame = recorded.trained_margins(in_study.layout)
    assert list(frame["what"].unique()) == TRAINED_ROWS and (frame["floor"] > 0).all()


def test_a_darionet_that_did_not_train_fails_every_trained_row(tmp_path: Path) -> None:
    """Planted regression A: ``train.lr: 0``, so DarioNet and every loss of the ablation stay their start."""
    _, config = _tiny_study(tmp_path, lr=0.0)
    for step in (beyond.judge_transfer, beyond.scale_sweep, beyond.loss_ablation):
        step(config, progress=False)
    frame = recorded.trained_margins(config.layout)
    assert list(frame["what"].unique()) == TRAINED_ROWS
    assert (frame["margin"].abs() < 1e-9).all() and not frame["ok"].any(), frame.to_string()


def test_beyond_needs_the_study_first(output_root: Path) -> None:
    config = load_config("demo", output_root=output_root)
    with pytest.raises(evaluate.MissingCheckpointError, match="run notebooks 01-05 first"):
        beyond.judge_transfer(config, progress=False)


def test_the_ablation_runs_every_registered_loss_in_order() -> None:
    variants = [(v.key, v.label, v.overrides) for v in losses.ablation_variants(BeyondConfig())]
    assert variants == [
        ("mse", "logit MSE (report)", {}),
        ("kl_t2", "KL, T = 2", {"train.loss": "kl", "train.temperature": 2.0}),
        ("kl_t4", "KL, T = 4", {"train.loss": "kl", "train.temperature": 4.0}),
        ("mse_l1", "logit MSE + 10 × L1", {"train.l1_weight": 10.0}),
        ("mse_features", "logit MSE + 1 × features", {"train.feature_weight": 1.0}),
    ]


def test_distillation_adds_the_weighted_terms_in_order_and_removes_its_tap() -> None:
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    x, recon = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    train = TrainConfig(loss="kl", temperature=2.0, l1_weight=3.0, feature_weight=0.5)
    with losses.Distillation(teacher, train) as loss:
        reference, reference_features, extra_references = loss.reference(x)
        value, logits = loss(recon, x, reference, reference_features, extra_references)
        features = loss.tap.features
    assert extra_references == []
    expected = losses.logit_loss(teacher(recon).float(), teacher(x).float(), train)
    expected = expected + 3.0 * losses.pixel_l1(recon, x)
    expected = expected + 0.5 * losses.feature_loss(features, reference_features)
    assert torch.equal(value, expected) and torch.equal(logits, teacher(recon).float())
    assert not teacher[1]._forward_pre_hooks  # the tap is off after the run
    with losses.Distillation(teacher, TrainConfig()) as plain:
        assert plain.tap is None and plain.terms == []


def test_extra_teachers_average_their_logit_losses_with_the_teacher_s() -> None:
    """Beyond the report (issue 32): ``train.extra_teachers`` make the logit loss the mean over every
    teacher; the terms are added after, as with one teacher."""
    torch.manual_seed(0)
    teachers = [torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
                for _ in range(3)]
    x, recon = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    train = TrainConfig(l1_weight=2.0, extra_teachers=["second", "third"])
    with losses.Distillation(teachers[0], train, teachers[1:]) as loss:
        reference, reference_features, extra_references = loss.reference(x)
        value, logits = loss(recon, x, reference, reference_features, extra_references)
    each = [losses.logit_loss(t(recon).float(), t(x).float(), train) for t in teachers]
    assert torch.allclose(value, (each[0] + each[1] + each[2]) / 3 + 2.0 * losses.pixel_l1(recon, x))
    assert torch.equal(logits, teachers[0](recon).float()) and len(extra_references) == 2
    with pytest.raises(ValueError):  # a reference missing for an extra teacher
        loss(recon, x, reference, reference_features, extra_references[:1])


def test_logit_losses() -> None:
    torch.manual_seed(0)
    logits, reference = torch.randn(4, 10), torch.randn(4, 10)
    assert losses.logit_loss(logits, reference) == pytest.approx(((logits - reference) ** 2).mean().item())
    assert losses.logit_loss(reference, reference, TrainConfig(loss="kl", temperature=2.0)).item() == pytest.approx(
        0.0, abs=1e-6)
    p, q = torch.softmax(reference / 4, 1), torch.softmax(logits / 4, 1)
    expected = 16 * (p * (p.log() - q.log())).sum(1).mean()
    assert losses.logit_loss(logits, reference, TrainConfig(loss="kl", temperature=4.0)).item() == pytest.approx(
        expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="train.loss"):
        losses.logit_loss(logits, reference, TrainConfig(loss="hinge"))


def test_demo_default_run_leaves_06_and_07_out_and_says_so() -> None:
    assert execute.default_notebooks(load_config("demo")) == ["01", "02", "03", "04", "05"]
    assert execute.default_notebooks(load_config("imagenet-sample")) is None
    assert [nb.name[:2] for nb in execute.notebooks()] == ["01", "02", "03", "04", "05", "06", "07"]
    assert reproduce.main(["--profile", "demo", "--only", "01", "--all"]) == 2


def test_with_overrides_checks_types() -> None:
    config = load_config("demo")
    assert with_overrides(config, {"data.scale": 0.5}).small_size == 64 and config.small_size == 40
    with pytest.raises(ConfigError, match="beyond.ablation_epochs"):
        with_overrides(config, {"beyond.ablation_epochs": "two"})


def test_scale_sweep_can_train_a_darionet_at_each_factor(in_study: Config) -> None:
    config = with_overrides(in_study, {"beyond.scales": [0.25, 0.32], "beyond.train_per_scale": True})
    sweep = beyond.scale_sweep(config, progress=False).set_index(["scale", "model"])
    assert sweep.loc[(0.32, "darionet_at_scale"), "top1"] == sweep.loc[(0.32, "darionet"), "top1"]  # the study's
    assert (config.layout.beyond_results / "train-scale-0.25" / train.BEST_FILE).is_file()
    assert sweep.loc[(0.25, "darionet_at_scale"), "name"] == "DarioNet trained at this factor"
    assert "head-train-0.25.pt" in {p.name for p in (config.layout.run / "cache").iterdir()}
