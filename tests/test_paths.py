"""One run layout makes every path of a run, in the places the results have always gone; the output
root is the config's (given to ``load_config``, never a profile key) and survives overrides."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dario_utils.core import paths
from dario_utils.core.config import ConfigError, load_config, with_overrides
from dario_utils.core.paths import RunLayout


def test_every_path_of_a_run_is_where_the_results_have_always_gone(tmp_path: Path):
    layout = RunLayout("p", tmp_path)
    run = tmp_path / "runs" / "p"
    assert {
        "manifest": layout.manifest("val"), "meta": layout.manifests_meta, "best": layout.best_checkpoint,
        "history": layout.history, "examples": layout.examples, "summary": layout.eval_results("summary", "_val"),
        "per_image": layout.per_image, "beyond": layout.beyond_results, "alternatives": layout.alternatives_results,
        "classifier": layout.classifier_checkpoint, "classifier_history": layout.classifier_history,
        "cache": layout.head_cache("head-val-0.32.pt"), "executed": layout.executed_notebooks,
        "table": layout.table("table1"), "per_class": layout.per_class("darionet"),
        "published": layout.published_figures, "crossval": layout.crossval, "scorings": layout.scorings_log,
    } == {
        "manifest": run / "manifests" / "val.csv", "meta": run / "manifests" / "meta.json",
        "best": run / "checkpoints" / "darionet_best.pt", "history": run / "results" / "history.csv",
        "examples": run / "results" / "examples.npz", "summary": run / "results" / "summary_val.csv",
        "per_image": run / "results" / "per_image.csv", "beyond": run / "results" / "beyond",
        "alternatives": run / "results" / "alternatives",
        "classifier": run / "checkpoints" / "classifier_lowres.pt",
        "classifier_history": run / "results" / "alternatives" / "classifier_history.csv",
        "cache": run / "cache" / "head-val-0.32.pt", "executed": run / "notebooks",
        "table": run / "figures" / "table1.csv", "per_class": run / "figures" / "per_class_darionet.csv",
        "published": tmp_path / "figures" / "p", "crossval": tmp_path / "figures" / "p" / "crossval",
        "scorings": tmp_path / "figures" / "test_scorings.csv",
    }
    assert RunLayout("p", str(tmp_path)) == layout  # a notebook's parameter is a str


def test_the_config_carries_its_layout_through_overrides(tmp_path: Path):
    assert load_config("demo").layout == RunLayout("demo", paths.PROJECT_ROOT)
    config = load_config("demo", output_root=tmp_path / "out")
    assert config.layout == RunLayout("demo", (tmp_path / "out").resolve())
    fold = with_overrides(config, {"profile": "demo-crossval-fold1"})
    assert fold.layout.run == (tmp_path / "out").resolve() / "runs" / "demo-crossval-fold1"
    assert "output_root" not in config.to_dict()  # no part of the profile, its recipe or its provenance


def test_the_output_root_is_no_profile_key(tmp_path: Path):
    raw = yaml.safe_load(paths.profile_file("demo").read_text())
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**raw, "output_root": str(tmp_path)}))
    with pytest.raises(ConfigError, match="'output_root'.*DARIO_OUTPUT_ROOT"):
        load_config(path)


def test_the_entry_points_read_the_output_root_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(paths.OUTPUT_ROOT_ENV, str(tmp_path))
    assert paths.output_root_from_env() == tmp_path.resolve()
    monkeypatch.delenv(paths.OUTPUT_ROOT_ENV)
    assert paths.output_root_from_env() == paths.PROJECT_ROOT


def test_report_columns_are_the_config_s_not_the_profile_name_s():
    """Table 1 beside the report's numbers where the profile says so (the paper profile: the report's data)."""
    assert {name: load_config(name).eval.report_columns for name in ("demo", "imagenet-sample", "paper")} == {
        "demo": False, "imagenet-sample": False, "paper": True}


def test_every_notebook_starts_with_setup_which_prints_the_stored_line(capsys: pytest.CaptureFixture,
                                                                        tmp_path: Path):
    import nbformat

    from dario_utils.core.notebook import setup

    config = setup("demo", output_root=tmp_path)
    printed = capsys.readouterr().out
    assert config.layout == RunLayout("demo", tmp_path.resolve())
    for path in sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
        assert "parameters" in code[0].metadata["tags"], path.name
        assert {"output_root = None", "progress = False"} <= {line.split("  #")[0] for line in
                                                            code[0].source.splitlines()}, path.name
        assert code[1].source.endswith(
            "config = setup(profile, data_root=data_root, device=device, output_root=output_root)"), path.name
        assert [output.text for output in code[1].outputs] == [printed], path.name
