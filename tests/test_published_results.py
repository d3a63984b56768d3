"""The committed results of every profile (``figures/<profile>/``), checked without training:
the stated gap, Table 1 against its per-class files, DarioNet's margin over its own start and the
provenance's recipe (:mod:`dario_utils.runner.published`). A doctored table fails."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from dario_utils.core import paths
from dario_utils.core.config import load_config
from dario_utils.runner import published

PROFILES = sorted(p.name for p in (paths.PROJECT_ROOT / "figures").iterdir()
                  if (p / "table1.csv").is_file() and paths.profile_file(p.name).is_file())


def test_every_published_profile_is_checked():
    assert {"demo", "imagenet-sample"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_published_results_hold(profile):
    config = load_config(profile)
    checks = published.published_checks(config, paths.PROJECT_ROOT / "figures" / profile)
    assert checks["ok"].all(), "checks that fail:\n" + checks[~checks["ok"]].to_string()


def _doctored(tmp_path, profile: str, edit) -> pd.DataFrame:
    folder = tmp_path / profile
    shutil.copytree(paths.PROJECT_ROOT / "figures" / profile, folder)
    table = pd.read_csv(folder / "table1.csv")
    edit(table)
    table.to_csv(folder / "table1.csv", index=False)
    return published.published_checks(load_config(profile), folder)


@pytest.mark.parametrize("profile", ["demo", "imagenet-sample"])
def test_a_table_doctored_so_darionet_equals_its_start_fails(tmp_path, profile):
    def untrained(table):
        columns = ["avg_ce", "avg_psnr", "top1", "agreement"]
        table.loc[table["model"] == "darionet", columns] = table.loc[table["model"] == "esrgan", columns].to_numpy()

    checks = _doctored(tmp_path, profile, untrained).set_index("check")
    failed = set(checks.index[~checks["ok"]])
    assert "darionet: Table 1's top-1 = its per-class file's" in failed
    assert any(name.startswith("DarioNet beats its start") for name in failed)
    assert "stated gap vs bicubic = Table 1's rows" in failed


def test_a_gap_stated_by_hand_fails(tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(paths.PROJECT_ROOT / "figures" / "demo", folder)
    markdown = (folder / "table1.md").read_text()
    stated = published.stated_gaps(markdown)["bicubic"]
    (folder / "table1.md").write_text(markdown.replace(f"recovers {100 * stated:.1f}%", f"recovers {100 * stated + 5:.1f}%"))
    checks = published.published_checks(load_config("demo"), folder).set_index("check")
    assert not checks.loc["stated gap vs bicubic = Table 1's rows", "ok"]


def test_provenance_of_another_recipe_fails(tmp_path):
    import json

    folder = tmp_path / "demo"
    shutil.copytree(paths.PROJECT_ROOT / "figures" / "demo", folder)
    provenance = json.loads((folder / "provenance.json").read_text())
    provenance["recipe"] = "0" * 12
    (folder / "provenance.json").write_text(json.dumps(provenance))
    checks = published.published_checks(load_config("demo"), folder).set_index("check")
    assert not checks.loc["provenance names the profile's recipe", "ok"]


@pytest.mark.parametrize("profile", ["demo", "imagenet-sample"])
def test_a_table_with_half_the_training_effect_fails(tmp_path, profile):
    """DarioNet halfway between its start and the published DarioNet (half the training effect) fails
    Table 1's margin floors, however its per-class files are made to agree."""
    def halved(table):
        columns = ["avg_ce", "top1", "agreement"]
        dario, start = table["model"] == "darionet", table["model"] == "esrgan"
        table.loc[dario, columns] = (table.loc[dario, columns].to_numpy() + table.loc[start, columns].to_numpy()) / 2

    checks = _doctored(tmp_path, profile, halved)
    floors = checks[checks["check"].str.startswith("DarioNet beats its start")]
    assert not floors["ok"].any(), floors.to_string()


def test_a_seed_run_that_disagrees_with_the_table_it_names_fails(tmp_path):
    folder = tmp_path / "imagenet-sample"
    shutil.copytree(paths.PROJECT_ROOT / "figures" / "imagenet-sample", folder)
    runs = pd.read_csv(folder / published.SEED_RUNS)
    named = published.seed_run_checks(folder, paths.PROJECT_ROOT)
    assert named and all(check["ok"] for check in named)
    runs.loc[runs["model"] == "darionet", "top1"] += 0.01
    runs.to_csv(folder / published.SEED_RUNS, index=False)
    assert not any(check["ok"] for check in published.seed_run_checks(folder, paths.PROJECT_ROOT)
                   if "darionet" in check["check"])


def test_a_variant_that_disagrees_with_the_files_it_names_fails(tmp_path):
    folder = tmp_path / "imagenet-sample"
    shutil.copytree(paths.PROJECT_ROOT / "figures" / "imagenet-sample", folder)
    named = published.variant_checks(folder, paths.PROJECT_ROOT)
    assert named and all(check["ok"] for check in named)
    variants = pd.read_csv(folder / published.VARIANTS, dtype=str, keep_default_na=False)
    now = variants["profile"] == "imagenet-sample"
    variants.loc[now, "test_top1"] = variants.loc[now, "test_top1"].map(lambda v: f"{float(v) + 0.002:.3f}")
    variants.loc[now & (variants["epochs"] != "0"), "val_loss"] = "0.001"
    variants.to_csv(folder / published.VARIANTS, index=False)
    checks = published.variant_checks(folder, paths.PROJECT_ROOT)
    assert {"history.csv", "table1.csv"} <= {check["check"].rsplit("/", 1)[1] for check in checks}
    assert not any(check["ok"] for check in checks if check["check"].startswith("variants log, imagenet-sample ("))


CROSSVALIDATED = sorted(p.name for p in (paths.PROJECT_ROOT / "figures").iterdir()
                        if (p / "crossval" / "crossval.csv").is_file() and paths.profile_file(p.name).is_file())


def test_the_headline_cross_validation_is_checked():
    assert "imagenet-sample" in CROSSVALIDATED


@pytest.mark.parametrize("profile", CROSSVALIDATED)
def test_published_cross_validations_hold(profile):
    checks = published.crossval_checks(load_config(profile))
    assert checks["ok"].all(), "checks that fail:\n" + checks[~checks["ok"]].to_string()


def _doctored_crossval(tmp_path, profile: str, file: str, edit) -> pd.DataFrame:
    """The crossval checks of ``profile`` (and the profiles it is compared with) copied under ``tmp_path``, with
    ``file`` of its crossval folder edited."""
    config = load_config(profile, output_root=tmp_path)
    names = [profile] + ([config.crossval.compare_with] if config.crossval.compare_with else [])
    for name in names:
        shutil.copytree(paths.PROJECT_ROOT / "figures" / name / "crossval", tmp_path / "figures" / name / "crossval")
    path = tmp_path / "figures" / profile / "crossval" / file
    table = pd.read_csv(path)
    edit(table)
    table.to_csv(path, index=False)
    return published.crossval_checks(config).set_index("check")


def test_a_doctored_pooled_estimate_fails(tmp_path):
    def inflated(table):
        table.loc[0, "gap_vs_bicubic"] += 0.01

    checks = _doctored_crossval(tmp_path, "imagenet-sample", "crossval.csv", inflated)
    assert not checks["ok"].all()
    assert not checks.loc["cross-validation, efficientnet_lite0, gap_vs_bicubic = the folds' per-image results", "ok"]


COMPARED = [p for p in CROSSVALIDATED if load_config(p).crossval.compare_with]


@pytest.mark.parametrize("profile", COMPARED)
def test_a_doctored_comparison_fails(tmp_path, profile):
    def reversed_counts(table):
        table["mcnemar_this_only"], table["mcnemar_other_only"] = table["mcnemar_other_only"], table["mcnemar_this_only"] + 1

    config = load_config(profile)
    checks = _doctored_crossval(tmp_path, profile, f"versus_{config.crossval.compare_with}.csv", reversed_counts)
    failed = checks.index[~checks["ok"]]
    assert any("mcnemar_this_only" in name for name in failed)
