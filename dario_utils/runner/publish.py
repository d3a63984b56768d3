"""Publishing a run: its folder recorded (``provenance.json``, README, the executed notebooks and DarioNet's
training history beside the figures) and copied in place of
``figures/<profile>/`` unless that holds a fuller run's results; with ``--in-place``, the committed
notebooks refreshed and the trained results recorded (:mod:`dario_utils.runner.recorded`)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from dario_utils.core import paths
from dario_utils.core.config import Config
from dario_utils.core.fileio import write_text
from dario_utils.core.result_files import BEYOND_NOTEBOOKS
from dario_utils.figures.readme import PROVENANCE_FILE, reproduce_command, write_readme
from dario_utils.runner import recorded
from dario_utils.runner.clean import clean_notebook
from dario_utils.runner.provenance import figure_files, other_data, provenance, read_provenance, table1_models


def publish_refusals(staged: Path, published: Path) -> list[str]:
    """Why ``staged`` must not replace ``published``: other data (by content:
    :func:`~dario_utils.runner.provenance.other_data`), or rows or figures it would lose."""
    reasons = []
    new, old = read_provenance(staged) or {}, read_provenance(published)
    other = other_data(old, new) if old else None
    if other:
        reasons.append(other)
    staged_models = set(table1_models(staged))
    rows = [model for model in table1_models(published) if model not in staged_models]
    if rows:
        reasons.append(f"rows {', '.join(rows)} would be lost")
    lost = sorted(set(figure_files(published)) - set(figure_files(staged)))
    if lost:
        reasons.append(f"figures {', '.join(lost)} would be lost")
    return reasons


def _copy_folder(source: Path, target: Path) -> None:
    """Copy ``source`` in place of ``target``: into a sibling first, then swapped in, so that
    ``target`` is never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    new, old = (target.with_name(f".{target.name}.{suffix}") for suffix in ("new", "old"))
    for leftover in (new, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(source, new)
    if target.exists():
        target.rename(old)
    new.rename(target)
    if old.exists():
        shutil.rmtree(old)


def publish_figures(config: Config, ran: list[str], overwrite: bool, data_root: str | None,
                    seconds: dict[str, float]) -> bool:
    """Record the run folder's provenance (``ran``: the notebooks' stems; ``data_root`` as the user gave
    it, each notebook's ``seconds``) and write its README, then copy it in place of ``figures/<profile>/``
    unless that holds a fuller run's results (and not ``overwrite``): then print why and return False."""
    profile = config.profile
    folder = config.layout.figures
    store_notebooks(config, ran)
    if TRAINING_NOTEBOOK in ran:
        shutil.copyfile(config.layout.history, folder / paths.HISTORY_FILE)
    record = provenance(config, ran, folder, data_root, seconds)
    write_text(folder / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")
    beyond_apart = not config.beyond.with_study and any(nb[:2] in BEYOND_NOTEBOOKS for nb in record["notebooks"])
    write_readme(folder, profile, reproduce_command(profile, data_root, beyond_apart))
    final = config.layout.published_figures
    reasons = [] if overwrite else publish_refusals(folder, final)
    if reasons:
        print(f"error: figures/{profile}/ holds the results of a fuller run ({'; '.join(reasons)}); "
              f"this run's tables and figures are in {folder}: pass --overwrite to replace them", file=sys.stderr)
        return False
    _copy_folder(folder, final)
    return True


TRAINING_NOTEBOOK = "03_finetune"
"""The notebook that trains DarioNet: a run of it publishes the training history (``history.csv``) too."""


def store_notebooks(config: Config, ran: list[str]) -> None:
    """The executed copies of the notebooks ``ran`` (their stems), cleaned
    (:func:`~dario_utils.runner.clean.clean_notebook`), into the run folder's
    :data:`~dario_utils.core.paths.EXECUTED_NOTEBOOKS`, beside the figures they made; an earlier run's copies
    of other notebooks on the same data stay. Not for :data:`~dario_utils.core.paths.STORED_OUTPUTS_PROFILE`,
    whose executed notebooks are the committed ones."""
    if config.profile == paths.STORED_OUTPUTS_PROFILE:
        return
    target = config.layout.figures / paths.EXECUTED_NOTEBOOKS
    target.mkdir(parents=True, exist_ok=True)
    for stem in ran:
        _store_cleaned(config.layout.executed_notebooks / f"{stem}.ipynb", target / f"{stem}.ipynb")


def _store_cleaned(executed: Path, stored: Path) -> None:
    """An executed notebook, cleaned (:func:`~dario_utils.runner.clean.clean_notebook`), copied to ``stored``."""
    clean_notebook(executed)
    shutil.copyfile(executed, stored)


def refresh_committed(config: Config, selected: list[Path]) -> None:
    """Once every notebook succeeded and the results were published (``--in-place``): the executed
    copies, cleaned (:func:`~dario_utils.runner.clean.clean_notebook`), in place of ``selected``, and the
    trained results recorded (:func:`dario_utils.runner.recorded.record`)."""
    for nb in selected:
        _store_cleaned(config.layout.executed_notebooks / nb.name, nb)
    print(f"refreshed the outputs stored in {', '.join(nb.name for nb in selected)}")
    try:
        print(f"recorded the trained results in {recorded.record(config.layout, accept_moved=True).name}")
    except FileNotFoundError as err:  # a run without notebooks 03-04 has no trained results
        print(f"no trained results recorded: {err}")
