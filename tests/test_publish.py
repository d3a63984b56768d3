"""The runner publishes the run's folder runs/<profile>/figures/ as figures/<profile>/ with its
provenance, and refuses to replace the results of a fuller run (other data, or Table 1 rows or
figures this run lacks) unless given --overwrite; the run's folder never mixes results of
other data. Papermill is replaced by a fake study that writes what the notebooks do."""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from conftest import write_jpeg
from dario_utils.core import paths
from dario_utils.core.config import load_config
from dario_utils.core.paths import RunLayout
from dario_utils.core.runtime import git_commit
from dario_utils.data import dataset
from dario_utils.evaluation.scorings import recipe_hash
from dario_utils.runner import clean, execute, provenance, publish, reproduce
from dario_utils.runner.execute import RunOptions

PROFILE = "imagenet-sample"
MODELS = ["original", "bilinear", "bicubic", "esrgan", "darionet"]
NOTEBOOKS = ["01_data_split", "02_baselines", "03_finetune", "04_evaluation", "05_figures"]


def _write_table(folder: Path, models: list[str]) -> None:
    (folder / "table1.csv").write_text("row,model,top1\n" + "".join(f"{i},{m},0.5\n" for i, m in enumerate(models)))


class FakeStudy:
    """Stands in for ``papermill.execute_notebook``: 01 writes manifests listing the data root's
    files (with ``real_split``, the study's own split and manifests of its JPEGs), 02 Table 1
    without DarioNet, 04 Table 1 with ``rows_04``, 05 ``figures_05``."""

    def __init__(self) -> None:
        self.rows_04 = MODELS
        self.figures_05 = [f"fig{i}_panel.png" for i in range(1, 8)]
        self.real_split = False

    def __call__(self, input_path: str, output_path: str, parameters: dict, **kwargs) -> None:
        profile = parameters.get("profile", "demo")  # --in-place: the notebook's own parameters
        layout = RunLayout(profile, parameters.get("output_root") or paths.output_root_from_env())
        folder = layout.figures
        number = Path(input_path).name[:2]
        if number == "01" and self.real_split:
            config = load_config(profile, {"data_root": parameters["data_root"]}, output_root=layout.output_root)
            dataset.write_manifests(config, dataset.make_split(config))
        elif number == "01":
            names = sorted(p.name for p in Path(parameters["data_root"]).iterdir())
            manifests = layout.manifests
            manifests.mkdir(parents=True, exist_ok=True)
            for split in ("train", "val", "test"):
                (manifests / f"{split}.csv").write_text("path\n" + "".join(f"{name}\n" for name in names))
        elif number == "02":
            _write_table(folder, MODELS[:4])
        elif number == "03":
            layout.history.parent.mkdir(parents=True, exist_ok=True)
            layout.history.write_text("epoch,phase,logit_mse\n0,start,1.0\n1,val,0.5\n")
        elif number == "04":
            _write_table(folder, self.rows_04)
        elif number == "05":
            for name in self.figures_05:
                (folder / name).write_bytes(b"\x89PNG " + name.encode())
        executed = nbformat.read(input_path, as_version=4)
        executed.cells.append(nbformat.v4.new_markdown_cell("executed"))
        nbformat.write(executed, output_path)


@pytest.fixture
def study(tmp_path: Path, output_root: Path, monkeypatch: pytest.MonkeyPatch) -> FakeStudy:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in NOTEBOOKS:
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                       notebooks / f"{name}.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebooks)
    fake = FakeStudy()
    monkeypatch.setattr("papermill.execute_notebook", fake)
    return fake


def _data(tmp_path: Path, name: str, images: int) -> Path:
    root = tmp_path / name
    root.mkdir()
    for i in range(images):
        (root / f"n01440764_{i}.JPEG").write_bytes(b"jpeg")
    return root


def _record(folder: Path) -> dict:
    return json.loads((folder / "provenance.json").read_text())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_full_run_publishes_its_provenance_and_republishes_on_the_same_data(
        study: FakeStudy, tmp_path: Path, output_root: Path):
    data = _data(tmp_path, "sample", 150)
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data)]) == 0
    published = output_root / "figures" / PROFILE
    record = json.loads((published / "provenance.json").read_text())
    config = load_config(PROFILE, {"data_root": str(data.resolve())}, output_root=output_root)
    machine = {key: record.pop(key) for key in ("dirty", "diff_sha256", "seconds", "cpu", "threads")}
    resolved = record.pop("resolved_profile")
    assert record == {
        "profile": PROFILE, "data_root": str(data.resolve()),
        "manifests_sha256": provenance.manifests_fingerprint(config.layout), "images_sha256": None, "notebooks": NOTEBOOKS,
        "commit": git_commit(), "commits": {nb: git_commit() for nb in NOTEBOOKS},
        "date": datetime.now(timezone.utc).date().isoformat(), "recipe": recipe_hash(config),
        "table1_models": MODELS, "figures": study.figures_05,
    }
    assert resolved == {**config.to_dict(), "data_root": str(data.resolve())}
    assert sorted(machine["seconds"]) == NOTEBOOKS and all(s >= 0 for s in machine["seconds"].values())
    assert machine["cpu"] and machine["threads"] >= 1 and machine["dirty"] in (True, False)
    assert re.fullmatch(r"[0-9a-f]{12}", record["manifests_sha256"])
    readme = (published / "README.md").read_text()
    made_by = readme[readme.index("\n## Made by\n"):]
    assert f"data root `{data.resolve()}`" in made_by and f"`{record['manifests_sha256']}`" in made_by
    assert "Table 1 rows: original, bilinear, bicubic, pretrained SR, DarioNet" in made_by
    assert "fig7_panel.png" in made_by and f"commit `{record['commit']}`" in made_by
    assert "[table1.csv](table1.csv)" in readme and "provenance.json |" not in readme
    stored = published / paths.EXECUTED_NOTEBOOKS  # the run as it happened, beside its figures, cleaned
    assert sorted(nb.stem for nb in stored.glob("*.ipynb")) == NOTEBOOKS
    executed = nbformat.read(stored / "03_finetune.ipynb", as_version=4)
    assert executed.cells[-1].source == "executed" and executed.metadata.kernelspec == clean.KERNELSPEC
    assert "- [03_finetune.ipynb](notebooks/03_finetune.ipynb)" in readme
    assert (published / "history.csv").read_bytes() == RunLayout(PROFILE, output_root).history.read_bytes()
    assert "[history.csv](history.csv) | DarioNet's training history" in readme

    # a full rerun on the same data publishes; only the commit and date lines may differ
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data)]) == 0
    stable = [line for line in (published / "README.md").read_text().splitlines()
              if not line.startswith(("- commit", "- date"))]
    assert stable == [line for line in readme.splitlines() if not line.startswith(("- commit", "- date"))]


def test_quick_run_on_other_data_is_refused_until_overwrite(
        study: FakeStudy, tmp_path: Path, output_root: Path, capsys: pytest.CaptureFixture):
    full, quick = _data(tmp_path, "sample", 150), _data(tmp_path, "quick", 35)
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(full)]) == 0
    published = output_root / "figures" / PROFILE
    before = _snapshot(published)
    capsys.readouterr()

    assert reproduce.main(["--profile", PROFILE, "--data-root", str(quick), "--only", "01,02"]) == execute.REFUSED
    kept = output_root / "runs" / PROFILE / "figures"
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: figures/{PROFILE}/ holds the results of a fuller run (other data: manifests "
        f"{provenance.manifests_fingerprint(RunLayout(PROFILE, output_root))}, published {_record(published)['manifests_sha256']}; "
        f"rows darionet would be lost; figures {', '.join(study.figures_05)} would be "
        f"lost); this run's tables and figures are in {kept}: pass --overwrite to replace them"]
    assert _snapshot(published) == before
    assert provenance.table1_models(kept) == MODELS[:4]
    assert json.loads((kept / "provenance.json").read_text())["data_root"] == str(quick.resolve())
    # nothing of the full run's other data is kept with them (its figures; the README is this run's own)
    assert sorted(p.name for p in kept.iterdir()) == ["README.md", "notebooks", "provenance.json", "table1.csv"]
    assert sorted(p.name for p in (kept / "notebooks").iterdir()) == ["01_data_split.ipynb", "02_baselines.ipynb"]
    assert not any(name in (kept / "README.md").read_text() for name in study.figures_05)

    assert reproduce.main(["--profile", PROFILE, "--data-root", str(quick), "--only", "01,02", "--overwrite"]) == 0
    assert provenance.table1_models(published) == MODELS[:4]
    assert json.loads((published / "provenance.json").read_text())["notebooks"] == NOTEBOOKS[:2]
    assert provenance.figure_files(published) == []


def test_a_run_that_changes_the_split_keeps_nothing_of_the_older_split(
        study: FakeStudy, tmp_path: Path, output_root: Path, capsys: pytest.CaptureFixture):
    data = _data(tmp_path, "sample", 20)
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data)]) == 0
    published = output_root / "figures" / PROFILE
    before = _snapshot(published)
    (data / "n01440764_new.JPEG").write_bytes(b"jpeg")  # notebook 01 makes another split of the same root
    capsys.readouterr()
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data), "--only", "01,02"]) == execute.REFUSED
    assert "fuller run (other data: manifests " in capsys.readouterr().err
    assert _snapshot(published) == before
    folder = RunLayout(PROFILE, output_root).figures
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "notebooks", "provenance.json", "table1.csv"]
    assert sorted(p.name for p in (folder / "notebooks").iterdir()) == ["01_data_split.ipynb", "02_baselines.ipynb"]
    assert json.loads((folder / "provenance.json").read_text())["notebooks"] == NOTEBOOKS[:2]


def test_without_a_run_folder_a_run_starts_from_the_published_results_of_its_data(
        study: FakeStudy, tmp_path: Path, output_root: Path):
    """Results published before the run's folder existed, or committed (the demo's): a run of some
    notebooks keeps the others' results, as it does after a run of another data root."""
    data, quick = _data(tmp_path, "sample", 20), _data(tmp_path, "quick", 5)
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data)]) == 0
    published = output_root / "figures" / PROFILE
    shutil.rmtree(RunLayout(PROFILE, output_root).figures)
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data), "--only", "04,05"]) == 0
    assert json.loads((published / "provenance.json").read_text())["notebooks"] == NOTEBOOKS
    assert provenance.figure_files(published) == study.figures_05

    assert reproduce.main(["--profile", PROFILE, "--data-root", str(quick), "--only", "01,02"]) == execute.REFUSED
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data), "--only", "01,04,05"]) == 0
    assert json.loads((published / "provenance.json").read_text())["notebooks"] == NOTEBOOKS
    assert provenance.table1_models(published) == MODELS


def test_partial_rerun_on_the_same_data_publishes_but_not_if_it_loses_a_row(
        study: FakeStudy, tmp_path: Path, output_root: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch):
    data = _data(tmp_path, "sample", 20)
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data)]) == 0
    first = git_commit()
    monkeypatch.setattr(provenance, "git_commit", lambda: "later12")  # the second run from another commit
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data), "--only", "04,05"]) == 0
    published = output_root / "figures" / PROFILE
    # the folder still holds 01-03's results of the first run: the provenance lists every notebook, and who ran it
    record = json.loads((published / "provenance.json").read_text())
    assert record["notebooks"] == NOTEBOOKS and record["commit"] == "later12"
    assert record["commits"] == {**{nb: first for nb in NOTEBOOKS[:3]}, **{nb: "later12" for nb in NOTEBOOKS[3:]}}
    assert f"- commit `later12` (01, 02, 03 from `{first}`)" in (
        published / "README.md").read_text()

    study.rows_04 = MODELS[:3]
    capsys.readouterr()
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(data), "--only", "04"]) == execute.REFUSED
    assert "fuller run (rows esrgan, darionet would be lost)" in capsys.readouterr().err
    assert provenance.table1_models(published) == MODELS


def test_in_place_does_not_refresh_the_notebooks_when_results_would_be_lost(
        study: FakeStudy, output_root: Path, capsys: pytest.CaptureFixture):
    assert execute.run(RunOptions("demo", only=["04", "05"], in_place=True, output_root=output_root)).code == 0
    refreshed = nbformat.read(paths.NOTEBOOKS_DIR / "04_evaluation.ipynb", as_version=4)
    assert refreshed.metadata["kernelspec"] == clean.KERNELSPEC and refreshed.cells[-1].source == "executed"
    record = json.loads((output_root / "figures" / "demo" / "provenance.json").read_text())
    assert record["data_root"] == "data/imagenet-sample-128"  # not where this checkout lies

    stored = {nb.name: nb.read_bytes() for nb in paths.NOTEBOOKS_DIR.iterdir()}
    study.rows_04 = MODELS[:4]
    capsys.readouterr()
    assert execute.run(RunOptions("demo", only=["04"], in_place=True, output_root=output_root)).code == execute.REFUSED
    assert "fuller run (rows darionet would be lost)" in capsys.readouterr().err
    assert {nb.name: nb.read_bytes() for nb in paths.NOTEBOOKS_DIR.iterdir()} == stored


def test_refusals_compare_rows_figures_and_data(tmp_path: Path):
    published, staged = tmp_path / "published", tmp_path / "staged"
    for folder in (published, staged):
        folder.mkdir()
        _write_table(folder, MODELS)
        for i in (1, 2):
            (folder / f"fig{i}_x.png").write_bytes(b"png")
    assert publish.publish_refusals(staged, published) == []

    (staged / "fig2_x.png").unlink()
    _write_table(staged, ["darionet", "original", "extra"])
    assert publish.publish_refusals(staged, published) == [
        "rows bilinear, bicubic, esrgan would be lost", "figures fig2_x.png would be lost"]

    # without provenance.json (an older run) other data alone is no reason
    _write_table(staged, MODELS)
    (staged / "fig2_x.png").write_bytes(b"png")
    record = {"data_root": "/data/a", "manifests_sha256": "aaaaaaaaaaaa"}
    (staged / "provenance.json").write_text(json.dumps(record))
    assert publish.publish_refusals(staged, published) == []
    (published / "provenance.json").write_text(json.dumps({**record, "manifests_sha256": "bbbbbbbbbbbb"}))
    assert publish.publish_refusals(staged, published) == [
        "other data: manifests aaaaaaaaaaaa, published bbbbbbbbbbbb"]
    # the data are told by content: the same manifests and images in another folder are the same data
    (published / "provenance.json").write_text(json.dumps({**record, "data_root": "/data/b"}))
    assert publish.publish_refusals(staged, published) == []
    images = {"images_sha256": "cccccccccccc"}
    (staged / "provenance.json").write_text(json.dumps({**record, **images}))
    assert publish.publish_refusals(staged, published) == []  # published by an older runner: no images hash
    (published / "provenance.json").write_text(json.dumps({**record, "images_sha256": "dddddddddddd"}))
    assert publish.publish_refusals(staged, published) == ["other data: images cccccccccccc, published dddddddddddd"]


# ---------------------------------------------------------------- data told by content, not by folder


def _jpegs(tmp_path: Path, name: str, seeds: range) -> Path:
    """A sample folder of real JPEGs, one per seed (the same seeds give the same bytes)."""
    for i, seed in enumerate(seeds):
        write_jpeg(tmp_path / name / f"n01440764_{i}.JPEG", seed)
    return tmp_path / name


def test_the_same_images_in_another_folder_are_the_same_data(
        study: FakeStudy, tmp_path: Path, output_root: Path, monkeypatch: pytest.MonkeyPatch):
    study.real_split = True
    first = _jpegs(tmp_path, "first", range(12))
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(first)]) == 0
    published = output_root / "figures" / PROFILE
    record = _record(published)
    assert re.fullmatch(r"[0-9a-f]{12}", record["images_sha256"])

    shutil.copytree(first, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    # a run of some notebooks on the copy keeps the others' results: its folder holds the same data
    assert reproduce.main(["--profile", PROFILE, "--data-root", "moved", "--only", "01,04"]) == 0
    moved = _record(published)
    assert moved["data_root"] == "moved"  # as the user gave it, not this machine's absolute path
    assert (moved["manifests_sha256"], moved["images_sha256"]) == (record["manifests_sha256"], record["images_sha256"])
    assert moved["notebooks"] == NOTEBOOKS and moved["figures"] == study.figures_05
    # and a full run from there publishes
    assert reproduce.main(["--profile", PROFILE, "--data-root", "moved"]) == 0
    assert _record(published)["data_root"] == "moved"


def test_other_images_of_the_same_names_and_sizes_are_other_data(
        study: FakeStudy, tmp_path: Path, output_root: Path, capsys: pytest.CaptureFixture):
    study.real_split = True
    first = _jpegs(tmp_path, "first", range(12))
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(first)]) == 0
    published = output_root / "figures" / PROFILE
    before, record = _snapshot(published), _record(published)
    other = _jpegs(tmp_path, "other", range(100, 112))  # the same manifests, other pixels
    capsys.readouterr()
    assert reproduce.main(["--profile", PROFILE, "--data-root", str(other)]) == execute.REFUSED
    assert provenance.manifests_fingerprint(RunLayout(PROFILE, output_root)) == record["manifests_sha256"]
    err = capsys.readouterr().err
    assert f"fuller run (other data: images {provenance.images_fingerprint(RunLayout(PROFILE, output_root))}, published " \
           f"{record['images_sha256']})" in err
    assert _snapshot(published) == before


def test_a_run_s_own_results_do_not_make_the_checkout_dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Provenance's ``dirty`` is about the code and profiles: the results a run writes to figures/ are not part of it."""
    import subprocess

    from dario_utils.core.runtime import working_tree_state

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "table1.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    assert working_tree_state() == {"dirty": False, "diff_sha256": None}
    (tmp_path / "figures" / "table1.csv").write_text("b\n")
    assert working_tree_state()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert working_tree_state()["dirty"] is True
