"""What made a run folder's tables and figures (``provenance.json``), and which data they are of.

Data are told apart by content, never by the folder they lie in: by the manifests' fingerprint
(their paths are relative to the data root) and the sha256 of the listed images' bytes
(``images_sha256``, recorded by notebook 01 in the manifests' ``meta.json``), so the same images
copied elsewhere are the same data.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from dario_utils.core import paths
from dario_utils.core.config import Config
from dario_utils.core.paths import RunLayout
from dario_utils.core.result_files import TABLE1
from dario_utils.core.runtime import cpu_name, git_commit, working_tree_state
from dario_utils.data.dataset import resolve_data_root
from dario_utils.evaluation.scorings import recipe_hash
from dario_utils.figures.readme import by_figure_number, PROVENANCE_FILE

DATA_FINGERPRINTS = {"images_sha256": "images", "manifests_sha256": "manifests"}
"""The provenance keys that identify the data by content, and their names in a refusal."""


def manifests_fingerprint(layout: RunLayout) -> str | None:
    """Short sha256 over the contents of ``runs/<profile>/manifests/{train,val,test}.csv`` (paths relative
    to the data root: the same wherever it lies); None if one is missing."""
    digest = hashlib.sha256()
    for split in ("train", "val", "test"):
        manifest = layout.manifest(split)
        if not manifest.is_file():
            return None
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:12]


def _manifests_meta(layout: RunLayout) -> dict:
    """``runs/<profile>/manifests/meta.json`` (empty where there is none)."""
    try:
        return json.loads(layout.manifests_meta.read_text()) if layout.manifests_meta.is_file() else {}
    except (OSError, ValueError):
        return {}


def images_fingerprint(layout: RunLayout) -> str | None:
    """The sha256 of the bytes of the images ``runs/<profile>/manifests/`` lists, as notebook 01 recorded it
    (:func:`dario_utils.data.dataset.write_manifests`); None for manifests of an older version."""
    return _manifests_meta(layout).get("images_sha256")


def table1_models(folder: Path) -> list[str]:
    """The ``model`` column of ``folder``'s Table 1 (empty where there is none)."""
    table = folder / f"{TABLE1}.csv"
    if not table.is_file():
        return []
    with table.open(newline="") as handle:
        return [row["model"] for row in csv.DictReader(handle) if row.get("model")]


def figure_files(folder: Path) -> list[str]:
    """The figures of ``folder``: its ``fig*.png`` file names, by figure number."""
    return sorted((p.name for p in folder.glob("fig*.png")), key=by_figure_number)


def recorded_data_root(config: Config, given: str | None = None) -> str:
    """The data root as recorded: relative to the project root where it lies inside it (the demo
    profile's shipped images), else as the user gave it (``given``: ``--data-root``; else the
    profile's ``data_root``), so that a committed folder does not name the machine's folders. It
    only tells the reader where the data were: data are compared by content (:func:`other_data`)."""
    root = resolve_data_root(config)
    if root.is_relative_to(paths.PROJECT_ROOT):
        return root.relative_to(paths.PROJECT_ROOT).as_posix()
    return given or str(config.data_root)


def current_data(config: Config, split: bool = True) -> dict[str, str | None]:
    """The fingerprints (:data:`DATA_FINGERPRINTS`) of the data of ``runs/<profile>/manifests/``. Without
    ``split`` (a run whose notebook 01 will make the split anew) only where those manifests were made
    from the run's data root; else none: the run's data are known once its notebook 01 made the split."""
    if not split:
        made_from = _manifests_meta(config.layout).get("data_root")
        try:
            same_root = made_from is not None and Path(made_from) == resolve_data_root(config)
        except ValueError:  # no data root: the run fails on it before any notebook
            same_root = False
        if not same_root:
            return {}
    return {"images_sha256": images_fingerprint(config.layout),
            "manifests_sha256": manifests_fingerprint(config.layout)}


def other_data(record: dict, current: dict) -> str | None:
    """Why the data of provenance ``record`` differ from those of ``current`` (fingerprints), or None:
    a fingerprint that both hold and that differs. Never the data root, which may differ for the same images."""
    for key, what in DATA_FINGERPRINTS.items():
        if record.get(key) and current.get(key) and record[key] != current[key]:
            return f"other data: {what} {current[key]}, published {record[key]}"
    return None


def of_other_data(folder: Path, config: Config, split: bool = True) -> bool:
    """Whether ``folder``'s provenance records other data than ``config``'s: other content than
    ``runs/<profile>/manifests/`` lists (:func:`current_data`; without ``split`` only where those
    manifests are of the run's data root). False where ``folder`` has no provenance."""
    record = read_provenance(folder)
    return bool(record) and other_data(record, current_data(config, split)) is not None


def read_provenance(folder: Path) -> dict | None:
    """``folder/provenance.json``; None where there is none (results of an older runner)."""
    source = folder / PROVENANCE_FILE
    return json.loads(source.read_text()) if source.is_file() else None


def provenance(config: Config, ran: list[str], folder: Path, data_root: str | None = None,
               seconds: dict[str, float] | None = None) -> dict:
    """What made the tables and figures in ``folder``: profile, data root as given, manifests and images
    fingerprints, notebooks run, commit, date, Table 1 rows, figures. The notebooks listed are ``ran``
    (their stems) and, where ``folder`` holds an earlier run's results on the same data (the demo's
    notebook 06 runs on its own), those of that run too, with the seconds each took.
    ``data_root``: as the user gave it (:func:`recorded_data_root`). The recipe is the hash of the resolved
    profile's recipe (:func:`dario_utils.evaluation.scorings.recipe_hash`), given whole under ``resolved_profile``;
    ``dirty`` says whether the checkout differed from ``commit`` (``diff_sha256``: that difference);
    ``commits`` names the commit that ran each notebook listed (an earlier run's own, for its notebooks)."""
    earlier_run = {} if of_other_data(folder, config) else (read_provenance(folder) or {})
    given_root = recorded_data_root(config, data_root)
    commit = git_commit()
    earlier_commits = earlier_run.get("commits") or {nb: earlier_run.get("commit") for nb in earlier_run.get("notebooks", [])}
    return {
        "profile": config.profile,
        "data_root": given_root,
        "manifests_sha256": manifests_fingerprint(config.layout),
        "images_sha256": images_fingerprint(config.layout),
        "notebooks": sorted(set(ran) | set(earlier_run.get("notebooks", []))),
        "commit": commit,
        "commits": {**earlier_commits, **{nb: commit for nb in ran}},
        **working_tree_state(),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "recipe": recipe_hash(config),
        "resolved_profile": {**config.to_dict(), "data_root": given_root},
        "seconds": {**earlier_run.get("seconds", {}), **(seconds or {})},
        "cpu": cpu_name(),
        "threads": config.num_threads or os.cpu_count(),
        "table1_models": table1_models(folder),
        "figures": figure_files(folder),
    }
