"""Every location of the study, resolved from the project root.

Generated data lives under the output root (the project root unless the
``DARIO_OUTPUT_ROOT`` environment variable names another folder, as the tests do):
``runs/<profile>/`` for manifests, checkpoints, results and the tables and figures the
notebooks write, ``figures/<profile>/`` for the tables and figures the runner published.
Downloaded or converted weights go to the weights cache (``DARIO_WEIGHTS_CACHE``, default
``~/.cache/darionet``).
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = PROJECT_ROOT / "profiles"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


def output_root() -> Path:
    """Folder under which ``runs/`` and ``figures/`` are written."""
    return Path(os.environ.get("DARIO_OUTPUT_ROOT", PROJECT_ROOT)).resolve()


def run_dir(profile: str) -> Path:
    """``runs/<profile>/``: manifests, checkpoints, results, executed notebooks, the run's tables and figures."""
    return output_root() / "runs" / profile


def manifests_dir(profile: str) -> Path:
    return run_dir(profile) / "manifests"


def checkpoints_dir(profile: str) -> Path:
    return run_dir(profile) / "checkpoints"


def results_dir(profile: str) -> Path:
    return run_dir(profile) / "results"


def figures_dir(profile: str) -> Path:
    """``runs/<profile>/figures/``: Table 1, per-class reports and figures, as the notebooks write them.

    The runner (:mod:`dario_utils.runner.reproduce`) publishes this folder as :func:`published_figures_dir`
    once every notebook of a run has succeeded.
    """
    return run_dir(profile) / "figures"


def published_figures_dir(profile: str) -> Path:
    """``figures/<profile>/``: the tables and figures of the last complete run, with their provenance."""
    return output_root() / "figures" / profile


def scorings_log() -> Path:
    """``figures/test_scorings.csv``: every scoring of a test split or fold, of every profile."""
    return output_root() / "figures" / "test_scorings.csv"


def crossval_dir(profile: str) -> Path:
    """``figures/<profile>/crossval/``: the folds of the cross-validation, each committed as it finishes."""
    return published_figures_dir(profile) / "crossval"


def weights_cache() -> Path:
    """Where converted or downloaded weights are cached."""
    default = Path.home() / ".cache" / "darionet"
    return Path(os.environ.get("DARIO_WEIGHTS_CACHE", default)).expanduser()


def profile_file(name: str) -> Path:
    return PROFILES_DIR / f"{name}.yaml"
