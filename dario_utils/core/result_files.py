"""The result files the notebooks pass on: which notebook writes each one, and reading it.

Where each lives is the run's :class:`~dario_utils.core.paths.RunLayout`'s:

- ``runs/<p>/results/per_image.csv`` and ``summary.csv`` (notebooks 02 and 04, :func:`read_results`),
  with :func:`results_suffix` where scored on another split or by another judge;
- ``runs/<p>/results/history.csv`` (notebook 03): one row per epoch and phase (:func:`best_epoch_row`,
  :func:`start_row`);
- ``runs/<p>/results/examples.npz`` (notebook 04): the example images of figures 6 and 7;
- ``runs/<p>/figures/<name>.csv`` (:meth:`~dario_utils.core.paths.RunLayout.table`, published as
  ``figures/<p>/`` by the runner): Table 1, McNemar's tests and the per-class reports (notebooks 02
  and 04), the tables of notebooks 06 and 07.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dario_utils.core.config import Config
from dario_utils.core.paths import RunLayout

TRAINING_NOTEBOOK = "03 (fine-tuning)"
EVALUATION_NOTEBOOK = "04 (evaluation)"
BEYOND_NOTEBOOK = "06 (beyond the report)"
ALTERNATIVES_NOTEBOOK = "07 (alternatives and costs)"
BEYOND_NOTEBOOKS = ("06", "07")
"""Numbers of the notebooks beyond the report, left out of the default run of a profile whose
``beyond.with_study`` is false (the demo: they would double its time; ``make beyond`` runs them)."""

START_PHASE = "start"
"""``history.csv``'s phase of the row (epoch 0) that scores the untrained start on the validation split."""
TABLE1 = "table1"
TABLE2 = "table2_judge_transfer"
SCALE_SWEEP = "scale_sweep"
LOSS_ABLATION = "loss_ablation"
TABLE3 = "table3_classifier_vs_sr"
TABLE3_UNSEEN = "table3_routes_unseen_judges"
COST_FRONTIER = "cost_frontier"
TABLE4 = "table4_super_categories"
DOGS_TEST = "dogs_test"


class MissingResultError(FileNotFoundError):
    """A result file has not been written yet."""


def require(path: Path, notebook: str) -> Path:
    """Return ``path`` if it exists, else raise naming it and the notebook that writes it."""
    if not path.is_file():
        raise MissingResultError(f"{path} is missing: run notebook {notebook} for this profile first")
    return path


@dataclass
class EvalRun:
    """The per-image results of an evaluation pass (one row per image and model) and its timing per model."""

    per_image: pd.DataFrame
    summary: pd.DataFrame


def results_suffix(config: Config) -> str:
    """File-name suffix of results on another split than test, or judged by another classifier."""
    split = "" if config.eval.split == "test" else f"_{config.eval.split}"
    return split + ("" if config.judge == config.teacher.name else f"_judge-{config.judge}")


def eval_results_path(config: Config, name: str) -> Path:
    """``runs/<p>/results/<name><suffix>.csv`` of ``config``'s split and judge, ``name`` being ``per_image`` or ``summary``."""
    return config.layout.eval_results(name, results_suffix(config))


def read_results(config: Config) -> EvalRun:
    """The per-image and summary results written by :func:`dario_utils.evaluation.evaluate.evaluate`."""
    files = [eval_results_path(config, name) for name in ("per_image", "summary")]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"no results at {file}: run notebook 02 (baselines) first")
    return EvalRun(pd.read_csv(files[0], dtype={"image": str, "wnid": str}), pd.read_csv(files[1]))


def start_row(history: pd.DataFrame) -> pd.Series:
    """The row of ``history.csv`` that scores the untrained start on the validation split."""
    start = history[history["phase"] == START_PHASE]
    if start.empty:
        raise ValueError("history.csv has no 'start' row (written by an older version): "
                         "rerun notebook 03 to measure the untrained start")
    return start.iloc[0]


def best_epoch_row(history: pd.DataFrame) -> pd.Series:
    """The validation row of ``history.csv`` with the lowest validation loss (the first of equals):
    the epoch whose checkpoint the study keeps."""
    val = history[history["phase"] == "val"]
    if val.empty:
        raise ValueError("history.csv has no 'val' rows: cannot tell the best epoch")
    return val.loc[val["val_loss"].idxmin()]


def read_table(layout: RunLayout, name: str, notebook: str) -> pd.DataFrame:
    """The table ``name`` of ``layout`` (:meth:`~dario_utils.core.paths.RunLayout.table`);
    :class:`MissingResultError` naming ``notebook`` where it is missing."""
    return pd.read_csv(require(layout.table(name), notebook))
