"""Figures are drawn from synthetic result files, completely, deterministically, or not at all."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text

from dario_utils.core import metrics, paths
from dario_utils.core.paths import RunLayout
from dario_utils.core.result_files import best_epoch_row
from dario_utils.figures import readme, registry, report_figures
from dario_utils.figures.style import class_label

PROFILE = "testfig"
FIG1 = {"image_size": 256, "small_size": 81, "sr_scale": 4, "teacher": "resnet50", "sr_name": "RRDB_PSNR_x4"}
CLASS_NAMES = [
    "Airedale, Airedale terrier", "Irish wolfhound", "hook, claw", "clog, geta, patten, sabot",
    "scabbard", "iPod", "crane", "German short-haired pointer",
    "Rhodesian ridgeback", "Greater Swiss Mountain dog with a very long invented name",
    "tench, Tinca tinca", "goldfish, Carassius auratus",
]
MODEL_SHIFT = {"original": 0.0, "darionet": -0.08, "bicubic": -0.2}


def write_history(layout: RunLayout, epochs: int) -> None:
    """``history.csv`` of the untrained start and ``epochs`` epochs whose validation loss is lowest at
    the last-but-one."""
    rows = [{"epoch": 0, "phase": "start", "logit_mse": 2.5, "ce": 2.0, "psnr": 22.0, "agreement": 0.5,
             "val_loss": 0.6, "seconds": 10.0, "images_per_s": 50.0}]
    for epoch in range(1, epochs + 1):
        for phase, offset in (("train", 0.0), ("val", 0.05)):
            rows.append({
                "epoch": epoch, "phase": phase, "logit_mse": 2.0 / epoch + offset, "ce": 1.5 / epoch + offset,
                "psnr": 22 + epoch + offset, "agreement": 0.5 + 0.04 * epoch,
                "val_loss": 0.4 / epoch + offset + (0.3 if epoch == epochs > 1 else 0.0),
                "seconds": 10.0, "images_per_s": 50.0,
            })
    target = layout.results / "history.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(target, index=False)


def write_per_class(layout: RunLayout, models: tuple[str, ...] = ("original", "darionet", "bicubic"), shift: float = 0.0) -> None:
    """``per_class_<model>.csv`` of a dozen classes; DarioNet is both worse and better on some."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.95, len(CLASS_NAMES))
    noise = rng.normal(0, 0.12, len(CLASS_NAMES))
    folder = layout.figures
    folder.mkdir(parents=True, exist_ok=True)
    for model in models:
        f1 = base if model == "original" else np.clip(base + MODEL_SHIFT[model] + shift + noise, 0, 1)
        pd.DataFrame({
            "label": range(len(CLASS_NAMES)), "wnid": [f"n{i:08d}" for i in range(len(CLASS_NAMES))],
            "class_name": CLASS_NAMES, "precision": f1, "recall": f1, "f1": f1,
            "support": 20 + np.arange(len(CLASS_NAMES)) % 5,
        }).to_csv(folder / f"per_class_{model}.csv", index=False)


def write_examples(layout: RunLayout, with_f1: bool = True) -> None:
    """``examples.npz`` with two 'worse' and two 'better' images in five columns; the 'better'
    classes' F1 differences are a tie and a drop, as when DarioNet raises no class."""
    columns = np.array(["original", "downsampled", "bicubic", "esrgan", "darionet"])
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, len(columns), 32, 32, 3), dtype=np.uint8)
    class_name = np.array(CLASS_NAMES[:2] + CLASS_NAMES[3:5])
    prediction = [[name, "", name, name, name] for name in class_name]
    prediction[0][4] = "German short-haired pointer"
    target = layout.results / "examples.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    f1 = {"f1_original": np.array([0.8, 0.5, 0.5, 0.4]), "f1_darionet": np.array([0.2, 0.1, 0.5, 0.3])}
    np.savez(target, images=images, columns=columns, group=np.array(["worse", "worse", "better", "better"]),
             class_name=class_name, image=np.array([f"img_{i:04d}" for i in range(4)]), prediction=np.array(prediction),
             **(f1 if with_f1 else {}))


def write_one_image_per_class(layout: RunLayout, classes: int = 40) -> None:
    """``per_image.csv`` of one test image per class (as the demo profile has) and the per-class reports
    computed from it, whose F1 is then 0, 2/3 or 1.

    An image is classified right where the true class's probability ``exp(-ce)`` exceeds 0.5, else as
    the next class. About half the images are wrong on the originals and stay wrong with bicubic and
    DarioNet, which only lower a low probability: each of the 15 classes with the lowest F1 on the
    originals has F1 0 for every model.
    """
    rng = np.random.default_rng(2)
    labels = np.arange(classes)
    names = [CLASS_NAMES[i] if i < len(CLASS_NAMES) else f"invented class {i}" for i in labels]
    wnids = [f"n{i:08d}" for i in labels]
    original = rng.uniform(0.05, 0.99, classes)
    probability = {"original": original, "bicubic": original * rng.uniform(0.2, 1.0, classes),
                   "darionet": np.where(original > 0.5, np.clip(original * rng.uniform(0.6, 1.3, classes), 0, 0.99),
                                        original * rng.uniform(0.5, 1.0, classes))}
    rows = []
    for model, p in probability.items():
        prediction = np.where(p > 0.5, labels, (labels + 1) % classes)
        rows.append(pd.DataFrame({
            "image": [f"{w}/img_{i:04d}.JPEG" for i, w in enumerate(wnids)], "wnid": wnids, "label": labels,
            "model": model, "judge": "resnet50", "prediction": prediction, "top1": (prediction == labels).astype(int),
            "top5": 1, "agree": (prediction == np.where(original > 0.5, labels, (labels + 1) % classes)).astype(int),
            "ce": -np.log(p), "logit_mse": 0.0 if model == "original" else rng.uniform(0.5, 3.0, classes),
            "psnr": 99.0 if model == "original" else rng.uniform(20, 30, classes),
            "ssim": 1.0 if model == "original" else rng.uniform(0.6, 0.9, classes)}))
        report = metrics.per_class_report(labels, prediction, names, wnids)
        target = layout.per_class(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        report.to_csv(target, index=False)
    layout.per_image.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(rows, ignore_index=True).to_csv(layout.per_image, index=False)


@pytest.fixture(scope="module")
def rendered_layout(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    """The run of :func:`rendered`."""
    return RunLayout(PROFILE, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def rendered(rendered_layout: RunLayout):
    """All inputs written, every figure drawn twice; returns (paths, bytes of 1st render, of 2nd)."""
    layout = rendered_layout
    write_history(layout, epochs=4)
    write_per_class(layout)
    write_examples(layout)
    first = registry.draw_figures(layout, "05", **FIG1)
    first_bytes = {p: p.read_bytes() for p in first}
    second = registry.draw_figures(layout, "05", **FIG1)
    return first, first_bytes, {p: p.read_bytes() for p in second}


@pytest.fixture
def layout(tmp_path: Path) -> RunLayout:
    """The test profile's run under the test's tmp folder."""
    return RunLayout(PROFILE, tmp_path)


def test_every_figure_is_written_as_png_and_pdf(rendered, rendered_layout: RunLayout) -> None:
    written, _, _ = rendered
    report_figures = [figure.name for figure in registry.of_notebook("05")]
    assert report_figures == [f"fig{n}_{name}" for n, name in enumerate(
        ("pipeline", "training_curves", "class_differences", "hardest_classes", "worse_better",
         "reconstructions_worse", "reconstructions_better"), start=1)]
    expected = [rendered_layout.figures / f"{name}.{ext}" for name in report_figures for ext in ("png", "pdf")]
    assert written == expected
    for path in written:
        assert path.read_bytes()[:4] == (b"\x89PNG" if path.suffix == ".png" else b"%PDF")
    assert not list(rendered_layout.figures.glob(".*.tmp"))


def test_rerendering_gives_identical_bytes(rendered) -> None:
    _, first, second = rendered
    assert first.keys() == second.keys()
    assert [p.name for p in first if first[p] != second[p]] == []
    pdf = next(b for p, b in first.items() if p.suffix == ".pdf")
    assert b"CreationDate" not in pdf


def test_readme_lists_each_figure_and_table(rendered, rendered_layout: RunLayout) -> None:
    folder = rendered_layout.figures
    (folder / "table1.md").write_text("| model |\n")
    command = readme.reproduce_command(PROFILE)
    written = readme.write_readme(folder, PROFILE, command)
    assert written == folder / "README.md"
    text = written.read_text()
    for name in [*registry.FIGURES, "per_class_original", "per_class_darionet", "per_class_bicubic"]:
        not_drawn = [figure.name for figure in registry.FIGURES.values() if figure.notebook != "05"]
        assert (f"[{name}." in text) == (name not in not_drawn)  # only the figures present
    assert "[table1.md](table1.md)" in text and "(fig1_pipeline.pdf)" in text
    assert "python -m dario_utils.runner.reproduce --profile testfig" in text and "`testfig`" in text
    assert "README.md" not in text and "## Made by" not in text
    assert readme.write_readme(folder, PROFILE, command).read_text() == text


def test_readme_ends_with_what_made_the_folder(rendered, rendered_layout: RunLayout) -> None:
    folder = rendered_layout.figures
    record = {"profile": PROFILE, "data_root": "data/x", "manifests_sha256": "0123456789ab",
              "notebooks": ["01_data_split", "06_beyond_the_report"], "commit": "abc1234", "date": "2026-01-02",
              "table1_models": ["original", "esrgan", "darionet"], "figures": ["fig1_pipeline.png"]}
    (folder / readme.PROVENANCE_FILE).write_text(json.dumps(record))
    command = readme.reproduce_command(PROFILE, "DIR", beyond_apart=True)
    assert command == ("python -m dario_utils.runner.reproduce --profile testfig --data-root DIR && "
                       "python -m dario_utils.runner.reproduce --profile testfig --data-root DIR --only 06,07")
    text = readme.write_readme(folder, PROFILE, command).read_text()
    listing, made_by = text.split("\n\n## Made by\n\n")
    assert f"Made by `{command}`" in listing and "provenance.json |" not in listing
    assert made_by.splitlines()[:3] == [
        "- profile `testfig`, data root `data/x`, manifests sha256 `0123456789ab`",
        "- notebooks run: 01_data_split, 06_beyond_the_report",
        "- Table 1 rows: original, pretrained SR, DarioNet"]
    assert "- commit `abc1234`" in made_by and made_by.endswith("unless given `--overwrite`.\n")
    assert readme.write_readme(folder, PROFILE, command).read_text() == text
    (folder / readme.PROVENANCE_FILE).unlink()


def test_best_epoch_is_the_first_lowest_validation_loss() -> None:
    history = pd.DataFrame({"epoch": [1, 1, 2, 2, 3, 3], "phase": ["train", "val"] * 3,
                            "val_loss": [0.1, 0.5, 0.0, 0.3, 0.2, 0.3]})
    assert int(best_epoch_row(history)["epoch"]) == 2
    with pytest.raises(ValueError, match="no 'val' rows"):
        best_epoch_row(history[history["phase"] == "train"])


def test_missing_inputs_are_named_with_their_notebook(layout: RunLayout) -> None:
    write_history(layout, epochs=2)
    with pytest.raises(FileNotFoundError) as err:
        registry.draw_figures(layout, "05", **FIG1)
    message = str(err.value)
    assert "per_class_original.csv" in message and "examples.npz" in message and "notebook 04" in message
    drawn = sorted(p.name for p in layout.figures.glob("*.png"))
    assert drawn == ["fig1_pipeline.png", "fig2_training_curves.png"]
    with pytest.raises(FileNotFoundError, match=r"history\.csv.*notebook 03"):
        report_figures.fig2_training_curves(RunLayout("other", layout.output_root))


def test_single_epoch_and_no_improved_class(layout: RunLayout) -> None:
    write_history(layout, epochs=1)
    write_per_class(layout, models=("original", "darionet"), shift=-0.5)
    assert all(p.is_file() for p in report_figures.fig2_training_curves(layout))
    assert all(p.is_file() for p in report_figures.fig4_hardest_classes(layout, k=5))
    assert all(p.is_file() for p in report_figures.fig5_worse_better(layout))


def test_class_label_keeps_first_synonym_and_wraps() -> None:
    assert class_label("clog, geta, patten, sabot") == "clog"
    long = class_label("Greater Swiss Mountain dog with a very long invented name that goes on and on")
    assert all(len(line) <= 25 for line in long.splitlines()) and long.endswith("…")


@pytest.fixture
def figure_texts(layout: RunLayout, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Every non-empty text of each figure drawn in the test, keyed by the figure's name."""
    texts: dict[str, list[str]] = {}
    save = report_figures.save_figure

    def recording_save(fig: Figure, layout: RunLayout, name: str) -> list[Path]:
        texts[name] = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
        return save(fig, layout, name)

    monkeypatch.setattr(report_figures, "save_figure", recording_save)
    return texts


def test_figures_name_models_and_say_what_they_show(figure_texts: dict[str, list[str]], layout: RunLayout) -> None:
    write_history(layout, epochs=2)
    write_per_class(layout)
    write_examples(layout)
    registry.draw_figures(layout, "05", **FIG1)
    for name, texts in figure_texts.items():
        assert not [t for t in texts if re.search(r"\besrgan\b|Pretrained SR", t)], name
    worse, better = figure_texts["fig6_reconstructions_worse"], figure_texts["fig7_reconstructions_better"]
    assert "Classes whose F1 DarioNet lowers most (or raises least)\nvs the classifier on the originals" in worse
    assert "Classes whose F1 DarioNet raises most (or lowers least)\nvs the classifier on the originals" in better
    for texts in (worse, better):
        assert {"original", "downsampled", "bicubic", "pretrained SR", "DarioNet"} <= set(texts)
    assert not [t for t in better if re.search(r"better|improve", t, re.IGNORECASE)]  # it holds a tie and a drop
    assert any(t.endswith("F1 0.50 → 0.50") for t in better) and any(t.endswith("F1 0.80 → 0.20") for t in worse)
    assert "DarioNet gets right and the original wrong" in next(t for t in better if "where possible" in t)
    assert set(figure_texts["fig4_hardest_classes"]) >= {"original", "DarioNet", "bicubic"}
    assert "F1 difference (DarioNet − original)" in figure_texts["fig3_class_differences"]
    fig5 = figure_texts["fig5_worse_better"]
    lowered = sum(t.startswith("Largest drops") for t in fig5)
    assert lowered == 1 and any(t.endswith(f"of {len(CLASS_NAMES)} classes unchanged)") for t in fig5)


def test_examples_without_f1_ask_for_notebook_04(layout: RunLayout) -> None:
    write_examples(layout, with_f1=False)
    with pytest.raises(ValueError, match="rerun notebook 04"):
        report_figures.fig6_reconstructions_worse(layout)


def constant_data(fig: Figure) -> list[str]:
    """What ``fig`` plots that does not vary, one line each: a set of bars (a bar container) whose
    heights (widths for horizontal bars) are all equal or all 0, a scatter coordinate (2-D or 3-D)
    that is the same for every point, a line drawn in data coordinates whose y is the same
    everywhere. Reference lines (``axvline``, ``axhline``) and single points are not data that
    could vary."""
    found = []
    for ax in fig.axes:
        where = ax.get_title() or ax.get_xlabel() or ax.get_label() or "axes"
        for container in ax.containers:
            if not isinstance(container, BarContainer) or not container.patches:
                continue
            horizontal = container.orientation == "horizontal"
            sizes = np.array([bar.get_width() if horizontal else bar.get_height() for bar in container.patches])
            if np.ptp(sizes) == 0 and (len(sizes) > 1 or sizes[0] == 0):
                found.append(f"{where}: {len(sizes)} bars all {sizes[0]:g}")
        for collection in ax.collections:
            points = getattr(collection, "_offsets3d", None)
            coordinates = ([np.asarray(c, dtype=float) for c in points] if points is not None
                           else list(np.asarray(collection.get_offsets(), dtype=float).T))
            for axis, values in zip("xyz", coordinates):
                if len(values) > 1 and np.ptp(values) == 0:
                    found.append(f"{where}: scatter {axis} all {values[0]:g}")
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            if line.get_transform() is ax.transData and len(y) > 1 and np.ptp(y) == 0:
                found.append(f"{where}: line {line.get_label()} at y = {y[0]:g}")
    return found


@pytest.fixture
def constant_data_of(layout: RunLayout, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """:func:`constant_data` of each figure drawn in the test, keyed by the figure's name, taken just
    before the figure is saved (and cleared)."""
    found: dict[str, list[str]] = {}
    save = report_figures.save_figure

    def recording_save(fig: Figure, layout: RunLayout, name: str) -> list[Path]:
        found[name] = constant_data(fig)
        return save(fig, layout, name)

    monkeypatch.setattr(report_figures, "save_figure", recording_save)
    return found


def test_constant_data_is_found() -> None:
    fig = Figure()
    bars, scatter, lines, fine = fig.subplots(1, 4)
    bars.barh([0, 1, 2], [0.0, 0.0, 0.0])
    scatter.scatter([0.1, 0.2, 0.3], [1, 1, 1])
    lines.plot([1, 2, 3], [0.5, 0.5, 0.5])
    lines.axvline(2)
    fine.bar([0, 1], [1, 2])
    fine.plot([1, 2], [3, 4])
    fine.axhline(1)
    space = fig.add_subplot(2, 2, 4, projection="3d")
    space.scatter([0, 1], [1, 1], [2, 3])
    assert [line.split(":")[1] for line in constant_data(fig)] == [
        " 3 bars all 0", " scatter y all 1", " line _child0 at y = 0.5", " scatter y all 1"]


@pytest.mark.parametrize("one_image_per_class", [False, True], ids=["several images per class", "one image per class"])
def test_every_figure_shows_data_that_varies(one_image_per_class: bool, constant_data_of: dict[str, list[str]],
                                             layout: RunLayout) -> None:
    """Issue 35: with one image per class, per-class F1 is 0 or 1 and figures 3 and 4 showed nothing."""
    write_history(layout, epochs=4)
    if one_image_per_class:
        write_one_image_per_class(layout)
    else:
        write_per_class(layout)
    write_examples(layout)
    registry.draw_figures(layout, "05", **FIG1)
    assert set(constant_data_of) == {name for name in registry.FIGURES if name.startswith(
        ("fig1_", "fig2_", "fig3_", "fig4_", "fig5_", "fig6_", "fig7_"))}
    assert {name: found for name, found in constant_data_of.items() if found} == {}


def test_one_image_per_class_is_shown_per_image(figure_texts: dict[str, list[str]], layout: RunLayout) -> None:
    """Figures 3 and 4 say, in their titles and captions, that they show each test image instead."""
    write_one_image_per_class(layout)
    assert report_figures.one_image_per_class(layout)
    report_figures.fig3_class_differences(layout)
    report_figures.fig4_hardest_classes(layout)
    fig3, fig4 = figure_texts["fig3_class_differences"], figure_texts["fig4_hardest_classes"]
    note = f"({report_figures.PER_IMAGE_NOTE})"
    assert f"Per-image change of the true class's probability with DarioNet, {report_figures.VERSUS_ORIGINALS}\n{note}" in fig3
    hardness = "hardness (1 − true-class probability on the original)"
    assert {report_figures.PROBABILITY_DIFFERENCE_LABEL, hardness} <= set(fig3)
    assert "F1 difference (DarioNet − original)" not in fig3 and not [t for t in fig3 if "support" in t]
    assert ("True-class probability on the 15 test images that downsampling hurts most\n"
            f"(largest drop from the original to bicubic)\n{note}") in fig4
    assert {"original", "bicubic", "DarioNet", report_figures.PROBABILITY_LABEL} <= set(fig4)
    for name in ("fig3_class_differences", "fig4_hardest_classes"):
        assert "so the figure shows each test image instead: " in registry.FIGURES[name].caption
        assert "exp(−CE)" in registry.FIGURES[name].caption
    probability = report_figures.read_true_class_probability(layout)
    assert list(probability.columns) == ["label", "image", "class_name", "bicubic", "darionet", "original"]
    assert len(probability) == 40 and probability["class_name"].iloc[0] == CLASS_NAMES[0]


def test_one_image_per_class_needs_the_per_image_results(layout: RunLayout) -> None:
    write_one_image_per_class(layout)
    layout.per_image.unlink()
    with pytest.raises(FileNotFoundError, match=r"per_image\.csv is missing: run notebook 04"):
        report_figures.fig4_hardest_classes(layout)
    write_one_image_per_class(layout)
    rows = pd.read_csv(layout.per_image)
    rows[rows["model"] != "darionet"].to_csv(layout.per_image, index=False)
    with pytest.raises(FileNotFoundError, match="no rows of darionet"):
        report_figures.fig3_class_differences(layout)
    write_per_class(layout)  # several images per class: the per-class figures, which need no per-image results
    assert not report_figures.one_image_per_class(layout)
    assert all(p.is_file() for p in report_figures.fig3_class_differences(layout) + report_figures.fig4_hardest_classes(layout))


def registry_problems(figures: list[registry.Figure], tables: list[registry.Table]) -> list[str]:
    """What breaks the registry's promises: figures numbered 1, 2, ... in order, each file named
    ``fig<number>_...`` and drawn by the function of that name, its inputs files of ``runs/<p>/``, its
    notebook one that draws figures; each table with its writer and a caption."""
    found = []
    for position, figure in enumerate(figures, start=1):
        where = f"figure {figure.number} ({figure.name})"
        if figure.number != position or not figure.name.startswith(f"fig{figure.number}_"):
            found.append(f"{where}: not numbered and named as figure {position}")
        if figure.draw.__name__ != figure.name:
            found.append(f"{where}: drawn by {figure.draw.__name__}")
        if not all(re.fullmatch(r"(results|figures)/\w+\.(csv|npz)", name) for name in figure.inputs):
            found.append(f"{where}: inputs {figure.inputs}")
        if figure.only_with not in (None, *figure.inputs):
            found.append(f"{where}: drawn only with {figure.only_with}, not one of its inputs")
        if figure.notebook not in ("05", "06", "07") or not figure.caption:
            found.append(f"{where}: notebook {figure.notebook}, caption {figure.caption!r}")
    for table in tables:
        if not (callable(table.write) and table.caption and table.notebook in ("02", "03", "04", "06", "07")):
            found.append(f"table {table.name}: writer {table.write}, caption {table.caption!r}, "
                         f"notebook {table.notebook}")
    return found


def test_the_registry_keeps_its_promises(layout: RunLayout) -> None:
    assert registry_problems(list(registry.FIGURES.values()), list(registry.TABLES.values())) == []
    assert [figure.number for figure in registry.FIGURES.values()] == list(range(1, 13))
    assert [table.number for table in registry.TABLES.values() if table.number] == [1, 2, 3, 4]
    for notebook in ("05", "06", "07"):  # each notebook draws its figures from the registry
        text = next(paths.NOTEBOOKS_DIR.glob(f"{notebook}_*.ipynb")).read_text()
        assert f'registry.draw_figures(config.layout, \\"{notebook}\\"' in text


def test_a_broken_registry_entry_is_found() -> None:
    fig2 = registry.FIGURES["fig2_training_curves"]
    planted = [registry.FIGURES["fig1_pipeline"], registry.Figure(3, "fig3_curves", "", fig2.draw, ("history.csv",),
                                                                  "08", only_with="results/x.csv")]
    table = registry.Table("t", None, "", None, None, (), "05")
    assert [problem.split(": ")[1] for problem in registry_problems(planted, [table])] == [
        "not numbered and named as figure 2", "drawn by fig2_training_curves", "inputs ('history.csv',)",
        "drawn only with results/x.csv, not one of its inputs", "notebook 08, caption ''",
        "writer None, caption '', notebook 05"]


def test_a_figure_whose_input_is_optional_is_removed_without_it(layout: RunLayout) -> None:
    stale = registry.figure_files(layout, "fig10_loss_ablation")
    stale[0].parent.mkdir(parents=True)
    for path in stale:
        path.write_bytes(b"an earlier run's")
    with pytest.raises(FileNotFoundError, match=r"table2_judge_transfer\.csv is missing: run notebook 06"):
        registry.draw_figures(layout, "06")
    assert not any(path.exists() for path in stale)
    with pytest.raises(TypeError, match="figure 1 needs image_size, small_size, sr_scale, teacher, sr_name"):
        registry.draw_figures(layout, "05")
