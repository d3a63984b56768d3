"""The report's seven figures, drawn from the result files of the earlier notebooks.

Each ``fig*`` function reads only files that notebooks 03 (fine-tuning) and 04
(evaluation) wrote, draws with the shared style of :mod:`dario_utils.style` and writes
``figures/<profile>/<name>.png`` and ``.pdf``, returning those two paths. A missing input
raises :class:`MissingResultError` (a :class:`FileNotFoundError`) that names the file
and the notebook to run. Rerunning on the same results gives byte-identical files.

Inputs:

- ``runs/<p>/results/history.csv`` (notebook 03): one row per epoch and phase.
- ``figures/<p>/per_class_<model>.csv`` (notebook 04): per-class precision, recall, F1.
- ``runs/<p>/results/examples.npz`` (notebook 04): one image of each class with the lowest
  and the highest F1 difference DarioNet minus original, with every model's reconstruction
  and prediction and the class's two F1 values.

Models are named as everywhere else, by :func:`dario_utils.evaluate.display_name`.
"""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from dario_utils import paths
from dario_utils.evaluate import display_name
from dario_utils.fileio import write_text
from dario_utils.metrics import class_differences
from dario_utils.style import (
    PALETTE,
    class_label,
    new_figure,
    save_figure,
    styled,
)

TRAINING_NOTEBOOK = "03 (fine-tuning)"
EVALUATION_NOTEBOOK = "04 (evaluation)"

CAPTIONS: dict[str, str] = {
    "fig1_pipeline": "Pipeline: downsampling, DarioNet super-resolution and the frozen classifier "
    "whose logits on the original image are the only training target.",
    "fig2_training_curves": "Training curves per epoch (train and validation): logit MSE, "
    "cross-entropy, PSNR and validation loss, with the selected (best) epoch marked.",
    "fig3_class_differences": "Distribution over classes of the F1 difference (DarioNet minus original) "
    "and the difference against class hardness and support.",
    "fig4_hardest_classes": "F1 of each model on the classes with the lowest F1 on the original images "
    "(original, DarioNet, and bicubic where evaluated).",
    "fig5_worse_better": "Classes whose F1 DarioNet lowers most (left) and raises most (right), "
    "against the classifier on the original images; unchanged classes are not shown.",
    "fig6_reconstructions_worse": "One test image of each class whose F1 DarioNet lowers most "
    "(or raises least) against the original images, reconstructed by every model, with each prediction.",
    "fig7_reconstructions_better": "One test image of each class whose F1 DarioNet raises most "
    "(or lowers least) against the original images, reconstructed by every model, with each prediction.",
    "fig8_judge_transfer": "Top-1 and agreement of every model judged by the teacher and by a classifier "
    "DarioNet never saw, with the share of the downsampling gap DarioNet recovers under each (notebook 06).",
    "fig9_scale_sweep": "Top-1 and agreement against the downsampling factor for bilinear, bicubic, the "
    "pretrained SR net and DarioNet trained at the study's factor (notebook 06).",
    "fig10_loss_ablation": "DarioNet fine-tuned with other losses at the same budget: top-1, agreement "
    "and PSNR, with bicubic, the pretrained SR net and Table 1's DarioNet for reference (notebook 06).",
}
"""One-line caption of each figure, keyed by its file name without extension."""

TABLE_CAPTIONS: dict[str, str] = {
    "table1.md": "Table 1: cross-entropy, PSNR, top-1 accuracy and time of every model (Markdown).",
    "table1.csv": "Table 1 as CSV.",
    "mcnemar.csv": "McNemar's test of DarioNet's top-1 hits against each other model, image by image.",
    "table2_judge_transfer.md": "Table 2: every model judged by the teacher and by an unseen classifier, "
    "with the gap DarioNet recovers under each (Markdown).",
    "table2_judge_transfer.csv": "Table 2 as CSV, one row per judge and model.",
    "scale_sweep.md": "Top-1 of each method at each downsampling factor (Markdown).",
    "scale_sweep.csv": "Top-1, agreement, CE and PSNR of each method at each downsampling factor.",
    "loss_ablation.md": "DarioNet fine-tuned with each loss at the same budget (Markdown).",
    "loss_ablation.csv": "The loss ablation as CSV, with each run's best epoch and training time.",
}
"""One-line caption of each table file other than the per-class reports."""

HISTORY_METRICS: dict[str, str] = {
    "logit_mse": "Logit MSE (training loss)",
    "ce": "Cross-entropy (reconstruction)",
    "psnr": "PSNR (dB)",
    "val_loss": "Validation loss\nCE(reconstruction) − CE(original)",
}
"""Columns of ``history.csv`` drawn in Figure 2, with their panel titles."""

PHASE_STYLE: dict[str, dict[str, str]] = {
    "train": {"color": "#7f8c8d", "linestyle": "--", "label": "train"},
    "val": {"color": PALETTE["darionet"], "linestyle": "-", "label": "validation"},
}
"""How the train and validation curves of Figure 2 are drawn."""

DIFFERENCE_LABEL = "F1 difference (DarioNet − original)"
"""Axis label of a class's F1 with DarioNet minus its F1 on the original images."""

VERSUS_ORIGINALS = "vs the classifier on the originals"
"""What the per-class F1 differences of figures 3 and 5-7 are measured against."""


class MissingResultError(FileNotFoundError):
    """A result file a figure needs has not been written yet."""


def _require(path: Path, notebook: str) -> Path:
    """Return ``path`` if it exists, else raise naming it and the notebook that writes it."""
    if not path.is_file():
        raise MissingResultError(f"{path} is missing: run notebook {notebook} for this profile first")
    return path


def history_path(profile: str) -> Path:
    """``runs/<p>/results/history.csv``, written by notebook 03."""
    return paths.results_dir(profile) / "history.csv"


def per_class_path(profile: str, model: str) -> Path:
    """``figures/<p>/per_class_<model>.csv``, written by notebook 04."""
    return paths.figures_dir(profile) / f"per_class_{model}.csv"


def examples_path(profile: str) -> Path:
    """``runs/<p>/results/examples.npz``, written by notebook 04."""
    return paths.results_dir(profile) / "examples.npz"


def read_per_class(profile: str, model: str) -> pd.DataFrame:
    """The per-class report of ``model`` (original, bicubic, darionet, ...)."""
    return pd.read_csv(_require(per_class_path(profile, model), EVALUATION_NOTEBOOK))


def read_class_differences(profile: str) -> pd.DataFrame:
    """Per-class F1 of the original images and DarioNet and their difference (worst first)."""
    return class_differences(read_per_class(profile, "original"), read_per_class(profile, "darionet"))


# --------------------------------------------------------------------------- Figure 1


def _node(ax: Axes, xy: tuple[float, float], text: str, color: str, filled: bool) -> Text:
    """A rounded box centred at ``xy``: filled for networks, outlined for images."""
    return ax.text(
        *xy, text, ha="center", va="center", fontsize=8.5,
        color="white" if filled else "black", fontweight="bold" if filled else "normal",
        bbox={"boxstyle": "round,pad=0.45", "facecolor": color if filled else "white",
              "edgecolor": color, "linewidth": 1.4},
    )


def _arrow(ax: Axes, source: Text, target: Text, dashed: bool = False, rad: float = 0.0) -> None:
    """An arrow from box ``source`` to box ``target``, drawn between their outlines."""
    ax.annotate(
        "", xy=target.get_position(), xytext=source.get_position(),
        arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1.2, "shrinkA": 2, "shrinkB": 2,
                    "patchA": source.get_bbox_patch(), "patchB": target.get_bbox_patch(),
                    "linestyle": "--" if dashed else "-", "connectionstyle": f"arc3,rad={rad}"},
    )


def _note(ax: Axes, xy: tuple[float, float], text: str, ha: str = "center") -> None:
    """A small grey annotation of an arrow."""
    ax.text(*xy, text, ha=ha, va="center", fontsize=7.5, color="#555555")


def fig1_pipeline(profile: str, image_size: int, small_size: int, sr_scale: int,
                  teacher: str, sr_name: str) -> list[Path]:
    """Figure 1: the pipeline, with the profile's real sizes and networks.

    Top row: the frozen classifier ``teacher`` on the original image gives the target
    logits. Bottom row: the image is downsampled (Gaussian blur, kernel 3, sigma 0.2,
    then resize to ``small_size``), super-resolved by DarioNet (an RRDBNet x``sr_scale``
    initialised from ``sr_name``), resized back to ``image_size`` and classified by the
    same frozen network. The MSE between the two logit vectors trains DarioNet only.
    """
    sr_size = small_size * sr_scale
    image, network = PALETTE["original"], PALETTE["original"]
    with styled():
        fig = new_figure(10, 3.4)
        ax = fig.add_subplot()
        ax.set(xlim=(0, 100), ylim=(0, 34))
        ax.set_axis_off()
        top, bottom = 29, 5
        original = _node(ax, (7, top), f"Original\n{image_size}×{image_size} px", image, False)
        small = _node(ax, (7, bottom), f"Small\n{small_size}×{small_size} px", image, False)
        darionet = _node(ax, (26, bottom), f"DarioNet\nRRDBNet ×{sr_scale}\n(start: {sr_name})",
                         PALETTE["darionet"], True)
        sr_image = _node(ax, (44, bottom), f"SR image\n{sr_size}×{sr_size} px", image, False)
        reconstruction = _node(ax, (62, bottom), f"Reconstruction\n{image_size}×{image_size} px",
                               image, False)
        teacher_top = _node(ax, (78, top), f"{teacher}\n(frozen)", network, True)
        teacher_bottom = _node(ax, (78, bottom), f"{teacher}\n(frozen)", network, True)
        target_logits = _node(ax, (93, top), "target\nlogits", image, False)
        logits = _node(ax, (93, bottom), "logits", image, False)
        loss = _node(ax, (93, (top + bottom) / 2), "MSE loss", PALETTE["bicubic"], True)
        chain = [(original, teacher_top), (teacher_top, target_logits), (target_logits, loss),
                 (original, small), (small, darionet), (darionet, sr_image), (sr_image, reconstruction),
                 (reconstruction, teacher_bottom), (teacher_bottom, logits), (logits, loss)]
        for source, target in chain:
            _arrow(ax, source, target)
        _arrow(ax, loss, darionet, dashed=True, rad=0.1)
        _note(ax, (8.5, (top + bottom) / 2), f"downsample:\nGaussian blur k3, σ 0.2\n+ resize to {small_size} px",
              ha="left")
        _note(ax, (42, top + 1.8), "the same image, full size")
        _note(ax, (53, bottom + 2.2), "resize")
        _note(ax, (60, 19), "gradient of the MSE: only DarioNet is trained")
        return save_figure(fig, profile, "fig1_pipeline")


# --------------------------------------------------------------------------- Figure 2


def _best_epoch(history: pd.DataFrame) -> int:
    """The epoch with the lowest validation loss (the checkpoint the study keeps)."""
    val = history[history["phase"] == "val"]
    if val.empty:
        raise ValueError("history.csv has no 'val' rows: cannot tell the best epoch")
    return int(val.loc[val["val_loss"].idxmin(), "epoch"])


def fig2_training_curves(profile: str) -> list[Path]:
    """Figure 2: logit MSE, cross-entropy, PSNR and validation loss per epoch.

    Train and validation curves are drawn with markers, so a single epoch shows as
    points. The best epoch (lowest mean validation loss) is a dotted vertical line, named
    in the legend.
    """
    history = pd.read_csv(_require(history_path(profile), TRAINING_NOTEBOOK))
    best = _best_epoch(history)
    with styled():
        fig = new_figure(9, 5.5)
        axes = fig.subplots(2, 2, sharex=True).ravel()
        for ax, (column, title) in zip(axes, HISTORY_METRICS.items()):
            for phase, style in PHASE_STYLE.items():
                rows = history[history["phase"] == phase].sort_values("epoch")
                ax.plot(rows["epoch"], rows[column], marker="o", markersize=4, **style)
            ax.axvline(best, color="#555555", linestyle=":", linewidth=1.2, label=f"best epoch ({best})")
            ax.set_title(title, fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.set_xlim(0.5, history["epoch"].max() + 0.5)
        for ax in axes[2:]:
            ax.set_xlabel("epoch")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=3)
        return save_figure(fig, profile, "fig2_training_curves")


# --------------------------------------------------------------------------- Figure 3


def fig3_class_differences(profile: str) -> list[Path]:
    """Figure 3: how the per-class F1 changes from original images to DarioNet.

    Left: histogram (with a density estimate) over classes of the F1 difference
    (DarioNet minus original). Right: a 3D scatter of that difference against class
    hardness (1 - F1 on originals) and support. Support is the third axis because any
    other per-class F1 (original or DarioNet) is fixed by hardness and difference.
    """
    diffs = read_class_differences(profile)
    delta = diffs["f1_difference"]
    correlation = diffs["hardness"].corr(delta)
    with styled():
        fig = new_figure(10, 4.4)
        fig.suptitle(f"Per-class F1 change with DarioNet, {VERSUS_ORIGINALS}", fontsize=10, fontweight="bold")
        left = fig.add_subplot(1, 2, 1)
        sns.histplot(x=delta, kde=len(diffs) > 2, color=PALETTE["darionet"], ax=left)
        left.axvline(0, color="#333333", linewidth=1)
        left.axvline(delta.mean(), color=PALETTE["darionet"], linestyle="--", linewidth=1.2,
                     label=f"mean {delta.mean():+.3f}")
        left.set(xlabel=DIFFERENCE_LABEL, ylabel="classes")
        left.set_title(f"{len(diffs)} classes: {(delta < 0).sum()} lowered, {(delta == 0).sum()} unchanged, "
                       f"{(delta > 0).sum()} raised", fontsize=10)
        left.legend(loc="upper left")
        right = fig.add_subplot(1, 2, 2, projection="3d")
        right.scatter(diffs["hardness"], diffs["support"], delta, c=delta, cmap="coolwarm_r",
                      vmin=-delta.abs().max(), vmax=delta.abs().max(), s=22, depthshade=False,
                      edgecolors="#333333", linewidths=0.4)
        right.yaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_xlabel("hardness (1 − F1 original)", fontsize=8)
        right.set_ylabel("support (images)", fontsize=8)
        right.set_zlabel(DIFFERENCE_LABEL, fontsize=8)
        right.tick_params(labelsize=7)
        right.view_init(elev=20, azim=-60)
        right.set_title(f"F1 difference vs hardness: Pearson r = {correlation:+.2f}", fontsize=10)
        return save_figure(fig, profile, "fig3_class_differences")


# --------------------------------------------------------------------------- Figure 4


def fig4_hardest_classes(profile: str, k: int = 15) -> list[Path]:
    """Figure 4: F1 of the ``k`` classes with the lowest F1 on original images.

    Bars for the original images and DarioNet, plus bicubic when
    ``per_class_bicubic.csv`` exists; hardest class at the top.
    """
    models = ["original", "darionet"] + (["bicubic"] if per_class_path(profile, "bicubic").is_file() else [])
    reports = {model: read_per_class(profile, model).set_index("label") for model in models}
    f1 = pd.concat({model: report["f1"] for model, report in reports.items()}, axis=1)
    names = reports["original"]["class_name"]
    hardest = f1.sort_values(["original"], kind="stable").head(k)
    positions = np.arange(len(hardest))[::-1]
    height = 0.8 / len(models)
    with styled():
        fig = new_figure(8, 1.0 + 0.13 * len(hardest) * len(models))
        ax = fig.add_subplot()
        for i, model in enumerate(models):
            ax.barh(positions + (len(models) - 1 - 2 * i) * height / 2, hardest[model], height,
                    color=PALETTE[model], label=display_name(model))
        ax.set_yticks(positions, [class_label(names[label]) for label in hardest.index], fontsize=8)
        ax.set(xlim=(0, 1), xlabel="F1 (per class)")
        ax.set_title(f"F1 on the {len(hardest)} classes with the lowest F1 on the originals", fontsize=10)
        fig.legend(loc="outside right upper")
        ax.grid(axis="y", visible=False)
        return save_figure(fig, profile, "fig4_hardest_classes")


# --------------------------------------------------------------------------- Figure 5


def _difference_bars(ax: Axes, rows: pd.DataFrame, slots: int, limit: float, title: str, empty: str) -> None:
    """Horizontal bars of ``rows``' F1 differences from the top of ``slots`` rows down.

    Each class is labelled with its name and its F1 on the originals -> with DarioNet.
    """
    positions = slots - 1 - np.arange(len(rows))
    ax.barh(positions, rows["f1_difference"], color=PALETTE["darionet"], height=0.7)
    labels = [f"{class_label(row.class_name)}\n{row.f1_reference:.2f} → {row.f1_model:.2f}"
              for row in rows.itertuples()]
    ax.set_yticks(positions, labels, fontsize=7.5)
    ax.set(xlim=sorted((0.0, limit)), ylim=(-0.6, slots - 0.4), xlabel=DIFFERENCE_LABEL)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", visible=False)
    if rows.empty:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", fontsize=9)


def fig5_worse_better(profile: str, k: int = 10) -> list[Path]:
    """Figure 5: up to ``k`` classes whose F1 DarioNet lowers most (left) and raises most (right).

    Only classes whose F1 actually fell (rose) are shown on the left (right), biggest
    change at the top; both panels share the scale of the largest change. The titles
    count the classes lowered, raised and unchanged.
    """
    diffs = read_class_differences(profile)
    lowered = diffs[diffs["f1_difference"] < 0]
    raised = diffs[diffs["f1_difference"] > 0]
    worse, better = lowered.head(k), raised.tail(k).iloc[::-1]
    limit = max(float(diffs["f1_difference"].abs().max()), 0.05) * 1.05
    slots = max(len(worse), len(better), 3)
    with styled():
        fig = new_figure(10, 1.5 + 0.42 * slots)
        fig.suptitle(f"Per-class F1 with DarioNet, {VERSUS_ORIGINALS} "
                     f"({len(diffs) - len(lowered) - len(raised)} of {len(diffs)} classes unchanged)",
                     fontsize=10, fontweight="bold")
        left, right = fig.subplots(1, 2)
        _difference_bars(left, worse, slots, -limit, f"Largest drops ({len(worse)} of {len(lowered)} lowered)",
                         "DarioNet lowers no class")
        _difference_bars(right, better, slots, limit, f"Largest gains ({len(better)} of {len(raised)} raised)",
                         "DarioNet raises no class")
        fig.supxlabel("under each class name: its F1 on the originals → with DarioNet", fontsize=8, color="#555555")
        return save_figure(fig, profile, "fig5_worse_better")


# --------------------------------------------------------------------------- Figures 6, 7


def _prediction_caption(prediction: str, truth: str) -> tuple[str, dict[str, str]]:
    """The caption under an example image and its colour: green if right, red if wrong.

    An empty prediction (the downsampled image, which is not classified) is grey.
    """
    if not prediction:
        return "not classified", {"color": "#777777"}
    return class_label(prediction, width=22), {"color": "#1e8449" if prediction == truth else "#c0392b"}


def _reconstruction_grid(profile: str, group: str, title: str, preferred: str, name: str) -> list[Path]:
    """One row per example of ``group`` in ``examples.npz``, one column per image kind.

    The downsampled column is stored (and so shown) upscaled by nearest neighbour to
    the size of the others. Each cell is captioned with the judge's prediction, green
    when it is the true class and red otherwise; the row label is the true class, the
    image and the class's F1 on the originals -> with DarioNet. ``preferred`` says which
    image of a class :func:`dario_utils.evaluate.write_examples` picks when it can.
    """
    path = _require(examples_path(profile), EVALUATION_NOTEBOOK)
    with np.load(path, allow_pickle=False) as data:
        if "f1_darionet" not in data:
            raise ValueError(f"{path} predates the per-class F1 in examples: rerun notebook {EVALUATION_NOTEBOOK}")
        rows = np.flatnonzero(data["group"] == group)
        if rows.size == 0:
            raise ValueError(f"{path} holds no '{group}' examples")
        images, columns = data["images"][rows], [str(c) for c in data["columns"]]
        truths, ids, predictions = data["class_name"][rows], data["image"][rows], data["prediction"][rows]
        f1_original, f1_darionet = data["f1_original"][rows], data["f1_darionet"][rows]
    with styled():
        fig = new_figure(1.9 * len(columns) + 0.8, 2.25 * len(rows) + 0.5)
        axes = fig.subplots(len(rows), len(columns), squeeze=False)
        for r, (truth, image_id) in enumerate(zip(truths, ids)):
            for c, column in enumerate(columns):
                ax, prediction = axes[r, c], str(predictions[r, c])
                ax.imshow(images[r, c], interpolation="antialiased")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                ax.set_xlabel(*_prediction_caption(prediction, str(truth)), fontsize=7.5)
                if r == 0:
                    ax.set_title(display_name(column), fontsize=9)
            axes[r, 0].set_ylabel(f"{class_label(str(truth), width=18)}\n{image_id}\n"
                                  f"F1 {f1_original[r]:.2f} → {f1_darionet[r]:.2f}", fontsize=7.5)
        fig.suptitle(f"{title}\n{VERSUS_ORIGINALS}", fontsize=10, fontweight="bold")
        fig.supxlabel("left of each row: true class, test image, the class's F1 on the originals → with DarioNet\n"
                      f"one image per class, where possible one {preferred}\n"
                      "under each image: the classifier's prediction, green if it is the true class, red if not",
                      fontsize=8, color="#555555")
        return save_figure(fig, profile, name)


def fig6_reconstructions_worse(profile: str) -> list[Path]:
    """Figure 6: reconstructions from the classes with the lowest F1 difference (DarioNet - original)."""
    return _reconstruction_grid(profile, "worse", "Classes whose F1 DarioNet lowers most (or raises least)",
                                "the original gets right and DarioNet wrong", "fig6_reconstructions_worse")


def fig7_reconstructions_better(profile: str) -> list[Path]:
    """Figure 7: reconstructions from the classes with the highest F1 difference (DarioNet - original).

    Its differences may be zero or negative: the title claims no improvement.
    """
    return _reconstruction_grid(profile, "better", "Classes whose F1 DarioNet raises most (or lowers least)",
                                "DarioNet gets right and the original wrong", "fig7_reconstructions_better")


# --------------------------------------------------------------------------- Figures 8-10 (notebook 06)


def _read_beyond(profile: str, name: str) -> pd.DataFrame:
    """A table of notebook 06; :class:`MissingResultError` naming it where it is missing."""
    from dario_utils.beyond import BEYOND_NOTEBOOK, table_path

    return pd.read_csv(_require(table_path(profile, name), BEYOND_NOTEBOOK))


def fig8_judge_transfer(profile: str) -> list[Path]:
    """Figure 8: top-1 and agreement of every model under the teacher and the unseen judge
    (Table 2), bars side by side; the legend gives the gap DarioNet recovers under each."""
    table2 = _read_beyond(profile, "table2_judge_transfer")
    names = list(dict.fromkeys(table2["name"]))
    roles = list(dict.fromkeys(table2["role"]))
    shades = {"teacher": "#7f8c8d", "unseen judge": PALETTE["darionet"]}
    with styled():
        fig = new_figure(10, 3.8)
        axes = fig.subplots(1, 2)
        width = 0.8 / len(roles)
        for ax, (column, title) in zip(axes, (("top1", "Top-1 accuracy"),
                                              ("agreement", "Agreement with the judge on the originals"))):
            for k, role in enumerate(roles):
                rows = table2[table2["role"] == role].set_index("name").reindex(names)
                gap = rows["gap_recovered"].dropna()
                label = f"{rows['judge'].iloc[0]} ({role})" + (f": DarioNet recovers {gap.iloc[0]:.0%} of the gap"
                                                                if len(gap) else "")
                x = np.arange(len(names)) + (k - (len(roles) - 1) / 2) * width
                ax.bar(x, rows[column], width, color=shades.get(role, "#555555"), label=label)
            ax.set_xticks(np.arange(len(names)), names)
            ax.set(title=title, ylim=(0, 1))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=1)
        return save_figure(fig, profile, "fig8_judge_transfer")


def fig9_scale_sweep(profile: str) -> list[Path]:
    """Figure 9: top-1 and agreement against the downsampling factor, one line per method; the
    originals' top-1 dashed, the factor DarioNet was trained at dotted."""
    sweep = _read_beyond(profile, "scale_sweep")
    trained_at = float(sweep["trained_at"].iloc[0])
    with styled():
        fig = new_figure(10, 3.8)
        axes = fig.subplots(1, 2, sharex=True)
        for ax, (column, title) in zip(axes, (("top1", "Top-1 accuracy"),
                                              ("agreement", "Agreement with the classifier on the originals"))):
            for model, rows in sweep[sweep["model"] != "original"].groupby("model", sort=False):
                ax.plot(rows["scale"], rows[column], marker="o", color=PALETTE.get(model, "#8e44ad"),
                        linestyle="-" if model in PALETTE else "--", label=rows["name"].iloc[0])
            if column == "top1":
                original = sweep[sweep["model"] == "original"]["top1"]
                ax.axhline(original.iloc[0], color=PALETTE["original"], linestyle="--", linewidth=1.2,
                           label="original images")
            ax.axvline(trained_at, color="#555555", linestyle=":", linewidth=1.2,
                       label=f"DarioNet trained at {trained_at:g}")
            ax.set(title=title, xlabel="downsampling factor", ylim=(0, 1))
            ax.set_xticks(sorted(sweep["scale"].unique()))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=3)
        return save_figure(fig, profile, "fig9_scale_sweep")


def fig10_loss_ablation(profile: str) -> list[Path]:
    """Figure 10: top-1, agreement and PSNR of DarioNet trained with each loss of the ablation;
    bicubic, the pretrained SR net and the study's DarioNet of Table 1 as vertical reference lines."""
    ablation = _read_beyond(profile, "loss_ablation")
    table1 = pd.read_csv(_require(paths.figures_dir(profile) / "table1.csv", EVALUATION_NOTEBOOK)).set_index("model")
    labels = ablation["label"].tolist()[::-1]
    study_epochs = int(ablation["study_epochs"].iloc[0])
    with styled():
        fig = new_figure(11, 0.45 * len(labels) + 1.8)
        axes = fig.subplots(1, 3, sharey=True)
        for ax, (column, title) in zip(axes, (("top1", "Top-1 accuracy"), ("agreement", "Agreement"),
                                              ("avg_psnr", "PSNR (dB)"))):
            values = ablation.set_index("label").loc[labels, column]
            bars = ax.barh(labels, values, color=PALETTE["darionet"], height=0.6)
            ax.bar_label(bars, fmt="%.2f" if column == "avg_psnr" else "%.3f", padding=2, fontsize=8)
            for model in ("bicubic", "esrgan", "darionet"):
                if model in table1.index and np.isfinite(table1.loc[model, column]):
                    ax.axvline(table1.loc[model, column], color=PALETTE[model] if model != "darionet" else "#555555",
                               linestyle="--" if model != "darionet" else ":", linewidth=1.4,
                               label=display_name(model) + (f" of Table 1 ({study_epochs} epochs of logit MSE)"
                                                            if model == "darionet" else ""))
            low = min(values.min(), *(table1.loc[m, column] for m in ("bicubic", "esrgan") if m in table1.index))
            ax.set(title=title, xlim=(0 if column != "avg_psnr" else low - 1.0, None))
        handles, legend = axes[0].get_legend_handles_labels()
        epochs = int(ablation["epochs"].iloc[0])
        fig.legend(handles, legend, loc="outside upper center", ncols=3,
                   title=f"each loss: {epochs} epoch{'s' if epochs != 1 else ''} of fine-tuning, best epoch by validation")
        return save_figure(fig, profile, "fig10_loss_ablation")


BEYOND_FIGURES = ("fig8_judge_transfer", "fig9_scale_sweep", "fig10_loss_ablation")
"""The figures of notebook 06 (:func:`beyond_figures`); the others are the report's (:func:`make_all_figures`)."""


def beyond_figures(profile: str) -> list[Path]:
    """Figures 8-10 of notebook 06, from its tables."""
    return fig8_judge_transfer(profile) + fig9_scale_sweep(profile) + fig10_loss_ablation(profile)


# --------------------------------------------------------------------------- all of them


def _file_caption(file_name: str) -> str | None:
    """Caption of a figure or table file of ``figures/<p>/``; None for other files."""
    stem, suffix = Path(file_name).stem, Path(file_name).suffix
    if suffix == ".png" and stem.startswith("fig"):
        return CAPTIONS.get(stem, "Figure without a registered caption.")
    if suffix == ".csv" and stem.startswith("per_class_"):
        model = display_name(stem.removeprefix("per_class_"))
        return f"Per-class precision, recall, F1 and support of the classifier on {model} images."
    return TABLE_CAPTIONS.get(file_name)


def reproduce_command(profile: str, data_root: str | None = None, beyond_apart: bool = False) -> str:
    """The command that remakes ``figures/<p>/``: the runner on ``profile`` (with ``--data-root DIR``
    where the run was given one) and, with ``beyond_apart`` (a profile whose notebook 06 runs on
    its own), the same with ``--only 06`` after it."""
    command = f"python -m dario_utils.reproduce --profile {profile}" + (" --data-root DIR" if data_root else "")
    return command + (f" && {command} --only 06" if beyond_apart else "")


def by_figure_number(file_name: str) -> tuple[int, str]:
    """Sort key of a ``figures/<p>/`` file: figures by their number (fig2 before fig10), then the rest by name."""
    match = re.match(r"fig(\d+)", file_name)
    return (int(match[1]) if match else 1 << 30, file_name)


def figures_readme(profile: str, command: str) -> Path:
    """Write ``figures/<p>/README.md``: each figure and table present, captioned, and how they were made.

    Figures are listed by their PNG, with a link to the PDF where it exists. Where the
    folder holds ``provenance.json``, a "Made by" section follows (see :func:`readme_made_by`);
    apart from its commit and date lines the file changes only when the listed files,
    the command or the provenance do.
    """
    folder = paths.figures_dir(profile)
    present = sorted((p.name for p in folder.iterdir()), key=by_figure_number) if folder.is_dir() else []
    lines = [
        f"# Figures and tables of profile `{profile}`",
        "",
        f"Made by `{command}`, from the result files in `runs/{profile}/` and the tables here.",
        "",
        "| file | shows |",
        "|---|---|",
    ]
    for name in present:
        caption = _file_caption(name)
        if caption is None:
            continue
        pdf = name.removesuffix(".png") + ".pdf"
        link = f"[{name}]({name})" + (f" ([pdf]({pdf}))" if name.endswith(".png") and pdf in present else "")
        lines.append(f"| {link} | {caption} |")
    readme = write_text(folder / "README.md", "\n".join(lines) + "\n")
    readme_made_by(folder)
    return readme


PROVENANCE_FILE = "provenance.json"
"""What made a ``figures/<p>/`` folder, written there by :mod:`dario_utils.reproduce`."""


def readme_made_by(folder: Path) -> Path | None:
    """(Re)write the "Made by" section that ends ``folder/README.md`` from ``folder/provenance.json``.

    Returns the README's path; None (and writes nothing) where either file is missing.
    """
    import json

    readme, source = folder / "README.md", folder / PROVENANCE_FILE
    if not readme.is_file() or not source.is_file():
        return None
    record = json.loads(source.read_text())
    body = readme.read_text().split("\n## Made by\n")[0].rstrip("\n")
    lines = [
        body,
        "",
        "## Made by",
        "",
        f"- profile `{record['profile']}`, data root `{record['data_root']}`, "
        f"manifests sha256 `{record['manifests_sha256']}`",
        f"- notebooks run: {', '.join(record['notebooks'])}",
        f"- Table 1 rows: {', '.join(display_name(m) for m in record['table1_models']) or 'none'}",
        f"- figures: {', '.join(record['figures']) or 'none'}",
        f"- commit `{record['commit']}`",
        f"- date {record['date']} (UTC)",
        "",
        f"The same in [{PROVENANCE_FILE}]({PROVENANCE_FILE}). The runner replaces this folder only with "
        "results of the same data that keep every row and figure, unless given `--overwrite`.",
    ]
    return write_text(readme, "\n".join(lines) + "\n")


def make_all_figures(profile: str, **fig1_kwargs: int | str) -> list[Path]:
    """Draw every figure whose inputs exist; then fail naming every input that is missing.

    ``fig1_kwargs`` are :func:`fig1_pipeline`'s size and network arguments. Returns the
    written paths; if any figure could not be drawn, raises :class:`MissingResultError`
    listing each missing file and the notebook that writes it (after drawing the rest).
    """
    drawers: list[Callable[[], list[Path]]] = [partial(fig1_pipeline, profile, **fig1_kwargs)] + [
        partial(draw, profile)
        for draw in (fig2_training_curves, fig3_class_differences, fig4_hardest_classes,
                     fig5_worse_better, fig6_reconstructions_worse, fig7_reconstructions_better)
    ]
    written: list[Path] = []
    missing: list[str] = []
    for draw in drawers:
        try:
            written += draw()
        except MissingResultError as err:
            missing.append(str(err))
    if missing:
        raise MissingResultError("some figures could not be drawn:\n" + "\n".join(dict.fromkeys(missing)))
    return written


# --------------------------------------------------------------------------- data split


def class_histogram(splits: dict[str, pd.DataFrame]):
    """How many images each class has, per split (notebook 01); returns the Figure, unsaved."""
    counts = pd.concat([frame.assign(split=split) for split, frame in splits.items()])
    per_class = counts.groupby(["split", "label"]).size().rename("images").reset_index()
    with styled():
        fig = new_figure(8, 2.6)
        ax = fig.add_subplot()
        sns.histplot(per_class, x="images", hue="split", multiple="dodge", discrete=True, shrink=0.8, ax=ax)
        ax.set(xlabel="images per class", ylabel="classes",
               title=f"{per_class['label'].nunique()} classes over {len(counts)} images")
    return fig


def preview(profile: str, name: str, width: int = 900):
    """A figure's PNG as a small JPEG for display in a notebook (the files stay full size)."""
    import io

    from IPython.display import Image as DisplayImage
    from PIL import Image

    with Image.open(paths.figures_dir(profile) / f"{name}.png") as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return DisplayImage(data=buffer.getvalue(), format="jpeg")
