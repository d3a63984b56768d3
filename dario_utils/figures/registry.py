"""Every figure and table of a figures folder, in one registry: its number, name, caption, the
function that makes it, the result files it reads and the notebook that makes it.

To add a figure, write its drawing function (``fig<N>_<name>(layout) -> list[Path]``, in the
figures module of its notebook) and add its :class:`Figure` to :data:`FIGURES`: its notebook's
cell ``registry.draw_figures(config.layout, "<notebook>")`` draws it, ``registry.show_figures``
shows it with its caption, and the folder's README (:mod:`dario_utils.figures.readme`) lists it.
Tables are written by the notebooks' own steps; :data:`TABLES` names each one's writer and captions.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dario_utils.core.paths import HISTORY_FILE, RunLayout
from dario_utils.core.result_files import (COST_FRONTIER, LOSS_ABLATION, MissingResultError,
                                           SCALE_SWEEP, TABLE1, TABLE2, TABLE3, TABLE3_UNSEEN, TABLE4)
from dario_utils.evaluation import tables
from dario_utils.figures import alternatives_figures, beyond_figures, report_figures
from dario_utils.figures.style import figure_files
from dario_utils.models.study_models import BICUBIC, DARIONET, ORIGINAL
from dario_utils.studies import alternatives, beyond, classifier_route, super_categories
from dario_utils.training import train

ONE_IMAGE_PER_CLASS = (" Where each class has a single test image (the demo and imagenet-sample profiles), its F1 "
                       "can only be 0, 2/3 or 1: these rankings are coarse and ties keep label order; Table 4 "
                       "and figure 12 pool the classes into WordNet super-categories instead.")
"""What per-class figures can show with one image per class (figure 5)."""

PER_IMAGE_INSTEAD = (" Where each class has a single test image (the demo and imagenet-sample profiles), its F1 "
                     "can only be 0, 2/3 or 1, so the figure shows each test image instead: ")
"""How figures 3 and 4 begin to say what they show with one image per class; each caption ends the sentence."""

PER_IMAGE = "results/per_image.csv"
EXAMPLES = "results/examples.npz"
HISTORY = f"results/{HISTORY_FILE}"


def _table(name: str) -> str:
    """A table of the run's figures folder, as an input (relative to ``runs/<p>/``)."""
    return f"figures/{name}.csv"


def _per_class(*models: str) -> tuple[str, ...]:
    """The per-class reports of ``models``, as inputs."""
    return tuple(_table(f"per_class_{model}") for model in models)


@dataclass(frozen=True)
class Figure:
    """One figure, written as ``<name>.png`` and ``.pdf``."""

    number: int
    name: str
    caption: str
    draw: Callable[..., list[Path]]
    """Draws it into a run's folder: ``draw(layout, **settings)``."""
    inputs: tuple[str, ...]
    """The result files it reads, relative to ``runs/<p>/``."""
    notebook: str
    settings: tuple[str, ...] = ()
    """The keyword arguments of :attr:`draw` that the notebook passes (figure 1: the profile's sizes and networks)."""
    only_with: str | None = None
    """A result file without which it is not drawn and an earlier run's copy is removed (figure 10: the loss
    ablation may be off)."""


@dataclass(frozen=True)
class Table:
    """One table, written as ``<name>.csv`` and, where it has a Markdown caption, ``<name>.md``."""

    name: str
    number: int | None
    caption: str
    """Of the CSV file."""
    markdown: str | None
    """Of the Markdown file, if the folder's README lists one."""
    write: Callable
    """The step that writes it (a notebook's cell calls it)."""
    inputs: tuple[str, ...]
    notebook: str


FIGURES: dict[str, Figure] = {figure.name: figure for figure in (
    Figure(1, "fig1_pipeline", "Pipeline: downsampling, DarioNet super-resolution and the frozen classifier "
           "whose logits on the original image are the only training target.",
           report_figures.fig1_pipeline, (), "05", settings=("image_size", "small_size", "sr_scale", "teacher",
                                                             "sr_name")),
    Figure(2, "fig2_training_curves", "Training curves per epoch (train and validation): logit MSE, "
           "cross-entropy, PSNR and validation loss, the validation curve from the untrained start (epoch 0), "
           "with the selected (best) epoch marked.", report_figures.fig2_training_curves, (HISTORY,), "05"),
    Figure(3, "fig3_class_differences", "Distribution over classes of the F1 difference (DarioNet minus original) "
           "and the difference against class hardness and support." + PER_IMAGE_INSTEAD
           + "the distribution over images of the change in the probability the classifier gives the true class, "
           "exp(−CE) (DarioNet minus original), and that change against the image's hardness (1 minus that "
           "probability on the original).", report_figures.fig3_class_differences,
           (*_per_class(ORIGINAL, DARIONET), PER_IMAGE), "05"),
    Figure(4, "fig4_hardest_classes", "F1 of each model on the classes with the lowest F1 on the original images "
           "(original, DarioNet, and bicubic where evaluated)." + PER_IMAGE_INSTEAD
           + "the 15 test images whose true-class probability bicubic lowers most from the original, with the "
           "probability the classifier gives the true class, exp(−CE), on the original, bicubic and DarioNet images.",
           report_figures.fig4_hardest_classes, (*_per_class(ORIGINAL, DARIONET, BICUBIC), PER_IMAGE), "05"),
    Figure(5, "fig5_worse_better", "Classes whose F1 DarioNet lowers most (left) and raises most (right), "
           "against the classifier on the original images; unchanged classes are not shown." + ONE_IMAGE_PER_CLASS,
           report_figures.fig5_worse_better, _per_class(ORIGINAL, DARIONET), "05"),
    Figure(6, "fig6_reconstructions_worse", "One test image of each class whose F1 DarioNet lowers most "
           "(or raises least) against the original images, reconstructed by every model, with each prediction.",
           report_figures.fig6_reconstructions_worse, (EXAMPLES,), "05"),
    Figure(7, "fig7_reconstructions_better", "One test image of each class whose F1 DarioNet raises most "
           "(or lowers least) against the original images, reconstructed by every model, with each prediction.",
           report_figures.fig7_reconstructions_better, (EXAMPLES,), "05"),
    Figure(8, "fig8_judge_transfer", "Top-1 and agreement of every model judged by the teacher and by a classifier "
           "DarioNet never saw, with the share of the downsampling gap DarioNet recovers under each (notebook 06).",
           beyond_figures.fig8_judge_transfer, (_table(TABLE2),), "06"),
    Figure(9, "fig9_scale_sweep", "Top-1 and agreement against the downsampling factor for bilinear, bicubic, the "
           "pretrained SR net and DarioNet trained at the study's factor (notebook 06).",
           beyond_figures.fig9_scale_sweep, (_table(SCALE_SWEEP),), "06"),
    Figure(10, "fig10_loss_ablation", "DarioNet fine-tuned with other losses at the same budget: top-1, agreement "
           "and PSNR, with bicubic, the pretrained SR net and Table 1's DarioNet for reference (notebook 06).",
           beyond_figures.fig10_loss_ablation, (_table(LOSS_ABLATION), _table(TABLE1)), "06",
           only_with=_table(LOSS_ABLATION)),
    Figure(11, "fig11_cost_frontier", "Top-1 against GFLOPs per image at inference (log scale) of every method of "
           "Tables 1 and 3, with the images/s measured on this machine and the cost frontier of the methods on the "
           "small image (the original is the reference) (notebook 07).",
           alternatives_figures.fig11_cost_frontier, (_table(COST_FRONTIER),), "07"),
    Figure(12, "fig12_super_categories", "Top-1 of each model per WordNet super-category with 95% bootstrap "
           "intervals, and DarioNet's paired gain over bicubic per group (notebook 07).",
           alternatives_figures.fig12_super_categories, (_table(TABLE4),), "07"),
)}
"""Every figure, by name, in number order."""

TABLES: dict[str, Table] = {table.name: table for table in (
    Table(TABLE1, 1, "Table 1 as CSV.",
          "Table 1: cross-entropy, PSNR, top-1 accuracy and time of every model (Markdown).",
          tables.write_tables, (PER_IMAGE, "results/summary.csv"), "04"),
    Table("mcnemar", None, "McNemar's test of DarioNet's top-1 hits against each other model, image by image.",
          None, tables.write_tables, (PER_IMAGE,), "04"),
    Table(TABLE2, 2, "Table 2 as CSV, one row per judge and model.", "Table 2: every model judged by the teacher "
          "and by an unseen classifier, with the gap DarioNet recovers under each (Markdown).",
          beyond.judge_transfer, (PER_IMAGE,), "06"),
    Table(SCALE_SWEEP, None, "Top-1, agreement, CE and PSNR of each method at each downsampling factor.",
          "Top-1 of each method at each downsampling factor (Markdown).", beyond.scale_sweep, (PER_IMAGE,), "06"),
    Table(LOSS_ABLATION, None, "The loss ablation as CSV, with each run's best epoch and training time.",
          "DarioNet fine-tuned with each loss at the same budget (Markdown).", beyond.loss_ablation, (HISTORY,), "06"),
    Table(HISTORY_FILE.removesuffix(".csv"), None, "DarioNet's training history: per epoch (0: the untrained start), train and validation "
          "logit MSE, agreement with the teacher, PSNR; the best epoch is the one kept.", None, train.finetune, (),
          "03"),
    Table(TABLE3, 3, "Table 3 as CSV, with McNemar's test of each route against the study's.",
          "Table 3: DarioNet with the frozen classifier against the classifier fine-tuned for small images with the "
          "same loss, and both together (Markdown).", classifier_route.route_table, (PER_IMAGE,), "07"),
    Table(TABLE3_UNSEEN, None, "Table 3's routes under each unseen judge as CSV (column judge).",
          "Table 3 again under each classifier DarioNet never trained against, the judge fine-tuned the same way "
          "for route (b), with whether (a) and (b) tie (Markdown).", classifier_route.unseen_judge_routes,
          (PER_IMAGE,), "07"),
    Table(COST_FRONTIER, None, "The cost of every method as CSV, with whether it is on the cost frontier.",
          "GFLOPs, parameters and measured images/s per image at inference of every method, beside its top-1 "
          "(Markdown).", alternatives.cost_frontier, (_table(TABLE1), _table(TABLE3)), "07"),
    Table(TABLE4, 4, "Table 4 as CSV.", "Table 4: top-1 per WordNet super-category with intervals, DarioNet's gains, "
          "and the test of the report's claim about dogs (Markdown).", super_categories.super_category_table,
          (PER_IMAGE,), "07"),
)}
"""Every table of a figures folder other than the per-class reports, by name."""


def of_notebook(notebook: str) -> list[Figure]:
    """The figures ``notebook`` (``"05"``, ``"06"``, ``"07"``) draws, in number order."""
    return [figure for figure in FIGURES.values() if figure.notebook == notebook]


def _wanted(layout: RunLayout, figure: Figure) -> bool:
    """Whether ``figure`` is drawn for ``profile``: its :attr:`Figure.only_with` file, if any, exists."""
    return figure.only_with is None or (layout.run / figure.only_with).is_file()


def draw_figures(layout: RunLayout, notebook: str, **settings: int | str) -> list[Path]:
    """Draw each figure of ``notebook`` whose inputs exist, in number order; return the written paths.

    Each figure takes from ``settings`` the keyword arguments its entry names. A figure whose
    :attr:`Figure.only_with` file is missing is not drawn and an earlier run's copy of it is removed.
    If any other figure could not be drawn, raises :class:`MissingResultError` listing each missing
    file and the notebook that writes it (after drawing the rest).
    """
    written: list[Path] = []
    missing: list[str] = []
    for figure in of_notebook(notebook):
        if not _wanted(layout, figure):
            for path in figure_files(layout, figure.name):
                path.unlink(missing_ok=True)
            continue
        absent = [key for key in figure.settings if key not in settings]
        if absent:
            raise TypeError(f"figure {figure.number} needs {', '.join(absent)}: pass them to draw_figures")
        try:
            written += figure.draw(layout, **{key: settings[key] for key in figure.settings})
        except MissingResultError as err:
            missing.append(str(err))
    if missing:
        raise MissingResultError("some figures could not be drawn:\n" + "\n".join(dict.fromkeys(missing)))
    return written


def preview(layout: RunLayout, name: str, width: int = 900):
    """A figure's PNG as a small JPEG for display in a notebook (the files stay full size)."""
    from IPython.display import Image as DisplayImage
    from PIL import Image

    with Image.open(figure_files(layout, name)[0]) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return DisplayImage(data=buffer.getvalue(), format="jpeg")


def show_figure(layout: RunLayout, name: str) -> None:
    """Display a figure's :func:`preview` in a notebook, followed by its caption."""
    from IPython.display import Markdown, display

    figure = FIGURES[name]
    display(preview(layout, name), Markdown(f"*Figure {figure.number}.* {figure.caption}"))


def show_figures(layout: RunLayout, notebook: str) -> None:
    """:func:`show_figure` of each figure of ``notebook`` that :func:`draw_figures` draws for ``profile``."""
    for figure in of_notebook(notebook):
        if _wanted(layout, figure):
            show_figure(layout, figure.name)
