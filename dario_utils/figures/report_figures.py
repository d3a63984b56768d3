"""The report's figures 1-7, drawn from the result files of notebooks 03 and 04.

Each ``fig*`` function draws one figure from files that notebooks 03 (fine-tuning) and
04 (evaluation) wrote (:mod:`dario_utils.core.result_files`), with the shared style of
:mod:`dario_utils.figures.style`, and writes ``runs/<profile>/figures/<name>.png`` and ``.pdf`` (the run
folder, which the runner publishes as ``figures/<profile>/``), returning those two paths. A
missing input raises :class:`~dario_utils.core.result_files.MissingResultError` (a
:class:`FileNotFoundError`) that names the file and the notebook to run. Rerunning on the same results gives byte-identical
files. Figures 8-10 (notebook 06) are in :mod:`dario_utils.figures.beyond_figures`, figures 11-12
(notebook 07) in :mod:`dario_utils.figures.alternatives_figures`; every figure's number, caption and
inputs in :mod:`dario_utils.figures.registry`, which draws those of a notebook.

Inputs:

- ``runs/<p>/results/history.csv`` (notebook 03): one row per epoch and phase.
- ``runs/<p>/figures/per_class_<model>.csv`` (notebook 04): per-class precision, recall, F1.
- ``runs/<p>/results/per_image.csv`` (notebooks 02 and 04): each test image's cross-entropy per
  model, read by figures 3 and 4 only where every class has one test image
  (:func:`one_image_per_class`), whose per-class F1 can only be 0, 2/3 or 1.
- ``runs/<p>/results/examples.npz`` (notebook 04): one image of each class with the lowest
  and the highest F1 difference DarioNet minus original, with every model's reconstruction
  and prediction and the class's two F1 values.

Models are named as everywhere else, by :func:`dario_utils.models.study_models.display_name`.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from dario_utils.core.metrics import class_differences
from dario_utils.core.paths import RunLayout
from dario_utils.core.result_files import (EVALUATION_NOTEBOOK, START_PHASE, TRAINING_NOTEBOOK, MissingResultError,
                                           best_epoch_row, require)
from dario_utils.figures.style import class_label, DPI, new_figure, PALETTE, save_figure, styled
from dario_utils.models.study_models import BICUBIC, DARIONET, display_name, ORIGINAL

HISTORY_METRICS: dict[str, str] = {
    "logit_mse": "Logit MSE (training loss)",
    "ce": "Cross-entropy (reconstruction)",
    "psnr": "PSNR (dB)",
    "val_loss": "Validation loss\nCE(reconstruction) − CE(original)",
}
"""Columns of ``history.csv`` drawn in Figure 2, with their panel titles."""

PHASE_STYLE: dict[str, dict[str, str]] = {
    "train": {"color": "#7f8c8d", "linestyle": "--", "label": "train"},
    "val": {"color": PALETTE[DARIONET], "linestyle": "-", "label": "validation"},
}
"""How the train and validation curves of Figure 2 are drawn."""

DIFFERENCE_LABEL = "F1 difference (DarioNet − original)"
"""Axis label of a class's F1 with DarioNet minus its F1 on the original images."""

VERSUS_ORIGINALS = "vs the classifier on the originals"
"""What the per-class F1 differences of figures 3 and 5-7 are measured against."""


PROBABILITY_LABEL = "probability of the true class, exp(−CE)"
"""Axis label of the probability the classifier gives an image's true class."""

PROBABILITY_DIFFERENCE_LABEL = "true-class probability difference (DarioNet − original)"
"""Axis label of an image's true-class probability with DarioNet minus on the original."""

PER_IMAGE_NOTE = "one image per class, so per-class F1 is only 0, 2/3 or 1: shown per image instead"
"""What the titles of figures 3 and 4 say where they show each test image instead of each class."""


def read_per_class(layout: RunLayout, model: str) -> pd.DataFrame:
    """The per-class report of ``model`` (original, bicubic, darionet, ...)."""
    return pd.read_csv(require(layout.per_class(model), EVALUATION_NOTEBOOK))


def read_class_differences(layout: RunLayout) -> pd.DataFrame:
    """Per-class F1 of the original images and DarioNet and their difference (worst first)."""
    return class_differences(read_per_class(layout, ORIGINAL), read_per_class(layout, DARIONET))


def one_image_per_class(layout: RunLayout) -> bool:
    """Whether every class has a single test image (support 1 in ``per_class_original.csv``), so
    that its F1 can only be 0, 2/3 or 1 and figures 3 and 4 show each test image instead."""
    return bool((read_per_class(layout, ORIGINAL)["support"] == 1).all())


def read_true_class_probability(layout: RunLayout) -> pd.DataFrame:
    """The probability the classifier gives each test image's true class, ``exp(-ce)``, per model.

    One row per image of ``per_image.csv``, sorted by label, with columns ``image``, ``label``,
    ``class_name`` and one per model scored (original, bicubic, darionet, ...). Raises
    :class:`MissingResultError` where the file or its original or DarioNet rows are missing.
    """
    path = require(layout.per_image, EVALUATION_NOTEBOOK)
    per_image = pd.read_csv(path, dtype={"image": str, "wnid": str})
    missing = {ORIGINAL, DARIONET} - set(per_image["model"])
    if missing:
        raise MissingResultError(f"{path} has no rows of {', '.join(sorted(missing))}: "
                                 f"run notebook {EVALUATION_NOTEBOOK} for this profile first")
    probability = (per_image.assign(probability=np.exp(-per_image["ce"]))
                   .pivot(index=["label", "image"], columns="model", values="probability")
                   .sort_index().reset_index())
    names = read_per_class(layout, ORIGINAL).set_index("label")["class_name"]
    probability.insert(2, "class_name", probability["label"].map(names))
    probability.columns.name = None
    return probability


def _difference_histogram(ax: Axes, delta: pd.Series, xlabel: str, units: str) -> None:
    """Histogram (with a density estimate) of ``delta`` over ``units`` (classes or images), with
    its zero and its mean; the title counts the units lowered, unchanged and raised."""
    sns.histplot(x=delta, kde=len(delta) > 2, color=PALETTE[DARIONET], ax=ax)
    ax.axvline(0, color="#333333", linewidth=1)
    ax.axvline(delta.mean(), color=PALETTE[DARIONET], linestyle="--", linewidth=1.2,
               label=f"mean {delta.mean():+.3f}")
    ax.set(xlabel=xlabel, ylabel=units)
    ax.set_title(f"{len(delta)} {units}: {(delta < 0).sum()} lowered, {(delta == 0).sum()} unchanged, "
                 f"{(delta > 0).sum()} raised", fontsize=10)
    ax.legend(loc="upper left")


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


def fig1_pipeline(layout: RunLayout, image_size: int, small_size: int, sr_scale: int,
                  teacher: str, sr_name: str) -> list[Path]:
    """Figure 1: the pipeline, with the profile's real sizes and networks.

    Top row: the frozen classifier ``teacher`` on the original image gives the target
    logits. Bottom row: the image is downsampled (Gaussian blur, kernel 3, sigma 0.2,
    then resize to ``small_size``), super-resolved by DarioNet (an RRDBNet x``sr_scale``
    initialised from ``sr_name``), resized back to ``image_size`` and classified by the
    same frozen network. The MSE between the two logit vectors trains DarioNet only.
    """
    sr_size = small_size * sr_scale
    image, network = PALETTE[ORIGINAL], PALETTE[ORIGINAL]
    with styled():
        fig = new_figure(10, 3.4)
        ax = fig.add_subplot()
        ax.set(xlim=(0, 100), ylim=(0, 34))
        ax.set_axis_off()
        top, bottom = 29, 5
        original = _node(ax, (7, top), f"Original\n{image_size}×{image_size} px", image, False)
        small = _node(ax, (7, bottom), f"Small\n{small_size}×{small_size} px", image, False)
        darionet = _node(ax, (26, bottom), f"DarioNet\nRRDBNet ×{sr_scale}\n(start: {sr_name})",
                         PALETTE[DARIONET], True)
        sr_image = _node(ax, (44, bottom), f"SR image\n{sr_size}×{sr_size} px", image, False)
        reconstruction = _node(ax, (62, bottom), f"Reconstruction\n{image_size}×{image_size} px",
                               image, False)
        teacher_top = _node(ax, (78, top), f"{teacher}\n(frozen)", network, True)
        teacher_bottom = _node(ax, (78, bottom), f"{teacher}\n(frozen)", network, True)
        target_logits = _node(ax, (93, top), "target\nlogits", image, False)
        logits = _node(ax, (93, bottom), "logits", image, False)
        loss = _node(ax, (93, (top + bottom) / 2), "MSE loss", PALETTE[BICUBIC], True)
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
        return save_figure(fig, layout, "fig1_pipeline")


# --------------------------------------------------------------------------- Figure 2


def fig2_training_curves(layout: RunLayout) -> list[Path]:
    """Figure 2: logit MSE, cross-entropy, PSNR and validation loss per epoch.

    Train and validation curves are drawn with markers, so a single epoch shows as
    points; the validation curve starts at epoch 0, the untrained start. The best epoch
    (lowest mean validation loss) is a dotted vertical line, named in the legend.
    """
    history = pd.read_csv(require(layout.history, TRAINING_NOTEBOOK))
    best = int(best_epoch_row(history)["epoch"])
    with styled():
        fig = new_figure(9, 5.5)
        axes = fig.subplots(2, 2, sharex=True).ravel()
        for ax, (column, title) in zip(axes, HISTORY_METRICS.items()):
            for phase, style in PHASE_STYLE.items():
                phases = (START_PHASE, phase) if phase == "val" else (phase,)
                rows = history[history["phase"].isin(phases)].sort_values("epoch")
                ax.plot(rows["epoch"], rows[column], marker="o", markersize=4, **style)
            ax.axvline(best, color="#555555", linestyle=":", linewidth=1.2, label=f"best epoch ({best})")
            ax.set_title(title, fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.set_xlim(history["epoch"].min() - 0.5, history["epoch"].max() + 0.5)
        for ax in axes[2:]:
            ax.set_xlabel("epoch")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=3)
        return save_figure(fig, layout, "fig2_training_curves")


# --------------------------------------------------------------------------- Figure 3


def fig3_class_differences(layout: RunLayout) -> list[Path]:
    """Figure 3: how the per-class F1 changes from original images to DarioNet.

    Left: histogram (with a density estimate) over classes of the F1 difference
    (DarioNet minus original). Right: a 3D scatter of that difference against class
    hardness (1 - F1 on originals) and support. Support is the third axis because any
    other per-class F1 (original or DarioNet) is fixed by hardness and difference.

    Where every class has one test image (:func:`one_image_per_class`), per-class F1 is only
    0, 2/3 or 1 and support is 1: :func:`_fig3_per_image` draws the figure per image instead.
    """
    if one_image_per_class(layout):
        return _fig3_per_image(layout)
    diffs = read_class_differences(layout)
    delta = diffs["f1_difference"]
    correlation = diffs["hardness"].corr(delta)
    with styled():
        fig = new_figure(10, 4.4)
        fig.suptitle(f"Per-class F1 change with DarioNet, {VERSUS_ORIGINALS}", fontsize=10, fontweight="bold")
        _difference_histogram(fig.add_subplot(1, 2, 1), delta, DIFFERENCE_LABEL, "classes")
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
        return save_figure(fig, layout, "fig3_class_differences")


def _fig3_per_image(layout: RunLayout) -> list[Path]:
    """Figure 3 where every class has one test image: the change of the true class's probability.

    Left: histogram over test images of the probability the classifier gives the true class,
    ``exp(-ce)``, with DarioNet minus on the original. Right: that difference against the image's
    hardness (1 minus the probability on the original), with Pearson's r.
    """
    probability = read_true_class_probability(layout)
    delta = probability[DARIONET] - probability[ORIGINAL]
    hardness = 1.0 - probability[ORIGINAL]
    correlation = hardness.corr(delta)
    limit = float(delta.abs().max())
    with styled():
        fig = new_figure(10, 4.4)
        fig.suptitle(f"Per-image change of the true class's probability with DarioNet, {VERSUS_ORIGINALS}\n"
                     f"({PER_IMAGE_NOTE})", fontsize=10, fontweight="bold")
        _difference_histogram(fig.add_subplot(1, 2, 1), delta, PROBABILITY_DIFFERENCE_LABEL, "images")
        right = fig.add_subplot(1, 2, 2)
        right.axhline(0, color="#333333", linewidth=1)
        right.scatter(hardness, delta, c=delta, cmap="coolwarm_r", vmin=-limit, vmax=limit, s=18,
                      edgecolors="#333333", linewidths=0.4)
        right.set(xlim=(0, 1), xlabel="hardness (1 − true-class probability on the original)",
                  ylabel=PROBABILITY_DIFFERENCE_LABEL)
        right.set_title(f"Probability difference vs hardness: Pearson r = {correlation:+.2f}", fontsize=10)
        return save_figure(fig, layout, "fig3_class_differences")


# --------------------------------------------------------------------------- Figure 4


def fig4_hardest_classes(layout: RunLayout, k: int = 15) -> list[Path]:
    """Figure 4: F1 of the ``k`` classes with the lowest F1 on original images.

    Bars for the original images and DarioNet, plus bicubic when
    ``per_class_bicubic.csv`` exists; hardest class at the top.

    Where every class has one test image (:func:`one_image_per_class`), the ``k`` hardest
    classes all have F1 0 on the originals, and so mostly with every model:
    :func:`_fig4_per_image` draws the figure per image instead.
    """
    if one_image_per_class(layout):
        return _fig4_per_image(layout, k)
    models = [ORIGINAL, DARIONET] + ([BICUBIC] if layout.per_class(BICUBIC).is_file() else [])
    reports = {model: read_per_class(layout, model).set_index("label") for model in models}
    f1 = pd.concat({model: report["f1"] for model, report in reports.items()}, axis=1)
    names = reports[ORIGINAL]["class_name"]
    hardest = f1.sort_values([ORIGINAL], kind="stable").head(k)
    positions = np.arange(len(hardest))[::-1]
    with styled():
        fig = new_figure(8, 1.0 + 0.13 * len(hardest) * len(models))
        ax = fig.add_subplot()
        _grouped_bars(ax, positions, hardest, models)
        ax.set_yticks(positions, [class_label(names[label]) for label in hardest.index], fontsize=8)
        ax.set(xlim=(0, 1), xlabel="F1 (per class)")
        ax.set_title(f"F1 on the {len(hardest)} classes with the lowest F1 on the originals", fontsize=10)
        fig.legend(loc="outside right upper")
        ax.grid(axis="y", visible=False)
        return save_figure(fig, layout, "fig4_hardest_classes")


def _grouped_bars(ax: Axes, positions: np.ndarray, values: pd.DataFrame, models: list[str]) -> None:
    """One horizontal bar per model at each position, side by side, first model on top, in its colour."""
    height = 0.8 / len(models)
    for i, model in enumerate(models):
        ax.barh(positions + (len(models) - 1 - 2 * i) * height / 2, values[model], height,
                color=PALETTE[model], label=display_name(model))


def _fig4_per_image(layout: RunLayout, k: int) -> list[Path]:
    """Figure 4 where every class has one test image: the ``k`` test images downsampling hurts most.

    The images whose true-class probability ``exp(-ce)`` drops most from the original to
    bicubic (to DarioNet where bicubic was not scored), the largest drop at the top (ties by
    label); bars for the original, bicubic and DarioNet, each image named by its class.
    """
    probability = read_true_class_probability(layout)
    models = [m for m in (ORIGINAL, BICUBIC, DARIONET) if m in probability]
    hurt_by = BICUBIC if BICUBIC in probability else DARIONET
    drop = probability[ORIGINAL] - probability[hurt_by]
    hurt = probability.assign(drop=drop).sort_values(["drop", "label"], ascending=[False, True], kind="stable")
    hurt = hurt.head(k)
    positions = np.arange(len(hurt))[::-1]
    with styled():
        fig = new_figure(8, 1.5 + 0.13 * len(hurt) * len(models))
        ax = fig.add_subplot()
        _grouped_bars(ax, positions, hurt, models)
        ax.set_yticks(positions, [class_label(name) for name in hurt["class_name"]], fontsize=8)
        ax.set(xlim=(0, 1), xlabel=PROBABILITY_LABEL)
        fig.suptitle(f"True-class probability on the {len(hurt)} test images that downsampling hurts most\n"
                     f"(largest drop from the original to {display_name(hurt_by)})\n({PER_IMAGE_NOTE})",
                     fontsize=10, fontweight="bold")
        fig.legend(loc="outside lower center", ncols=len(models))
        ax.grid(axis="y", visible=False)
        return save_figure(fig, layout, "fig4_hardest_classes")


# --------------------------------------------------------------------------- Figure 5


def _difference_bars(ax: Axes, rows: pd.DataFrame, slots: int, limit: float, title: str, empty: str) -> None:
    """Horizontal bars of ``rows``' F1 differences from the top of ``slots`` rows down.

    Each class is labelled with its name and its F1 on the originals -> with DarioNet.
    """
    positions = slots - 1 - np.arange(len(rows))
    ax.barh(positions, rows["f1_difference"], color=PALETTE[DARIONET], height=0.7)
    labels = [f"{class_label(row.class_name)}\n{row.f1_reference:.2f} → {row.f1_model:.2f}"
              for row in rows.itertuples()]
    ax.set_yticks(positions, labels, fontsize=7.5)
    ax.set(xlim=sorted((0.0, limit)), ylim=(-0.6, slots - 0.4), xlabel=DIFFERENCE_LABEL)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", visible=False)
    if rows.empty:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", fontsize=9)


def fig5_worse_better(layout: RunLayout, k: int = 10) -> list[Path]:
    """Figure 5: up to ``k`` classes whose F1 DarioNet lowers most (left) and raises most (right).

    Only classes whose F1 actually fell (rose) are shown on the left (right), biggest
    change at the top; both panels share the scale of the largest change. The titles
    count the classes lowered, raised and unchanged.
    """
    diffs = read_class_differences(layout)
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
        return save_figure(fig, layout, "fig5_worse_better")


# --------------------------------------------------------------------------- Figures 6, 7


def _prediction_caption(prediction: str, truth: str) -> tuple[str, dict[str, str]]:
    """The caption under an example image and its colour: green if right, red if wrong.

    An empty prediction (the downsampled image, which is not classified) is grey.
    """
    if not prediction:
        return "not classified", {"color": "#777777"}
    return class_label(prediction, width=22), {"color": "#1e8449" if prediction == truth else "#c0392b"}


def _reconstruction_grid(layout: RunLayout, group: str, title: str, preferred: str, name: str) -> list[Path]:
    """One row per example of ``group`` in ``examples.npz``, one column per image kind.

    The downsampled column is stored (and so shown) upscaled by nearest neighbour to
    the size of the others. Each cell is captioned with the judge's prediction, green
    when it is the true class and red otherwise; the row label is the true class, the
    image and the class's F1 on the originals -> with DarioNet. ``preferred`` says which
    image of a class :func:`dario_utils.evaluation.tables.choose_examples` picks when it can.
    """
    path = require(layout.examples, EVALUATION_NOTEBOOK)
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
        return save_figure(fig, layout, name)


def fig6_reconstructions_worse(layout: RunLayout) -> list[Path]:
    """Figure 6: reconstructions from the classes with the lowest F1 difference (DarioNet - original)."""
    return _reconstruction_grid(layout, "worse", "Classes whose F1 DarioNet lowers most (or raises least)",
                                "the original gets right and DarioNet wrong", "fig6_reconstructions_worse")


def fig7_reconstructions_better(layout: RunLayout) -> list[Path]:
    """Figure 7: reconstructions from the classes with the highest F1 difference (DarioNet - original).

    Its differences may be zero or negative: the title claims no improvement.
    """
    return _reconstruction_grid(layout, "better", "Classes whose F1 DarioNet raises most (or lowers least)",
                                "DarioNet gets right and the original wrong", "fig7_reconstructions_better")


# --------------------------------------------------------------------------- data split


def class_histogram(splits: dict[str, pd.DataFrame]):
    """How many images each class has, per split (notebook 01), as a PNG image to display (not saved)."""
    from IPython.display import Image as DisplayImage

    counts = pd.concat([frame.assign(split=split) for split, frame in splits.items()])
    per_class = counts.groupby(["split", "label"]).size().rename("images").reset_index()
    with styled():
        fig = new_figure(8, 2.6)
        ax = fig.add_subplot()
        sns.histplot(per_class, x="images", hue="split", multiple="dodge", discrete=True, shrink=0.8, ax=ax)
        ax.set(xlabel="images per class", ylabel="classes",
               title=f"{per_class['label'].nunique()} classes over {len(counts)} images")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
    fig.clear()
    return DisplayImage(data=buffer.getvalue(), format="png")
