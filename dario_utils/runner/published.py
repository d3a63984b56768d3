"""Checks of a profile's published results (``figures/<profile>/``) that need no training.

``make test`` runs them on every profile whose results are committed
(``tests/test_published_results.py``), so that a headline nobody reruns in CI is still guarded:

- the gaps Table 1's notes state are the ones its rows give (:func:`stated_gaps`);
- each model's top-1 in Table 1 is the one its per-class file gives (an independent file of
  the same run: doctoring one of them alone is caught);
- DarioNet beats the same table's untrained start, the pretrained SR, by Table 1's margin
  floors (:func:`headline_floors`: a DarioNet with half the training effect fails);
- the provenance names the recipe of the profile as it is now (:func:`dario_utils.evaluation.scorings.recipe_hash`);
- each row of ``seed_runs.csv`` that names its source, a committed Table 1, holds that table's
  numbers (:func:`seed_run_checks`), and so does each row of the variants log that names a committed
  history or Table 1, to the digits it gives (:func:`variant_checks`).

Apart, for every profile whose cross-validation has published folds (:func:`crossval_checks`), with or
without a Table 1: its pooled estimate is the one the folds' per-image results give, and so is its
comparison with the profile it names in ``crossval.compare_with``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dario_utils.core import result_files
from dario_utils.core.config import Config
from dario_utils.evaluation import scorings, tables
from dario_utils.models.study_models import DARIONET, PRETRAINED_SR
from dario_utils.runner import recorded

GAP_NOTE = re.compile(r"DarioNet recovers (-?[\d.]+)%.*?\(original vs (\w+)")


def stated_gaps(markdown: str) -> dict[str, float]:
    """The shares of the gap Table 1's notes state, by baseline (``bicubic``, ``bilinear``), as fractions."""
    return {reference: float(share) / 100 for share, reference in GAP_NOTE.findall(markdown)}


SEED_RUNS = "seed_runs.csv"
"""A profile's DarioNet and its start over training seeds (``figures/<p>/seed_runs.csv``)."""


SEED_RUN_SOURCE = re.compile(r"(table1\.csv) of this folder|(figures/[\w.-]+/table1\.csv)")
"""A ``seed_runs.csv`` source that names a committed Table 1: this folder's, or another published profile's."""
SEED_RUN_COLUMNS = ("top1", "agreement", "avg_ce")


def seed_run_checks(folder: Path, project_root: Path) -> list[dict]:
    """One check per row of ``folder``'s ``seed_runs.csv`` whose source names a committed Table 1
    (:data:`SEED_RUN_SOURCE`; ``figures/...`` under ``project_root``): its :data:`SEED_RUN_COLUMNS` are that
    table's row of the same model."""
    if not (folder / SEED_RUNS).is_file():
        return []
    rows = []
    for run in pd.read_csv(folder / SEED_RUNS).itertuples():
        match = SEED_RUN_SOURCE.match(str(run.source))
        if not match:
            continue
        source = folder / match[1] if match[1] else project_root / match[2]
        table = pd.read_csv(source).set_index("model")
        values = [(getattr(run, column), float(table.loc[run.model, column])) for column in SEED_RUN_COLUMNS]
        rows.append(_check(f"seed {run.seed}, {run.model}: seed_runs.csv = {match[0]}",
                           ", ".join(f"{a:.4f} vs {b:.4f}" for a, b in values),
                           all(abs(a - b) < 1e-9 for a, b in values)))
    return rows


VARIANTS = "variants.csv"
"""Every recipe variant tried on a profile, with the source of its numbers (``figures/<p>/variants.csv``)."""
VARIANT_SOURCE = re.compile(r"figures/([\w.-]+)/(history|table1)\.csv")
"""A committed file a variants row's source names: a profile's training history or Table 1."""
VARIANT_COLUMNS = {"history": {"best_epoch": "epoch", "val_loss": "val_loss", "val_agreement": "agreement",
                               "val_psnr_db": "psnr"},
                   "table1": {"test_top1": "top1", "test_agreement": "agreement", "test_ce": "avg_ce",
                              "test_top5": "top5", "test_psnr_db": "avg_psnr"}}
"""The variants log's columns each committed file gives, with that file's column."""


def _as_given(given: str, value: float) -> bool:
    """Whether ``value`` rounds to ``given`` at the digits ``given`` has."""
    decimals = len(given.partition(".")[2])
    return abs(float(given) - value) <= 0.5 * 10 ** -decimals + 1e-12


def variant_checks(folder: Path, project_root: Path) -> list[dict]:
    """One check per row of ``folder``'s variants log and committed file its source names
    (:data:`VARIANT_SOURCE`, under ``project_root``): the row's :data:`VARIANT_COLUMNS`, to the digits it gives,
    are that file's DarioNet (Table 1) or best validation epoch (history), or for the untrained start (0
    epochs) the pretrained SR's row and the history's start."""
    if not (folder / VARIANTS).is_file():
        return []
    rows = []
    for row in pd.read_csv(folder / VARIANTS, dtype=str, keep_default_na=False).itertuples():
        start = row.epochs == "0"
        for profile, kind in VARIANT_SOURCE.findall(row.source):
            source = project_root / "figures" / profile / f"{kind}.csv"
            frame = pd.read_csv(source)
            if kind == "table1":
                found = frame.set_index("model").loc[PRETRAINED_SR if start else DARIONET]
            else:
                found = (frame[frame["phase"] == result_files.START_PHASE].iloc[0] if start
                         else result_files.best_epoch_row(frame))
            given = {column: getattr(row, column) for column in VARIANT_COLUMNS[kind] if getattr(row, column)}
            rows.append(_check(f"variants log, {row.profile} ({row.variant}): = figures/{profile}/{kind}.csv",
                               ", ".join(f"{column} {value}" for column, value in given.items()),
                               all(_as_given(value, float(found[VARIANT_COLUMNS[kind][column]]))
                                   for column, value in given.items())))
    return rows


def headline_floors(config: Config, folder: Path) -> dict[str, float]:
    """Table 1's margin floors for the published DarioNet over its start: with ``seed_runs.csv``, the rule of
    :data:`dario_utils.runner.recorded.MARGIN_FLOORS` (:func:`~dario_utils.runner.recorded.floor_by_rule`) on those seed
    runs, the profile's own seed as the recorded one; else the demo's floors, which
    ``tests/test_recorded.py`` checks against the demo's spread. Read from files other than Table 1, so
    that a doctored Table 1 cannot move them."""
    if not (folder / SEED_RUNS).is_file():
        return recorded.MARGIN_FLOORS["table1"]
    runs = pd.read_csv(folder / SEED_RUNS).set_index(["seed", "model"])
    floors = {}
    for metric in recorded.MARGIN_FLOORS["table1"]:
        sign = -1 if metric == "avg_ce" else 1
        margins = {seed: sign * (runs.loc[(seed, DARIONET), metric] - runs.loc[(seed, PRETRAINED_SR), metric])
                   for seed in runs.index.get_level_values("seed").unique()}
        floor = recorded.floor_by_rule(margins[config.train.seed], min(margins.values()))
        if floor is not None:
            floors[metric] = floor
    return floors


def _check(name: str, value: str, ok: bool) -> dict:
    return {"check": name, "value": value, "ok": bool(ok)}


def published_checks(config: Config, folder: Path | None = None) -> pd.DataFrame:
    """Every check of the module's docstring on ``folder`` (default ``figures/<profile>/``): one row per
    check with the values compared and whether it holds."""
    folder = folder or config.layout.published_figures
    table = pd.read_csv(folder / f"{result_files.TABLE1}.csv").set_index("model")
    rows = []
    stated = stated_gaps((folder / f"{result_files.TABLE1}.md").read_text())
    rows.append(_check("Table 1's notes state the gap", ", ".join(stated) or "none", "bicubic" in stated))
    for reference, share in stated.items():
        recomputed = tables.gap_closed(table.reset_index(), reference)
        rows.append(_check(f"stated gap vs {reference} = Table 1's rows", f"{share:.3f} vs {recomputed:.4f}",
                           recomputed is not None and abs(share - recomputed) < 0.0005 + 1e-9))
    for model in table.index:
        per_class = pd.read_csv(folder / f"per_class_{model}.csv")
        top1 = float(np.sum(per_class["recall"] * per_class["support"]) / per_class["support"].sum())
        rows.append(_check(f"{model}: Table 1's top-1 = its per-class file's", f"{table.loc[model, 'top1']:.4f} vs "
                           f"{top1:.4f}", abs(top1 - table.loc[model, "top1"]) < 1e-9))
    for metric, floor in headline_floors(config, folder).items():
        sign = -1 if metric == "avg_ce" else 1
        margin = sign * (table.loc[DARIONET, metric] - table.loc[PRETRAINED_SR, metric])
        rows.append(_check(f"DarioNet beats its start (the pretrained SR) on {metric} by {floor:.3f}",
                           f"{margin:+.3f}", margin >= floor))
    provenance = json.loads((folder / "provenance.json").read_text())
    recipe = scorings.recipe_hash(config)
    rows.append(_check("provenance names the profile's recipe", f"{provenance.get('recipe')} vs {recipe}",
                       provenance.get("recipe") == recipe))
    rows += seed_run_checks(folder, config.layout.output_root) + variant_checks(folder, config.layout.output_root)
    return pd.DataFrame(rows)


def crossval_checks(config: Config) -> pd.DataFrame:
    """The published cross-validation (``figures/<p>/crossval/``) against its folds' per-image results: the
    pooled estimate, and the comparison with ``crossval.compare_with`` against both profiles' per-image results."""
    from dario_utils.evaluation import crossval  # the crossval stage sits above this check's inputs

    folder = config.layout.crossval
    per_image, _ = crossval.read_folds(config)
    rows = _recomputed(pd.read_csv(folder / "crossval.csv"), crossval.pooled_estimate(config, per_image),
                       ("top1_darionet", "gap_vs_bicubic", "gap_vs_bilinear", "gap_vs_bicubic_low",
                        "gap_vs_bicubic_high"), "cross-validation")
    other = crossval.compared_profile(config)
    if other is not None:
        other_per_image, _ = crossval.read_folds(other)
        published = crossval.versus_file(config)
        rows.append(_check(f"the comparison with {other.profile} is published", str(published.name),
                           published.is_file() or not len(other_per_image)))
        if published.is_file():
            rows += _recomputed(pd.read_csv(published), crossval.paired_comparison(config, per_image, other_per_image),
                                ("n_images", "top1_darionet", "top1_darionet_other", "gap_difference",
                                 "gap_difference_low", "gap_difference_high", "mcnemar_this_only",
                                 "mcnemar_other_only"), f"against {other.profile}")
    return pd.DataFrame(rows)


def _recomputed(published: pd.DataFrame, again: pd.DataFrame, columns: Sequence[str], what: str) -> list[dict]:
    """One check per judge and column: the published value equals the one recomputed from per-image results
    (a judge in one table only fails)."""
    published, again = published.set_index("judge"), again.set_index("judge")
    rows = [_check(f"{what}: the same judges as the per-image results", f"{sorted(published.index)} vs "
                   f"{sorted(again.index)}", sorted(published.index) == sorted(again.index))]
    for judge in again.index.intersection(published.index):
        for column in columns:
            value, recomputed = float(published.loc[judge, column]), float(again.loc[judge, column])
            rows.append(_check(f"{what}, {judge}, {column} = the folds' per-image results",
                               f"{value:.4f} vs {recomputed:.4f}", abs(value - recomputed) < 1e-9))
    return rows
