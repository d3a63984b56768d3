"""Figures 11-12 of notebook 07 (alternatives and costs), drawn from its tables.

Like the other figures, each reads only result files (``cost_frontier.csv``,
``table4_super_categories.csv`` in the run's figures folder) and writes ``<name>.png`` and ``.pdf``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dario_utils.core.paths import RunLayout
from dario_utils.core.result_files import ALTERNATIVES_NOTEBOOK, COST_FRONTIER, read_table, TABLE4
from dario_utils.figures.style import new_figure, PALETTE, save_figure, styled
from dario_utils.models.study_models import BICUBIC, DARIONET, display_name, ORIGINAL, PRETRAINED_SR
from dario_utils.studies.super_categories import GROUP_MODELS


def fig11_cost_frontier(layout: RunLayout) -> list[Path]:
    """Figure 11: top-1 against GFLOPs per image (log scale), one point per method, the cost
    frontier of the methods on the small image joined by a line (the original, a square, is the reference)."""
    frame = read_table(layout, COST_FRONTIER, ALTERNATIVES_NOTEBOOK)
    with styled():
        fig = new_figure(8, 4.2)
        ax = fig.subplots()
        on = frame[frame["on_frontier"]].sort_values("gflops_per_image")
        ax.plot(on["gflops_per_image"], on["top1"], color="#999999", linestyle="--", zorder=1, label="cost frontier")
        for row in frame.itertuples():
            colour = PALETTE[ORIGINAL] if row.method == ORIGINAL else PALETTE[DARIONET] if "DarioNet" in \
                row.method else PALETTE[PRETRAINED_SR] if "SR" in row.method else PALETTE[BICUBIC]
            marker = "s" if row.method == ORIGINAL else "o" if row.on_frontier else "x"
            ax.scatter(row.gflops_per_image, row.top1, color=colour, zorder=2, marker=marker)
            ax.annotate(f"{row.method} ({row.images_per_s:.1f} img/s)", (row.gflops_per_image, row.top1),
                        textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax.set_xscale("log")
        ax.set(xlabel="GFLOPs per image at inference (log scale)", ylabel="top-1 accuracy",
               title="Accuracy against cost per image")
        ax.legend(loc="lower right")
        return save_figure(fig, layout, "fig11_cost_frontier")


def fig12_super_categories(layout: RunLayout) -> list[Path]:
    """Figure 12: top-1 of each model per WordNet super-category with 95% intervals (left), and
    DarioNet's paired gain over bicubic with its interval (right)."""
    table = read_table(layout, TABLE4, ALTERNATIVES_NOTEBOOK)
    labels = [f"{g} ({n})" for g, n in zip(table["group"], table["n_images"])]
    y = np.arange(len(table))[::-1]
    with styled():
        fig = new_figure(11, 0.35 * len(table) + 1.8)
        left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
        offsets = np.linspace(-0.3, 0.3, len(GROUP_MODELS))
        for offset, model in zip(offsets, GROUP_MODELS):
            top1 = table[f"top1_{model}"]
            error = [top1 - table[f"ci_low_{model}"], table[f"ci_high_{model}"] - top1]
            left.errorbar(top1, y + offset, xerr=error, fmt="o", markersize=3, color=PALETTE[model],
                          label=display_name(model), elinewidth=0.8)
        left.set_yticks(y, labels)
        left.set(xlabel="top-1 accuracy (95% interval)", xlim=(0, 1), title="Top-1 per super-category")
        left.legend(loc="lower right", fontsize=7)
        key = "darionet_vs_bicubic"
        gain = table[f"gain_{key}"]
        right.errorbar(gain, y, xerr=[gain - table[f"gain_ci_low_{key}"], table[f"gain_ci_high_{key}"] - gain],
                       fmt="o", color=PALETTE[DARIONET], elinewidth=0.8)
        right.axvline(0, color="#999999", linewidth=0.8)
        right.set(xlabel="top-1 gain (95% interval)", title="DarioNet minus bicubic, same images")
        return save_figure(fig, layout, "fig12_super_categories")
