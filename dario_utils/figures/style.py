"""The one look shared by every figure of the study, and how figures are saved.

Figures are build products: rerunning a notebook on the same results must give the same
bytes. So every figure is drawn under the same rc settings (:func:`style_rc`, applied by
:func:`styled` regardless of what a notebook did to matplotlib's global state), with the
fonts matplotlib ships, at a fixed dpi, and saved without the timestamp and version
metadata matplotlib would otherwise embed (:func:`save_figure`).

Figures are created with :func:`new_figure`, which does not go through pyplot, so they
render with Agg (PNG) and the PDF backend whatever backend a notebook selected, and are
never displayed twice nor kept alive by pyplot.
"""
from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path
from typing import Any, Iterator

import matplotlib
import seaborn as sns
from cycler import cycler
from matplotlib.figure import Figure

from dario_utils.core.paths import RunLayout
from dario_utils.core.fileio import atomic_path
from dario_utils.models.study_models import STUDY_MODELS

DPI = 100
"""Dots per inch of every figure, on screen and in the PNG."""

PALETTE: dict[str, str] = {model.key: model.colour for model in STUDY_MODELS}
"""Colour of each model key, identical in every figure (:data:`dario_utils.models.study_models.STUDY_MODELS`)."""

PNG_METADATA: dict[str, Any] = {"Software": None}
"""Drops the matplotlib version from PNG files."""

PDF_METADATA: dict[str, Any] = {"CreationDate": None, "ModDate": None, "Producer": None}
"""Drops the creation time and producer from PDF files."""

FORMATS: dict[str, dict[str, Any]] = {"png": PNG_METADATA, "pdf": PDF_METADATA}
"""Each file format of a figure, PNG first, with the metadata it is saved with."""


def style_rc() -> dict[str, Any]:
    """The rc settings of every figure: seaborn's ``whitegrid`` theme, fixed dpi, palette."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)}
    rc.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "font.family": "DejaVu Sans",
            "axes.prop_cycle": cycler(color=list(PALETTE.values())),
            "axes.titleweight": "bold",
            "legend.frameon": False,
        }
    )
    return rc


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """Draw inside this block to use :func:`style_rc` without changing global settings."""
    with matplotlib.rc_context(style_rc()):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout, outside pyplot."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def class_label(name: str, width: int = 25, max_chars: int = 50) -> str:
    """A readable class name: only the first synonym, cut at ``max_chars``, wrapped.

    ImageNet names list synonyms ("clog, geta, patten, sabot"); the first one names the
    class. Longer names are shortened with an ellipsis and wrapped at ``width`` characters.
    """
    first = name.split(",")[0].strip() or name
    return textwrap.fill(textwrap.shorten(first, max_chars, placeholder="…"), width)


def figure_files(layout: RunLayout, name: str) -> list[Path]:
    """``runs/<profile>/figures/<name>.png`` and ``.pdf``: the files of figure ``name``."""
    return [layout.figures / f"{name}.{fmt}" for fmt in FORMATS]


def save_figure(fig: Figure, layout: RunLayout, name: str) -> list[Path]:
    """Write ``fig`` to ``runs/<profile>/figures/<name>.png`` and ``.pdf`` (the run folder, which the
    runner publishes as ``figures/<profile>/``); return both paths.

    Each file is written atomically and without time-dependent metadata, so the same
    figure gives the same bytes on every run. The figure's canvas is released afterwards
    (figures from :func:`new_figure` are not tracked by pyplot, so nothing else holds them).
    """
    written = figure_files(layout, name)
    for target, (fmt, metadata) in zip(written, FORMATS.items()):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
    fig.clear()
    return written
