"""The README of a ``figures/<profile>/`` folder: each figure and table present, with its caption,
the command that made them and, from ``provenance.json``, what made them.

:func:`write_readme` is the one writer of that file; the runner (:mod:`dario_utils.runner.reproduce`)
calls it once at the end of a run, after writing ``provenance.json``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from dario_utils.core.fileio import write_text
from dario_utils.core.result_files import BEYOND_NOTEBOOKS
from dario_utils.models.study_models import display_name

PROVENANCE_FILE = "provenance.json"
"""What made a figures folder (``runs/<p>/figures/``, published as ``figures/<p>/``), written there by
:mod:`dario_utils.runner.reproduce`."""

ONE_IMAGE_PER_CLASS = (" Where each class has a single test image (the demo and imagenet-sample profiles), its F1 "
                       "can only be 0, 2/3 or 1: these rankings are coarse and ties keep label order; Table 4 "
                       "and figure 12 pool the classes into WordNet super-categories instead.")
"""What per-class figures can show with one image per class (figure 5)."""

PER_IMAGE_INSTEAD = (" Where each class has a single test image (the demo and imagenet-sample profiles), its F1 "
                     "can only be 0, 2/3 or 1, so the figure shows each test image instead: ")
"""How figures 3 and 4 begin to say what they show with one image per class; each caption ends the sentence."""

CAPTIONS: dict[str, str] = {
    "fig1_pipeline": "Pipeline: downsampling, DarioNet super-resolution and the frozen classifier "
    "whose logits on the original image are the only training target.",
    "fig2_training_curves": "Training curves per epoch (train and validation): logit MSE, "
    "cross-entropy, PSNR and validation loss, the validation curve from the untrained start (epoch 0), "
    "with the selected (best) epoch marked.",
    "fig3_class_differences": "Distribution over classes of the F1 difference (DarioNet minus original) "
    "and the difference against class hardness and support." + PER_IMAGE_INSTEAD
    + "the distribution over images of the change in the probability the classifier gives the true class, "
    "exp(−CE) (DarioNet minus original), and that change against the image's hardness (1 minus that "
    "probability on the original).",
    "fig4_hardest_classes": "F1 of each model on the classes with the lowest F1 on the original images "
    "(original, DarioNet, and bicubic where evaluated)." + PER_IMAGE_INSTEAD
    + "the 15 test images whose true-class probability bicubic lowers most from the original, with the "
    "probability the classifier gives the true class, exp(−CE), on the original, bicubic and DarioNet images.",
    "fig5_worse_better": "Classes whose F1 DarioNet lowers most (left) and raises most (right), "
    "against the classifier on the original images; unchanged classes are not shown." + ONE_IMAGE_PER_CLASS,
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
    "fig11_cost_frontier": "Top-1 against GFLOPs per image at inference (log scale) of every method of Tables 1 "
    "and 3, with the images/s measured on this machine and the cost frontier of the methods on the small image (the "
    "original is the reference) (notebook 07).",
    "fig12_super_categories": "Top-1 of each model per WordNet super-category with 95% bootstrap intervals, and "
    "DarioNet's paired gain over bicubic per group (notebook 07).",
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
    "table3_classifier_vs_sr.md": "Table 3: DarioNet with the frozen classifier against the classifier fine-tuned "
    "for small images with the same loss, and both together (Markdown).",
    "table3_classifier_vs_sr.csv": "Table 3 as CSV, with McNemar's test of each route against the study's.",
    "cost_frontier.md": "GFLOPs, parameters and measured images/s per image at inference of every method, "
    "beside its top-1 (Markdown).",
    "cost_frontier.csv": "The cost of every method as CSV, with whether it is on the cost frontier.",
    "table4_super_categories.md": "Table 4: top-1 per WordNet super-category with intervals, DarioNet's gains, and "
    "the test of the report's claim about dogs (Markdown).",
    "table4_super_categories.csv": "Table 4 as CSV.",
}
"""One-line caption of each table file other than the per-class reports."""


def _file_caption(file_name: str) -> str | None:
    """Caption of a figure or table file of a figures folder; None for other files."""
    stem, suffix = Path(file_name).stem, Path(file_name).suffix
    if suffix == ".png" and stem.startswith("fig"):
        return CAPTIONS.get(stem, "Figure without a registered caption.")
    if suffix == ".csv" and stem.startswith("per_class_"):
        model = display_name(stem.removeprefix("per_class_"))
        return f"Per-class precision, recall, F1 and support of the classifier on {model} images."
    return TABLE_CAPTIONS.get(file_name)


def reproduce_command(profile: str, data_root: str | None = None, beyond_apart: bool = False) -> str:
    """The command that remakes ``figures/<p>/``: the runner on ``profile`` (with ``--data-root DIR``
    where the run was given one) and, with ``beyond_apart`` (a profile whose notebooks beyond the
    report run on their own), the same with ``--only 06,07`` after it."""
    command = f"python -m dario_utils.runner.reproduce --profile {profile}" + (" --data-root DIR" if data_root else "")
    return command + (f" && {command} --only {','.join(BEYOND_NOTEBOOKS)}" if beyond_apart else "")


def by_figure_number(file_name: str) -> tuple[int, str]:
    """Sort key of a figures folder's file: figures by their number (fig2 before fig10), then the rest by name."""
    match = re.match(r"fig(\d+)", file_name)
    return (int(match[1]) if match else 1 << 30, file_name)


def _made_by(record: dict) -> list[str]:
    """The "Made by" section from a ``provenance.json`` record."""
    return [
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


def write_readme(folder: Path, profile: str, command: str) -> Path:
    """Write ``folder/README.md`` (``folder``: the figures of ``profile``, made by ``command``): each
    figure and table present, captioned, then, where ``folder`` holds ``provenance.json``, a
    "Made by" section from it.

    Figures are listed by their PNG, with a link to the PDF where it exists. Apart from the
    commit and date lines the file changes only when the listed files, the command or the
    provenance do.
    """
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
    provenance = folder / PROVENANCE_FILE
    if provenance.is_file():
        lines += ["", *_made_by(json.loads(provenance.read_text()))]
    return write_text(folder / "README.md", "\n".join(lines) + "\n")
