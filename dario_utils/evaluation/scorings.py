"""The log of every scoring of a test split or fold (``figures/test_scorings.csv``, committed).

A test split is scored once per chosen recipe; recipes are picked on validation images.
Each scoring appends one row (:data:`SCORING_COLUMNS`): when, the profile, a hash of the
resolved recipe (:func:`recipe_hash`), the training seed, the fold (``-`` for the profile's
own split), the commit, the judge, the images scored, DarioNet's top-1 and the share of the
gap it recovers against bicubic and against bilinear. The results say how many scorings
stand behind a headline by reading it (:func:`scorings_of`).
"""
from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import pandas as pd

from dario_utils.core import fileio
from dario_utils.core.config import Config
from dario_utils.core.paths import RunLayout
from dario_utils.core.runtime import git_commit

SCORING_COLUMNS = ["date", "profile", "recipe", "seed", "fold", "commit", "judge", "n_images", "top1",
                   "gap_bicubic", "gap_bilinear"]
RECIPE_SECTIONS = ("data", "teacher", "sr", "train")
"""The parts of a profile that make the trained model (not where it runs, nor how it is scored)."""


NEUTRAL_KEYS: dict[str, dict[str, object]] = {"train": {"extra_teachers": []}}
"""Keys added after recipes were hashed, each with the value that leaves a recipe as it was: at that
value a key is left out of the hash, so the results published before it keep their recipe."""


def recipe_hash(config: Config) -> str:
    """12 hex digits of SHA-256 over the profile's :data:`RECIPE_SECTIONS`, resolved (less the
    :data:`NEUTRAL_KEYS` at their neutral values)."""
    recipe = {section: {key: value for key, value in getattr(config, section).__dict__.items()
                        if key not in NEUTRAL_KEYS.get(section, {}) or value != NEUTRAL_KEYS[section][key]}
              for section in RECIPE_SECTIONS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]


def log_scoring(config: Config, fold: str, judge: str, n_images: int, top1: float,
                gap_bicubic: float | None, gap_bilinear: float | None) -> pd.DataFrame:
    """Append one scoring of DarioNet on test images to the log (:attr:`~dario_utils.core.paths.RunLayout.scorings_log`)."""
    row = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "profile": config.profile, "recipe": recipe_hash(config),
           "seed": config.train.seed, "fold": fold, "commit": git_commit(), "judge": judge, "n_images": n_images,
           "top1": top1, "gap_bicubic": gap_bicubic, "gap_bilinear": gap_bilinear}
    path = config.layout.scorings_log
    log = pd.concat([read_scorings(path), pd.DataFrame([row], columns=SCORING_COLUMNS)], ignore_index=True)
    fileio.write_csv(log, path)
    return log


def read_scorings(path: Path) -> pd.DataFrame:
    """Every scoring logged at ``path`` (an empty table before the first)."""
    if not path.is_file():
        return pd.DataFrame(columns=SCORING_COLUMNS)
    return pd.read_csv(path, dtype={"fold": str, "recipe": str, "commit": str})


def scorings_of(layout: RunLayout, recipe: str | None = None) -> pd.DataFrame:
    """The scorings of ``layout``'s profile in its log (of one ``recipe`` hash where given)."""
    log = read_scorings(layout.scorings_log)
    log = log[log["profile"] == layout.profile]
    return log if recipe is None else log[log["recipe"] == recipe]
