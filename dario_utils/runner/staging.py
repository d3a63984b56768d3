"""The run folder (``runs/<profile>/figures/``) made ready for a run's notebooks, and cleared of what
another split's run left there.

A run keeps that folder unless it holds results of other data than the manifests the run starts
from (where those were made from the run's data root; else the run's data are known only once its
notebook 01 made the split); then it starts it as a copy of the published folder where that is
not of other data (so that a run of some notebooks, ``--only 06`` say, publishes the others'
results too), or empty. Where the run's notebook 01 made another split than the folder's
results were of, the run removes every file it did not write.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from dario_utils.core.config import Config
from dario_utils.runner.provenance import of_other_data

FileStates = dict[Path, tuple[int, int, int]]
"""Each file of a folder with its inode, modification time and size (what a rewrite changes)."""


def open_run_folder(config: Config, makes_split: bool = False) -> Path:
    """The run's folder (:attr:`~dario_utils.core.paths.RunLayout.figures`), ready for the notebooks: as it is
    unless it holds results of other data than the run's, as far as they are known before the run
    (:func:`~dario_utils.runner.provenance.current_data`; with ``makes_split``, the run's notebook 01
    makes the split anew); else (missing, or of other data) started as a copy of the published folder
    where that is not of other data (so a run of some notebooks keeps the others' results), or empty.
    The split the run makes is compared once it made it (:func:`settle_run_folder`, :func:`drop_leftovers`)."""
    folder = config.layout.figures
    if folder.is_dir() and not of_other_data(folder, config, split=not makes_split):
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    published = config.layout.published_figures
    if published.is_dir() and not of_other_data(published, config, split=not makes_split):
        shutil.copytree(published, folder)
    else:
        folder.mkdir(parents=True)
    return folder


def file_states(folder: Path) -> FileStates:
    """Each file under ``folder`` with its inode, modification time and size."""
    states = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            states[path] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return states


def _drop_unwritten(before: FileStates, folder: Path) -> None:
    """Remove the files of ``folder`` that the run did not write (``before``: :func:`file_states` at its start)."""
    now = file_states(folder)
    for path, state in before.items():
        if now.get(path) == state:
            path.unlink()


def drop_leftovers(folder: Path, config: Config, before: FileStates) -> None:
    """Where ``folder``'s provenance, from before this run, records other data than the run's
    (its notebook 01 made another split), remove the files the run did not write (``before``:
    :func:`file_states` at its start), that provenance included."""
    if of_other_data(folder, config):
        _drop_unwritten(before, folder)


def settle_run_folder(folder: Path, config: Config, before: FileStates) -> None:
    """Once the run's notebook 01 made the split, which tells the run's data: where ``folder`` holds
    results of other data, remove the files the run did not write and take those of the published
    folder where that is of the run's data (the same images, wherever they lie), so that the
    notebooks after 01 find the other notebooks' results of these data as a run without a split would."""
    if not of_other_data(folder, config):
        return
    _drop_unwritten(before, folder)
    published = config.layout.published_figures
    if not published.is_dir() or of_other_data(published, config):
        return
    for source in sorted(published.rglob("*")):
        target = folder / source.relative_to(published)
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
