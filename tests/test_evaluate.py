"""Tests of dario_utils.evaluation.evaluate without training: a tiny sample-folder profile (64 px) on
real ImageNet JPEGs judged by efficientnet_lite0, and the paper profile's path on a
miniature ILSVRC2012 tree with a randomly initialised ResNet-50."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dario_utils.core import metrics, paths, result_files, runtime
from dario_utils.core.config import ConfigError, load_config
from dario_utils.core.paths import RunLayout
from dario_utils.data import dataset
from dario_utils.data.degrade import downsample, reconstruct, upsample
from dario_utils.evaluation import evaluate, tables
from dario_utils.figures import style
from dario_utils.models import RRDBNet, save_sr_checkpoint, study_models

BASELINES = ["original", "bilinear", "bicubic"]
N_SAMPLE = 10  # images linked from the shared sample folder
FRACTIONS = {"train": 0.2, "val": 0.2, "test": 0.6}  # 2 / 2 / 6 of 10
TINY = {"data.image_size": 64, "data.fractions": FRACTIONS, "eval.batch_size": 4, "eval.bootstrap": 200,
        "num_threads": 1}


@pytest.fixture
def sample_root(tmp_path: Path, sample_dir: Path) -> Path:
    """A folder of links to a handful of the shared real ImageNet JPEGs (nothing copied)."""
    root = tmp_path / "sample"
    root.mkdir()
    for path in sorted(sample_dir.iterdir())[::50][:N_SAMPLE]:
        (root / path.name).symlink_to(path)
    return root


@pytest.fixture
def sample_config(sample_root: Path, output_root: Path):
    config = load_config("imagenet-sample", {"data_root": str(sample_root), **TINY}, output_root=output_root)
    dataset.write_manifests(config, dataset.make_split(config))
    return config


@pytest.fixture
def baseline_run(sample_config):
    return evaluate.evaluate(sample_config, BASELINES, progress=False)


def test_baseline_results(sample_config, baseline_run):
    per_image = baseline_run.per_image
    test_manifest, _ = dataset.read_manifest(sample_config.layout, "test")
    n = len(test_manifest)
    assert n == round(N_SAMPLE * 0.6)
    assert len(per_image) == n * len(BASELINES)
    assert list(per_image["model"].unique()) == BASELINES
    for model, group in per_image.groupby("model"):
        assert sorted(group["image"]) == sorted(test_manifest["path"]), model
        assert (group["label"].to_numpy() == test_manifest.set_index("path").loc[group["image"], "label"].to_numpy()).all()
    original = per_image[per_image["model"] == "original"]
    assert (original["psnr"] == math.inf).all()
    assert (original["agree"] == 1).all() and (original["logit_mse"] == 0).all()
    assert (original["ssim"] > 0.999).all()
    upscaled = per_image[per_image["model"] != "original"]
    assert upscaled["psnr"].between(10, 60).all() and (upscaled["logit_mse"] > 0).all()
    assert set(per_image["top1"]) <= {0, 1} and (per_image["top5"] >= per_image["top1"]).all()
    # what was returned is what was written
    written = result_files.read_results(sample_config)
    pd.testing.assert_frame_equal(written.per_image, per_image, check_dtype=False)
    assert list(written.summary["model"]) == BASELINES
    assert (written.summary["n_images"] == n).all()


def test_table1_and_markdown(sample_config, baseline_run):
    table = tables.table1(sample_config, baseline_run)
    assert list(table["model"]) == BASELINES
    assert list(table["name"]) == [study_models.display_name(m) for m in BASELINES]
    assert list(table["row"]) == ["1", "2", "2b"]
    assert list(table.columns) == tables.TABLE_COLUMNS  # no report_* columns outside the paper profile
    assert table["top1"].between(0, 1).all() and table["top5"].between(0, 1).all()
    assert (table["top1_ci_low"] <= table["top1"]).all() and (table["top1"] <= table["top1_ci_high"]).all()
    assert table.set_index("model").loc["original", "avg_psnr"] == math.inf
    assert table.set_index("model").loc["original", "agreement"] == 1.0
    assert "64 px" in table["description"].iloc[0] and "20 px" in table["description"].iloc[1]

    again = tables.table1(sample_config, result_files.read_results(sample_config))
    pd.testing.assert_frame_equal(again[["top1_ci_low", "top1_ci_high"]], table[["top1_ci_low", "top1_ci_high"]])

    tests = tables.mcnemar_tests(baseline_run)
    assert tests.empty
    md = tables.table_markdown(sample_config, table, tests)
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "2", "2b"]
    original_row = [cell.strip() for cell in rows[0].split("|")]
    assert original_row[2:4] == ["original", "the 64 px image"] and original_row[5] == "inf"
    assert "Row 4 (DarioNet) is absent" in md
    assert "nan" not in md.lower() and "n/a" not in md
    assert f"{len(baseline_run.per_image) // 3} images" in md
    assert "| row | model | description | avg CE |" in md and "time (s)" in md
    assert "time (s)" not in tables.table_markdown(sample_config, table, tests, timing=False)


def test_markdown_table_formats_floats_and_keeps_other_cells():
    frame = pd.DataFrame({"model": ["a", "b"], "top-1": [0.12345, float("nan")], "PSNR": [float("inf"), 22.0],
                          "epoch": [1, 2]})
    assert tables.markdown_table(frame) == ("| model | top-1 | PSNR | epoch |\n|---|---|---|---|\n"
                                            "| a | 0.123 | inf | 1 |\n| b | n/a | 22.000 | 2 |\n")
    assert "| a | 0.12 |" in tables.markdown_table(frame, digits=2)


def test_bootstrap_interval_is_reproducible(sample_config, baseline_run):
    first = tables.table1(sample_config, baseline_run)
    rerun = evaluate.evaluate(sample_config, ["original", "bicubic"], progress=False)
    second = tables.table1(sample_config, rerun)
    exact = ["model", "top1", "top1_ci_low", "top1_ci_high", "top5", "agreement", "n_images"]
    pd.testing.assert_frame_equal(first[exact].reset_index(drop=True), second[exact].reset_index(drop=True))
    # per-image metrics are float32 in memory and float64 once re-read from the CSV: equal to 1e-6
    close = ["avg_ce", "avg_psnr", "avg_ssim", "logit_mse"]
    pd.testing.assert_frame_equal(first[close].reset_index(drop=True), second[close].reset_index(drop=True),
                                  check_dtype=False, rtol=1e-6)
    # the rerun replaced its models' rows and kept bilinear's
    assert len(rerun.per_image) == len(baseline_run.per_image)


def _hits_run(original: list[int], bicubic: list[int], darionet: list[int]) -> result_files.EvalRun:
    """An evaluation run holding only per-image top-1 hits of three models."""
    rows = [{"image": f"img{i}", "model": model, "top1": hit}
            for model, hits in (("original", original), ("bicubic", bicubic), ("darionet", darionet))
            for i, hit in enumerate(hits)]
    return result_files.EvalRun(pd.DataFrame(rows), pd.DataFrame())


def test_gap_closed_interval_brackets_the_gap_and_pairs_the_images(sample_config):
    original = [1] * 30 + [0] * 10
    bicubic = [1] * 10 + [0] * 30
    recovers_all = _hits_run(original, bicubic, original)
    assert tables.gap_closed_interval(sample_config, recovers_all) == (1.0, 1.0)
    recovers_none = _hits_run(original, bicubic, bicubic)
    assert tables.gap_closed_interval(sample_config, recovers_none) == (0.0, 0.0)
    half = _hits_run(original, bicubic, [1] * 20 + [0] * 20)
    low, high = tables.gap_closed_interval(sample_config, half)
    assert low < 0.5 < high and high - low < 0.6
    assert tables.gap_closed_interval(sample_config, _hits_run(original, bicubic, [])) is None


def test_write_tables(sample_config, baseline_run):
    written = tables.write_tables(sample_config, baseline_run)
    folder = sample_config.layout.figures
    assert folder.is_relative_to(sample_config.output_root)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["table1.csv", "table1.md", "mcnemar.csv"]
                           + [f"per_class_{m}.csv" for m in BASELINES])
    assert all(Path(p).parent == folder for p in written.values())
    table = pd.read_csv(folder / "table1.csv", dtype={"row": str})
    assert list(table["model"]) == BASELINES and list(table.columns) == tables.TABLE_COLUMNS
    assert table.loc[0, "avg_psnr"] == math.inf
    assert (folder / "table1.md").read_text() == tables.table_markdown(
        sample_config, tables.table1(sample_config, baseline_run), tables.mcnemar_tests(baseline_run))
    per_class = pd.read_csv(folder / "per_class_original.csv")
    assert len(per_class) > 0


def test_darionet_without_checkpoint(sample_config):
    with pytest.raises(evaluate.MissingCheckpointError) as err:
        evaluate.evaluate(sample_config, ["original", "darionet"], progress=False)
    message = str(err.value)
    assert "notebook 03" in message and str(evaluate.darionet_checkpoint(sample_config)) in message
    assert not sample_config.layout.results.exists()  # nothing half-written


def test_unknown_model_is_config_error(sample_config):
    with pytest.raises(ConfigError, match="nearest"):
        evaluate.evaluate(sample_config, ["original", "nearest"], progress=False)


# ---------------------------------------------------------------- CLI


@pytest.fixture
def tiny_profile(tmp_path: Path, sample_root: Path, output_root: Path) -> Path:
    """A profile file for the CLI (which has no --image-size): imagenet-sample at 64 px."""
    raw = yaml.safe_load(paths.profile_file("imagenet-sample").read_text())
    raw["profile"] = "tiny-sample"
    raw["num_threads"] = 1
    raw["data"].update(image_size=64, fractions=FRACTIONS)
    raw["eval"].update(batch_size=4, bootstrap=200)
    path = tmp_path / "tiny-sample.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, {"data_root": str(sample_root)}, output_root=output_root)
    dataset.write_manifests(config, dataset.make_split(config))
    return path


def _cli_json(tiny_profile: Path, sample_root: Path, tmp_path: Path, capsys) -> str:
    out = tmp_path / "metrics.json"
    code = evaluate.main(["--profile", str(tiny_profile), "--data-root", str(sample_root),
                          "--models", "original,bicubic", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| 1 |" in captured.out and "| 2b |" in captured.out
    return out.read_text()


def test_cli_writes_json_per_model(tiny_profile: Path, sample_root: Path, tmp_path: Path, output_root: Path, capsys):
    text = _cli_json(tiny_profile, sample_root, tmp_path, capsys)
    records = json.loads(text)  # Python's lenient parser
    assert list(records) == ["original", "bicubic"]
    for model, values in records.items():
        assert set(values) == set(tables.TABLE_COLUMNS) - {"model"}, model
        assert 0 <= values["top1"] <= 1
    assert records["original"]["n_images"] == round(N_SAMPLE * 0.6)
    table = pd.read_csv(RunLayout("tiny-sample", output_root).table("table1"))
    assert records["bicubic"]["top1"] == pytest.approx(table.set_index("model").loc["bicubic", "top1"])


def test_cli_json_is_strict_json(tiny_profile: Path, sample_root: Path, tmp_path: Path, capsys):
    text = _cli_json(tiny_profile, sample_root, tmp_path, capsys)

    def reject(token: str):
        raise ValueError(f"not valid JSON: {token}")

    records = json.loads(text, parse_constant=reject)
    assert records["original"]["avg_psnr"] in (None, "inf")


def test_cli_errors_exit_2(tmp_path: Path, output_root: Path, capsys):
    assert evaluate.main(["--profile", "no-such-profile"]) == 2
    assert "no-such-profile" in capsys.readouterr().err
    # no manifests yet: points at notebook 01
    assert evaluate.main(["--profile", "imagenet-sample", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "notebook 01" in err and "--only 01" in err


# ---------------------------------------------------------------- paper profile path


def test_paper_profile_on_miniature_ilsvrc(tmp_path: Path, make_ilsvrc_tree, output_root: Path):
    root, _ = make_ilsvrc_tree(tmp_path / "ilsvrc", "loc")
    config = load_config("paper", {"data_root": str(root), "device": "cpu", "teacher.weights": "random",
                                   "data.image_size": 64, "data.num_workers": 0, "eval.batch_size": 4,
                                   "eval.bootstrap": 100, "num_threads": 1}, output_root=output_root)
    frames = dataset.make_split(config)
    dataset.write_manifests(config, frames)
    run = evaluate.evaluate(config, ["original", "bicubic"], progress=False)
    assert len(run.per_image) == 2 * len(frames["test"]) == 2 * 6
    assert set(run.per_image["judge"]) == {"resnet50"}
    table = tables.table1(config, run)
    report = ["report_avg_ce", "report_avg_psnr", "report_top1", "report_minutes"]
    assert list(table.columns) == tables.TABLE_COLUMNS + report
    by_model = table.set_index("model")
    assert by_model.loc["original", "report_top1"] == 0.7676
    assert by_model.loc["original", "report_avg_psnr"] == math.inf
    assert by_model[report].loc["bicubic"].isna().all()  # the report had bilinear, not bicubic
    md = tables.table_markdown(config, table, tables.mcnemar_tests(run))
    assert "Report's Table 1 (top-1): original 0.7676" in md
    written = tables.write_tables(config, run)
    assert Path(written["table1_csv"]).parent == output_root / "runs" / "paper" / "figures"


# ---------------------------------------------------------------- unreadable test images


def _break_one_test_image(config, sample_root: Path) -> str:
    """Replace the link to one test image by a truncated copy; return its manifest path."""
    test_manifest, _ = dataset.read_manifest(config.layout, "test")
    name = test_manifest["path"].iloc[1]
    blob = (sample_root / name).read_bytes()
    (sample_root / name).unlink()
    (sample_root / name).write_bytes(blob[: len(blob) // 4])
    return name


def test_unreadable_test_image_stops_the_cli_naming_it(sample_root: Path, tiny_profile: Path, output_root: Path,
                                                       capsys):
    config = load_config(tiny_profile, {"data_root": str(sample_root)}, output_root=output_root)
    name = _break_one_test_image(config, sample_root)
    code = evaluate.main(["--profile", str(tiny_profile), "--models", "original,bicubic"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # tqdm also writes to stderr
    assert len(errors) == 1 and str(sample_root / name) in errors[0]
    assert not config.layout.results.exists()  # nothing half-written


def test_skip_unreadable_counts_the_skipped_image(sample_root: Path, tiny_profile: Path, output_root: Path, capsys):
    config = load_config(tiny_profile, {"data_root": str(sample_root), "data.skip_unreadable": True},
                         output_root=output_root)
    name = _break_one_test_image(config, sample_root)
    run = evaluate.evaluate(config, ["original", "bicubic"], progress=False)
    n = round(N_SAMPLE * 0.6)
    assert len(run.per_image) == 2 * (n - 1) and name not in set(run.per_image["image"])
    assert (run.summary["skipped"] == 1).all() and (run.summary["n_images"] == n - 1).all()
    assert name in capsys.readouterr().err
    table = tables.table1(config, run)
    assert (table["skipped"] == 1).all()
    assert "1 unreadable image(s) were skipped" in tables.table_markdown(config, table,
                                                                           tables.mcnemar_tests(run))


# ---------------------------------------------------------------- display names


def _five_model_run(n: int = 40) -> result_files.EvalRun:
    """Synthetic results of all five models on ``n`` images of 5 classes (no network runs)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, n)
    frames = []
    for i, model in enumerate(study_models.MODELS):
        hits = (rng.random(n) < 0.9 - 0.1 * i).astype(int)
        frames.append(pd.DataFrame({
            "image": [f"img_{j:03d}.JPEG" for j in range(n)], "wnid": "n01440764", "label": labels, "model": model,
            "judge": "efficientnet_lite0", "prediction": np.where(hits, labels, labels + 5), "top1": hits, "top5": 1,
            "agree": hits, "ce": rng.random(n), "logit_mse": rng.random(n),
            "psnr": math.inf if model == "original" else 25.0, "ssim": 0.8}))
    summary = pd.DataFrame({"model": list(study_models.MODELS), "split": "test", "judge": "efficientnet_lite0",
                            "n_images": n, "skipped": 0, "seconds": 2.0, "images_per_s": n / 2.0})
    return result_files.EvalRun(pd.concat(frames, ignore_index=True), summary)


@pytest.mark.parametrize("profile", ["demo", "imagenet-sample", "paper"])
def test_human_facing_outputs_show_display_names(profile: str, output_root: Path):
    config = load_config(profile, output_root=output_root)
    run = _five_model_run()
    table = tables.table1(config, run)
    written = tables.write_tables(config, run)
    md, mcnemar = Path(written["table1_md"]).read_text(), Path(written["mcnemar"]).read_text()
    speed = runtime.speed_report(table, ["name"])
    names = ["original", "bilinear", "bicubic", "pretrained SR", "DarioNet"]
    for text in (md, mcnemar, speed):
        assert not re.search(r"\besrgan\b", text, re.IGNORECASE), text  # "realesrgan-x4plus" names weights
    lines = md.splitlines()
    assert lines[0] == ("| row | model | description | avg CE | avg PSNR (dB) | top-1 | top-1 95% CI | top-5 "
                        "| agreement | SSIM | time (s) | images/s |")
    assert [line.split("|")[2].strip() for line in lines[2:7]] == names
    assert f"SR net ({config.sr_start}) on the {config.small_size} px image" in lines[5]
    assert ("- McNemar DarioNet vs pretrained SR: DarioNet alone right on " in md
            and "pretrained SR alone on " in md)
    assert list(pd.read_csv(written["mcnemar"])["baseline"]) == names[:4]
    assert [line.split(":")[0] for line in speed.splitlines()] == names
    if profile == "paper":
        assert "Report's Table 1 (top-1): original 0.7676, bilinear 0.5446, pretrained SR 0.6063, DarioNet 0.7275" in md
    # internal keys stay in the CSV's model column and in file names
    assert list(pd.read_csv(written["table1_csv"])["model"]) == list(study_models.MODELS)
    assert Path(written["per_class_esrgan"]).name == "per_class_esrgan.csv"


def test_registry_names_every_model_once():
    models = study_models.STUDY_MODELS
    assert study_models.MODELS == ("original", "bilinear", "bicubic", "esrgan", "darionet")  # result files' keys
    assert study_models.BASELINES == study_models.MODELS[:4]
    assert [m.row for m in models] == ["1", "2", "2b", "3", "4"]
    assert len({m.name for m in models}) == len({m.colour for m in models}) == len(models)
    assert not [m for m in models if re.search(r"\besrgan\b", m.name + m.description, re.IGNORECASE)]
    assert study_models.display_name("esrgan") == "pretrained SR"
    assert study_models.display_name("downsampled") == "downsampled"
    assert style.PALETTE == {m.key: m.colour for m in models}


def test_each_model_makes_its_image_and_names_its_weights(sample_config):
    """The registry's behaviour: the original as it is, the small image upsampled, or through the model's SR net."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    small = downsample(x, 0.32)
    nets = {key: RRDBNet(nf=8, nb=1, gc=4).eval() for key in (study_models.PRETRAINED_SR, study_models.DARIONET)}
    with torch.no_grad():
        images = {m.key: m.image(x, small, nets) for m in study_models.STUDY_MODELS}
        assert images["original"] is x
        for key in ("bilinear", "bicubic"):
            assert torch.equal(images[key], upsample(small, 64, key))
        for key in ("esrgan", "darionet"):
            assert torch.equal(images[key], reconstruct(nets[key], small, 64))
    assert len({tuple(image.flatten()[:50].tolist()) for image in images.values()}) == 5
    assert [m.sr_weights for m in study_models.STUDY_MODELS] == [None, None, None, "pretrained", "fine-tuned"]
    with pytest.raises(KeyError):  # an SR model without its net
        study_models.BY_KEY["darionet"].image(x, small, {})
    save_sr_checkpoint(evaluate.darionet_checkpoint(sample_config), RRDBNet(nf=8, nb=1, gc=4), {"stage": "test"})
    assert list(evaluate.load_sr_models(sample_config, ["darionet", "bicubic"], torch.device("cpu"))) == ["darionet"]


# ---------------------------------------------------------------- examples for figures 6 and 7


def test_write_examples_picks_the_extreme_classes(sample_config):
    save_sr_checkpoint(evaluate.darionet_checkpoint(sample_config), RRDBNet(nf=8, nb=1, gc=4), {"stage": "test"})
    run = evaluate.evaluate(sample_config, ["original", "bicubic", "darionet"], progress=False)
    target = evaluate.write_examples(sample_config, run, progress=False)
    reports = tables.per_class_reports(sample_config, run)
    diff = metrics.class_differences(reports["original"], reports["darionet"])
    k = sample_config.eval.examples_per_group
    expected = pd.concat([diff.head(k), diff.tail(k).iloc[::-1]])
    with np.load(target) as saved:
        assert list(saved["group"]) == ["worse"] * k + ["better"] * k
        assert list(saved["columns"]) == ["original", "downsampled", "bicubic", "darionet"]
        assert list(saved["class_name"]) == list(expected["class_name"])
        np.testing.assert_allclose(saved["f1_original"], expected["f1_reference"])
        np.testing.assert_allclose(saved["f1_darionet"], expected["f1_model"])
        assert saved["images"].shape[:2] == (2 * k, 4) and saved["prediction"].shape == (2 * k, 4)
        label_of = run.per_image.drop_duplicates("image").set_index("image")["label"]
        assert [label_of[i] for i in saved["image"]] == list(expected["label"])
