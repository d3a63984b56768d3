"""The result files the notebooks pass on: where each one lives, which notebook writes it, reading it.

- ``runs/<p>/results/per_image.csv`` and ``summary.csv`` (notebooks 02 and 04, :func:`read_results`),
  with :func:`results_suffix` where scored on another split or by another judge;
- ``runs/<p>/results/history.csv`` (notebook 03): one row per epoch and phase (:func:`history_path`,
  :func:`best_epoch_row`, :func:`start_row`);
- ``runs/<p>/results/examples.npz`` (notebook 04): the example images of figures 6 and 7;
- ``runs/<p>/figures/<name>.csv`` (:func:`table_path`, published as ``figures/<p>/`` by the runner):
  Table 1, McNemar's tests and the per-class reports (notebooks 02 and 04), the tables of
  notebooks 06 and 07.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dario_utils.core import paths
from dario_utils.core.config import Config

TRAINING_NOTEBOOK = "03 (fine-tuning)"
EVALUATION_NOTEBOOK = "04 (evaluation)"
BEYOND_NOTEBOOK = "06 (beyond the report)"
ALTERNATIVES_NOTEBOOK = "07 (alternatives and costs)"
BEYOND_NOTEBOOKS = ("06", "07")
"""Numbers of the notebooks beyond the report, left out of the default run of a profile whose
``beyond.with_study`` is false (the demo: they would double its time; ``make beyond`` runs them)."""

HISTORY_FILE = "history.csv"
START_PHASE = "start"
"""``history.csv``'s phase of the row (epoch 0) that scores the untrained start on the validation split."""
LAST_FILE = "darionet_last.pt"
BEST_FILE = "darionet_best.pt"
TABLE1 = "table1"
TABLE2 = "table2_judge_transfer"
SCALE_SWEEP = "scale_sweep"
LOSS_ABLATION = "loss_ablation"
TABLE3 = "table3_classifier_vs_sr"
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
    """``runs/<p>/results/<name><suffix>.csv``, ``name`` being ``per_image`` or ``summary``."""
    return paths.results_dir(config.profile) / f"{name}{results_suffix(config)}.csv"


def read_results(config: Config) -> EvalRun:
    """The per-image and summary results written by :func:`dario_utils.evaluation.evaluate.evaluate`."""
    files = [eval_results_path(config, name) for name in ("per_image", "summary")]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"no results at {file}: run notebook 02 (baselines) first")
    return EvalRun(pd.read_csv(files[0], dtype={"image": str, "wnid": str}), pd.read_csv(files[1]))


def history_path(profile: str) -> Path:
    """``runs/<p>/results/history.csv``, written by notebook 03."""
    return paths.results_dir(profile) / HISTORY_FILE


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


def examples_path(profile: str) -> Path:
    """``runs/<p>/results/examples.npz``, written by notebook 04."""
    return paths.results_dir(profile) / "examples.npz"


def table_path(profile: str, name: str) -> Path:
    """``runs/<p>/figures/<name>.csv``: a table of notebooks 02, 04, 06 or 07."""
    return paths.figures_dir(profile) / f"{name}.csv"


def per_class_path(profile: str, model: str) -> Path:
    """``runs/<p>/figures/per_class_<model>.csv``, written by notebooks 02 and 04."""
    return table_path(profile, f"per_class_{model}")


def per_image_path(profile: str) -> Path:
    """``runs/<p>/results/per_image.csv``: the per-image results on the test split judged by the teacher
    (:func:`eval_results_path` of the default split and judge), written by notebooks 02 and 04."""
    return paths.results_dir(profile) / "per_image.csv"


def read_table(profile: str, name: str, notebook: str) -> pd.DataFrame:
    """The table ``name`` of :func:`table_path`; :class:`MissingResultError` naming ``notebook`` where it is missing."""
    return pd.read_csv(require(table_path(profile, name), notebook))
