"""Figures 8-10 of notebook 06 (beyond the report), drawn from its tables.

Like the report's figures (:mod:`dario_utils.figures.report_figures`), each reads only result files
(``runs/<p>/figures/table2_judge_transfer.csv``, ``scale_sweep.csv``, ``loss_ablation.csv`` and
Table 1), raises :class:`~dario_utils.core.result_files.MissingResultError` naming a missing one,
and writes ``runs/<p>/figures/<name>.png`` and ``.pdf`` (published as ``figures/<p>/`` by the runner).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dario_utils.core.paths import RunLayout
from dario_utils.core.result_files import (BEYOND_NOTEBOOK, EVALUATION_NOTEBOOK, LOSS_ABLATION, SCALE_SWEEP, TABLE1,
                                           TABLE2, read_table)
from dario_utils.figures.style import new_figure, PALETTE, save_figure, styled
from dario_utils.models.study_models import BICUBIC, DARIONET, display_name, ORIGINAL, PRETRAINED_SR


def fig8_judge_transfer(layout: RunLayout) -> list[Path]:
    """Figure 8: top-1 and agreement of every model under the teacher and the unseen judge
    (Table 2), bars side by side; the legend gives the gap DarioNet recovers under each."""
    table2 = read_table(layout, TABLE2, BEYOND_NOTEBOOK)
    names = list(dict.fromkeys(table2["name"]))
    roles = list(dict.fromkeys(table2["role"]))
    shades = {"teacher": "#7f8c8d", "unseen judge": PALETTE[DARIONET]}
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
        return save_figure(fig, layout, "fig8_judge_transfer")


def fig9_scale_sweep(layout: RunLayout) -> list[Path]:
    """Figure 9: top-1 and agreement against the downsampling factor, one line per method; the
    originals' top-1 dashed, the factor DarioNet was trained at dotted."""
    sweep = read_table(layout, SCALE_SWEEP, BEYOND_NOTEBOOK)
    trained_at = float(sweep["trained_at"].iloc[0])
    with styled():
        fig = new_figure(10, 3.8)
        axes = fig.subplots(1, 2, sharex=True)
        for ax, (column, title) in zip(axes, (("top1", "Top-1 accuracy"),
                                              ("agreement", "Agreement with the classifier on the originals"))):
            for model, rows in sweep[sweep["model"] != ORIGINAL].groupby("model", sort=False):
                ax.plot(rows["scale"], rows[column], marker="o", color=PALETTE.get(model, "#8e44ad"),
                        linestyle="-" if model in PALETTE else "--", label=rows["name"].iloc[0])
            if column == "top1":
                original = sweep[sweep["model"] == ORIGINAL]["top1"]
                ax.axhline(original.iloc[0], color=PALETTE[ORIGINAL], linestyle="--", linewidth=1.2,
                           label="original images")
            ax.axvline(trained_at, color="#555555", linestyle=":", linewidth=1.2,
                       label=f"DarioNet trained at {trained_at:g}")
            ax.set(title=title, xlabel="downsampling factor", ylim=(0, 1))
            ax.set_xticks(sorted(sweep["scale"].unique()))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=3)
        return save_figure(fig, layout, "fig9_scale_sweep")


def fig10_loss_ablation(layout: RunLayout) -> list[Path]:
    """Figure 10: top-1, agreement and PSNR of DarioNet trained with each loss of the ablation;
    bicubic, the pretrained SR net and the study's DarioNet of Table 1 as vertical reference lines."""
    ablation = read_table(layout, LOSS_ABLATION, BEYOND_NOTEBOOK)
    table1 = read_table(layout, TABLE1, EVALUATION_NOTEBOOK).set_index("model")
    labels = ablation["label"].tolist()[::-1]
    study_epochs = int(ablation["study_epochs"].iloc[0])
    with styled():
        fig = new_figure(11, 0.45 * len(labels) + 1.8)
        axes = fig.subplots(1, 3, sharey=True)
        for ax, (column, title) in zip(axes, (("top1", "Top-1 accuracy"), ("agreement", "Agreement"),
                                              ("avg_psnr", "PSNR (dB)"))):
            values = ablation.set_index("label").loc[labels, column]
            bars = ax.barh(labels, values, color=PALETTE[DARIONET], height=0.6)
            ax.bar_label(bars, fmt="%.2f" if column == "avg_psnr" else "%.3f", padding=2, fontsize=8)
            for model in (BICUBIC, PRETRAINED_SR, DARIONET):
                if model in table1.index and np.isfinite(table1.loc[model, column]):
                    ax.axvline(table1.loc[model, column], color=PALETTE[model] if model != DARIONET else "#555555",
                               linestyle="--" if model != DARIONET else ":", linewidth=1.4,
                               label=display_name(model) + (f" of Table 1 ({study_epochs} epochs of logit MSE)"
                                                            if model == DARIONET else ""))
            low = min(values.min(), *(table1.loc[m, column] for m in (BICUBIC, PRETRAINED_SR) if m in table1.index))
            ax.set(title=title, xlim=(0 if column != "avg_psnr" else low - 1.0, None))
        handles, legend = axes[0].get_legend_handles_labels()
        epochs = int(ablation["epochs"].iloc[0])
        fig.legend(handles, legend, loc="outside upper center", ncols=3,
                   title=f"each loss: {epochs} epoch{'s' if epochs != 1 else ''} of fine-tuning, best epoch by validation")
        return save_figure(fig, layout, "fig10_loss_ablation")
