"""Run the study's numbered notebooks in order with papermill.

    python -m dario_utils.runner.reproduce --profile demo
    python -m dario_utils.runner.reproduce --profile imagenet-sample --data-root ../shared/imagenet-sample-dev
    python -m dario_utils.runner.reproduce --profile demo --only 06,07   # the notebooks beyond the report
                                                                   # (not in the demo's default run)
    python -m dario_utils.runner.reproduce --profile demo --all --in-place   # refresh the committed notebooks
                                                                      # (once every notebook succeeded)

Machines without Jupyter (the GPU machine) run the same with an in-process engine from
``tools/gpu/`` (``python -m tools.gpu.reproduce_inline``), passed to :func:`run` as ``engine``.

Executed copies go to ``runs/<profile>/notebooks/``. The notebooks write their tables and
figures to the run's own folder, ``runs/<profile>/figures/`` (:func:`dario_utils.core.paths.figures_dir`),
which keeps every notebook's latest results of one data. Data are told apart by content, never
by the folder they lie in: by the manifests' fingerprint (their paths are relative to the data
root) and the sha256 of the listed images' bytes (``images_sha256``, recorded by notebook 01 in
the manifests' ``meta.json``), so the same images copied elsewhere are the same data. A run
keeps that folder unless it holds results of other data than the manifests the run starts from
(where those were made from the run's data root; else the run's data are known only once its
notebook 01 made the split); then it starts it as a copy of the published folder where that is
not of other data (so that a run of some notebooks, ``--only 06`` say, publishes the others'
results too), or empty. Where the run's notebook 01 made another split than the folder's
results were of, the run removes every file it did not write. Only when every notebook
succeeded is the folder published as ``figures/<profile>/``, so a failed run keeps the previous
complete results. The first failing notebook stops the run, naming the notebook and the cell;
the exit code is then 1, or 2 (one line, the error's message) where the notebook raised an
error of bad input (:data:`INPUT_ERRORS`: a data folder without images, say).

Before publishing, the runner writes ``provenance.json`` (profile, data root as given,
manifests and images fingerprints, notebooks run, commit, date, Table 1 rows, figures) into the
run's folder and the "Made by" section of its README. It then refuses to replace a published
folder that holds the results of a fuller run: other data (a fingerprint differs from its
provenance), or Table 1 rows or figures this run lacks. The run's results then stay in
``runs/<profile>/figures/`` only and the exit code is 3; ``--overwrite`` publishes anyway.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NamedTuple

from dario_utils.core import paths
from dario_utils.core.config import Config, ConfigError, load_config
from dario_utils.core.fileio import write_text
from dario_utils.core.result_files import BEYOND_NOTEBOOKS
from dario_utils.core.runtime import cpu_name, git_commit, working_tree_state
from dario_utils.data.dataset import resolve_data_root
from dario_utils.evaluation.scorings import recipe_hash
from dario_utils.figures.readme import by_figure_number, PROVENANCE_FILE, reproduce_command, write_readme
from dario_utils.runner import recorded

NO_PROGRESS_ENV = "TQDM_DISABLE"
REFUSED = 3
"""Exit code of a run whose results were kept unpublished."""
SPLIT_NOTEBOOK = "01"
"""The notebook that makes the split (writes ``runs/<profile>/manifests/``): it tells the run's data."""
BAD_INPUT = 2
"""Exit code of bad input: a wrong argument or profile, or a notebook that raised one of :data:`INPUT_ERRORS`."""
INPUT_ERRORS = frozenset({"ConfigError", "DataError", "ImageReadError", "OutputNotWritableError", "TeacherWeightsError",
                          "CheckpointError", "CheckpointReadError", "MissingCheckpointError"})
"""Errors of bad input (by class name, as a notebook's failing cell reports them): their message says what to do."""

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (darionet)", "language": "python"}
"""The kernel ``make lab`` installs (the Makefile's ``--name`` and ``--display-name``); stored in
the committed notebooks so that opening them in JupyterLab changes nothing."""

_OVERWRITTEN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
"""A line's text up to its last carriage return not ending it (nbval's pattern: what a terminal overwrites)."""


def default_notebooks(config: Config) -> list[str] | None:
    """The notebook numbers a run without ``--only`` or ``--all`` executes: every one (None), or
    all but :data:`~dario_utils.core.result_files.BEYOND_NOTEBOOKS` where the profile's ``beyond.with_study``
    is false."""
    if config.beyond.with_study:
        return None
    return [nb.name[:2] for nb in notebooks() if nb.name[:2] not in BEYOND_NOTEBOOKS]


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``), optionally only those whose number is listed."""
    found = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = set(only) - {nb.name[:2] for nb in found}
        if unknown:
            raise ConfigError(f"--only names no notebook: {', '.join(sorted(unknown))} "
                              f"(have {', '.join(nb.name[:2] for nb in found)})")
        found = [nb for nb in found if nb.name[:2] in only]
    return found


def _coalesce_streams(outputs: list) -> list:
    """One output per stream name (``stdout``, ``stderr``) at its first place, with what carriage
    returns overwrite removed (as nbval compares them); empty stream outputs dropped."""
    kept, streams = [], {}
    for output in outputs:
        if output.output_type != "stream":
            kept.append(output)
        elif output.text and output.name in streams:
            streams[output.name].text += output.text
        elif output.text:
            streams[output.name] = output
            kept.append(output)
    for output in streams.values():
        output.text = _OVERWRITTEN.sub("", output.text)
    return kept


def clean_notebook(path: Path) -> None:
    """Make an executed notebook fit to commit: it changes only when a result does.

    Drops papermill's metadata and execution timestamps; stores :data:`KERNELSPEC`, so JupyterLab
    rewrites nothing on opening; drops empty stream outputs and merges each cell's stream
    outputs into one per stream, as a terminal shows it, so a progress bar (tqdm, on stderr)
    keeps only its last state. The stderr stream itself stays: ``make test`` compares outputs
    with strict nbval, which fails on a cell whose run writes to a stream the stored cell lacks;
    merged and rendered exactly as nbval does, the stored outputs compare as before.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _coalesce_streams(cell.outputs)
    nbformat.write(nb, path)


def manifests_fingerprint(profile: str) -> str | None:
    """Short sha256 over the contents of ``runs/<profile>/manifests/{train,val,test}.csv`` (paths relative
    to the data root: the same wherever it lies); None if one is missing."""
    digest = hashlib.sha256()
    for split in ("train", "val", "test"):
        manifest = paths.manifests_dir(profile) / f"{split}.csv"
        if not manifest.is_file():
            return None
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:12]


def _manifests_meta(profile: str) -> dict:
    """``runs/<profile>/manifests/meta.json`` (empty where there is none)."""
    meta = paths.manifests_dir(profile) / "meta.json"
    try:
        return json.loads(meta.read_text()) if meta.is_file() else {}
    except (OSError, ValueError):
        return {}


def images_fingerprint(profile: str) -> str | None:
    """The sha256 of the bytes of the images ``runs/<profile>/manifests/`` lists, as notebook 01 recorded it
    (:func:`dario_utils.data.dataset.write_manifests`); None for manifests of an older version."""
    return _manifests_meta(profile).get("images_sha256")


def table1_models(folder: Path) -> list[str]:
    """The ``model`` column of ``folder/table1.csv`` (empty where there is none)."""
    table = folder / "table1.csv"
    if not table.is_file():
        return []
    with table.open(newline="") as handle:
        return [row["model"] for row in csv.DictReader(handle) if row.get("model")]


def figure_files(folder: Path) -> list[str]:
    """The figures of ``folder``: its ``fig*.png`` file names, by figure number."""
    return sorted((p.name for p in folder.glob("fig*.png")), key=by_figure_number)


def _data_root(config: Config, given: str | None = None) -> str:
    """The data root as recorded: relative to the project root where it lies inside it (the demo
    profile's shipped images), else as the user gave it (``given``: ``--data-root``; else the
    profile's ``data_root``), so that a committed folder does not name the machine's folders. It
    only tells the reader where the data were: data are compared by content (:func:`_other_data`)."""
    root = resolve_data_root(config)
    if root.is_relative_to(paths.PROJECT_ROOT):
        return root.relative_to(paths.PROJECT_ROOT).as_posix()
    return given or str(config.data_root)


DATA_FINGERPRINTS = {"images_sha256": "images", "manifests_sha256": "manifests"}
"""The provenance keys that identify the data by content, and their names in a refusal."""


def _current_data(config: Config, split: bool = True) -> dict[str, str | None]:
    """The fingerprints (:data:`DATA_FINGERPRINTS`) of the data of ``runs/<profile>/manifests/``. Without
    ``split`` (a run whose notebook 01 will make the split anew) only where those manifests were made
    from the run's data root; else none: the run's data are known once its notebook 01 made the split."""
    if not split:
        made_from = _manifests_meta(config.profile).get("data_root")
        try:
            same_root = made_from is not None and Path(made_from) == resolve_data_root(config)
        except ValueError:  # no data root: the run fails on it before any notebook
            same_root = False
        if not same_root:
            return {}
    return {"images_sha256": images_fingerprint(config.profile),
            "manifests_sha256": manifests_fingerprint(config.profile)}


def _other_data(record: dict, current: dict) -> str | None:
    """Why the data of provenance ``record`` differ from those of ``current`` (fingerprints), or None:
    a fingerprint that both hold and that differs. Never the data root, which may differ for the same images."""
    for key, what in DATA_FINGERPRINTS.items():
        if record.get(key) and current.get(key) and record[key] != current[key]:
            return f"other data: {what} {current[key]}, published {record[key]}"
    return None


def _of_other_data(folder: Path, config: Config, split: bool = True) -> bool:
    """Whether ``folder``'s provenance records other data than ``config``'s: other content than
    ``runs/<profile>/manifests/`` lists (:func:`_current_data`; without ``split`` only where those
    manifests are of the run's data root). False where ``folder`` has no provenance."""
    record = _read_provenance(folder)
    return bool(record) and _other_data(record, _current_data(config, split)) is not None


def provenance(config: Config, selected: list[Path], folder: Path, data_root: str | None = None,
               seconds: dict[str, float] | None = None) -> dict:
    """What made the tables and figures in ``folder``: see the module's docstring. The notebooks
    listed are those of this run and, where ``folder`` holds an earlier run's results on the same
    data (the demo's notebook 06 runs on its own), those of that run too, with the seconds each took.
    ``data_root``: as the user gave it (:func:`_data_root`). The recipe is the hash of the resolved
    profile's recipe (:func:`dario_utils.evaluation.scorings.recipe_hash`), given whole under ``resolved_profile``;
    ``dirty`` says whether the checkout differed from ``commit`` (``diff_sha256``: that difference)."""
    ran = [nb.stem for nb in selected]
    earlier_run = {} if _of_other_data(folder, config) else (_read_provenance(folder) or {})
    given_root = _data_root(config, data_root)
    return {
        "profile": config.profile,
        "data_root": given_root,
        "manifests_sha256": manifests_fingerprint(config.profile),
        "images_sha256": images_fingerprint(config.profile),
        "notebooks": sorted(set(ran) | set(earlier_run.get("notebooks", []))),
        "commit": git_commit(),
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


def _read_provenance(folder: Path) -> dict | None:
    """``folder/provenance.json``; None where there is none (results of an older runner)."""
    source = folder / PROVENANCE_FILE
    return json.loads(source.read_text()) if source.is_file() else None


def publish_refusals(staged: Path, published: Path) -> list[str]:
    """Why ``staged`` must not replace ``published``: other data (by content: :func:`_other_data`), or
    rows or figures it would lose."""
    reasons = []
    new, old = _read_provenance(staged) or {}, _read_provenance(published)
    other = _other_data(old, new) if old else None
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


def _open_run_folder(config: Config, makes_split: bool = False) -> Path:
    """The run's folder (:func:`dario_utils.core.paths.figures_dir`), ready for the notebooks: as it is unless
    it holds results of other data than the run's, as far as they are known before the run
    (:func:`_current_data`; with ``makes_split``, the run's notebook 01 makes the split anew); else
    (missing, or of other data) started as a copy of the published folder where that is not of other
    data (so a run of some notebooks keeps the others' results), or empty. The split the run makes is
    compared once it made it (:func:`_settle_run_folder`, :func:`_drop_leftovers`)."""
    folder = paths.figures_dir(config.profile)
    if folder.is_dir() and not _of_other_data(folder, config, split=not makes_split):
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    published = paths.published_figures_dir(config.profile)
    if published.is_dir() and not _of_other_data(published, config, split=not makes_split):
        shutil.copytree(published, folder)
    else:
        folder.mkdir(parents=True)
    return folder


def _file_states(folder: Path) -> dict[Path, tuple[int, int, int]]:
    """Each file under ``folder`` with its inode, modification time and size (what a rewrite changes)."""
    states = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            states[path] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return states


def _drop_unwritten(before: dict[Path, tuple[int, int, int]], folder: Path) -> None:
    """Remove the files of ``folder`` that the run did not write (``before``: :func:`_file_states` at its start)."""
    now = _file_states(folder)
    for path, state in before.items():
        if now.get(path) == state:
            path.unlink()


def _drop_leftovers(folder: Path, config: Config, before: dict[Path, tuple[int, int, int]]) -> None:
    """Where ``folder``'s provenance, from before this run, records other data than the run's
    (its notebook 01 made another split), remove the files the run did not write (``before``:
    :func:`_file_states` at its start), that provenance included."""
    if _of_other_data(folder, config):
        _drop_unwritten(before, folder)


def _settle_run_folder(folder: Path, config: Config, before: dict[Path, tuple[int, int, int]]) -> None:
    """Once the run's notebook 01 made the split, which tells the run's data: where ``folder`` holds
    results of other data, remove the files the run did not write and take those of the published
    folder where that is of the run's data (the same images, wherever they lie), so that the
    notebooks after 01 find the other notebooks' results of these data as a run without a split would."""
    if not _of_other_data(folder, config):
        return
    _drop_unwritten(before, folder)
    published = paths.published_figures_dir(config.profile)
    if not published.is_dir() or _of_other_data(published, config):
        return
    for source in sorted(published.rglob("*")):
        target = folder / source.relative_to(published)
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


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


def _publish_figures(config: Config, selected: list[Path], overwrite: bool, data_root: str | None,
                     seconds: dict[str, float]) -> bool:
    """Record the run folder's provenance (``data_root`` as the user gave it, each notebook's ``seconds``)
    and write its README, then copy it in place of ``figures/<profile>/`` unless that holds a fuller
    run's results (and not ``overwrite``): then print why and return False."""
    profile = config.profile
    folder = paths.figures_dir(profile)
    record = provenance(config, selected, folder, data_root, seconds)
    write_text(folder / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")
    beyond_apart = not config.beyond.with_study and any(nb[:2] in BEYOND_NOTEBOOKS for nb in record["notebooks"])
    write_readme(folder, profile, reproduce_command(profile, data_root, beyond_apart))
    final = paths.published_figures_dir(profile)
    reasons = [] if overwrite else publish_refusals(folder, final)
    if reasons:
        print(f"error: figures/{profile}/ holds the results of a fuller run ({'; '.join(reasons)}); "
              f"this run's tables and figures are in {folder}: pass --overwrite to replace them", file=sys.stderr)
        return False
    _copy_folder(folder, final)
    return True


def _one_line(message: str) -> str:
    """``message`` on one line (a notebook's error value may wrap)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


class Engine(NamedTuple):
    """How the runner executes a notebook: a function with papermill's ``execute_notebook``
    signature, and the exception it raises for a failing cell (with papermill's ``cell_index``,
    ``exec_count``, ``source``, ``ename`` and ``evalue``)."""

    execute_notebook: Callable[..., Any]
    cell_error: type[Exception]


def papermill_engine() -> Engine:
    """Papermill's: a Jupyter kernel per notebook. :class:`ConfigError` where papermill is missing."""
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError as err:
        raise ConfigError("papermill is not installed: run make install, or on a machine without Jupyter "
                          "run the notebooks with tools/gpu (python -m tools.gpu.reproduce_inline)") from err
    return Engine(papermill.execute_notebook, PapermillExecutionError)


@dataclass
class RunResult:
    """What a run did: its exit code (0; 1 a notebook failed; :data:`BAD_INPUT` a notebook raised one of
    :data:`INPUT_ERRORS`; :data:`REFUSED`; None until the run ends) and the seconds each notebook that
    finished took, by name (``01_data_split``), in order."""

    code: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run(profile: str, data_root: str | None = None, device: str | None = None, only: list[str] | None = None,
        in_place: bool = False, timeout: int = 7200, overwrite: bool = False, run_all: bool = False,
        engine: Engine | None = None, result: RunResult | None = None, re_record: bool = False) -> RunResult:
    """Execute the notebooks and publish their tables and figures; the result's code is 0 on success,
    1 if a notebook failed, :data:`BAD_INPUT` if it failed on bad input, :data:`REFUSED` if the results
    were kept unpublished (see the module's docstring). ``only``: notebook numbers; else every notebook
    with ``run_all``, else :func:`default_notebooks`. ``engine``: :func:`papermill_engine` unless given.
    ``result``: filled in as the run goes (a caller whose run is interrupted keeps what finished), and
    returned. With ``in_place``, trained results that moved outside the recorded run's windows are
    refused (:class:`dario_utils.runner.recorded.RecordingError`, nothing published) unless ``re_record``."""
    result = result if result is not None else RunResult()
    if in_place and engine is not None:
        raise ConfigError("--in-place stores Jupyter kernels' outputs in the committed notebooks: "
                          "it needs papermill, not another engine")
    execute_notebook, cell_error = engine or papermill_engine()
    given_root = data_root  # as the user gave it: what the provenance records
    if data_root:  # the notebooks run in notebooks/: pass the data root as an absolute path
        data_root = str(Path(data_root).expanduser().resolve())
    if str(profile).endswith((".yaml", ".yml")):  # and a profile file of one's own too
        profile = str(Path(profile).expanduser().resolve())
    config = load_config(profile, {"data_root": data_root, "device": device})
    if in_place and config.profile != "demo":
        raise ConfigError("--in-place refreshes the committed notebooks, which hold the demo profile's outputs")
    if config.data.kind != "demo":
        resolve_data_root(config)  # fail now, with a clear message, on a wrong data root
    if only is None and not run_all:
        only = default_notebooks(config)
        if only is not None:
            beyond = ",".join(BEYOND_NOTEBOOKS)
            print(f"notebooks {beyond} (beyond the report) are not part of profile {config.profile}'s default run "
                  f"(beyond.with_study: false): run them with --only {beyond} (make beyond) or everything with --all",
                  flush=True)
    selected = notebooks(only)
    executed_dir = paths.run_dir(config.profile) / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, "data_root": data_root, "device": device}
    makes_split = any(nb.name[:2] == SPLIT_NOTEBOOK for nb in selected)
    figures = _open_run_folder(config, makes_split)
    before = _file_states(figures)
    os.environ[NO_PROGRESS_ENV] = "1"  # nobody sees the kernels' progress bars; keep them out of the outputs
    try:
        for nb in selected:
            out = executed_dir / nb.name
            print(f"[{nb.name}] running (profile {config.profile})", flush=True)
            start = time.perf_counter()
            try:
                execute_notebook(
                    str(nb), str(out), parameters={} if in_place else parameters, cwd=str(paths.NOTEBOOKS_DIR),
                    kernel_name=KERNELSPEC["name"], execution_timeout=timeout, progress_bar=False, log_output=False,
                )
            except cell_error as err:
                if err.ename in INPUT_ERRORS:  # bad input: its message says what to do
                    print(f"error: {_one_line(err.evalue)}", file=sys.stderr)
                    result.code = BAD_INPUT
                    return result
                first_line = (err.source or "").strip().splitlines()[:1]
                print(f"error: notebook {nb.name} failed in cell {err.cell_index} "
                      f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
                      f"  the cell starts: {first_line[0] if first_line else ''}\n"
                      f"  executed copy with the traceback: {out}\n"
                      f"  figures/{config.profile}/ keeps the previous complete results", file=sys.stderr)
                result.code = 1
                return result
            result.seconds[nb.stem] = time.perf_counter() - start
            if nb.name[:2] == SPLIT_NOTEBOOK:
                _settle_run_folder(figures, config, before)
            print(f"[{nb.name}] done in {result.seconds[nb.stem]:.0f} s", flush=True)
    finally:
        os.environ.pop(NO_PROGRESS_ENV, None)
        _drop_leftovers(figures, config, before)
    if in_place:  # a rerun that moved outside the recorded windows is recorded only when asked
        recorded.refuse_moved(config.profile, re_record)
    if not _publish_figures(config, selected, overwrite, given_root, result.seconds):
        result.code = REFUSED
        return result
    if in_place:  # only once every notebook succeeded and the results were published
        for nb in selected:
            clean_notebook(executed_dir / nb.name)
            shutil.copyfile(executed_dir / nb.name, nb)
        print(f"refreshed the outputs stored in {', '.join(nb.name for nb in selected)}")
        try:
            print(f"recorded the trained results in {recorded.record(config.profile, accept_moved=True).name}")
        except FileNotFoundError as err:  # a run without notebooks 03-04 has no trained results
            print(f"no trained results recorded: {err}")
    print(f"tables and figures: {paths.published_figures_dir(config.profile)}")
    result.code = 0
    return result


def main(argv: list[str] | None = None, engine: Engine | None = None, result: RunResult | None = None) -> int:
    """The command line (see the module's docstring); ``engine`` and ``result`` as :func:`run`'s."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help="profile name in profiles/ (default demo)")
    parser.add_argument("--data-root", help="data folder for the imagenet-sample and paper profiles")
    parser.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,02")
    parser.add_argument("--all", action="store_true", dest="run_all",
                        help=f"every notebook, {','.join(BEYOND_NOTEBOOKS)} included where the profile's default run "
                             "leaves them out")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="override the profile's device")
    parser.add_argument("--in-place", action="store_true", help="write outputs into notebooks/ (demo only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace figures/<profile>/ even with other data or fewer rows or figures")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds a cell may run (default 7200)")
    parser.add_argument("--re-record", action="store_true",
                        help="with --in-place: record the run even where it moved outside the recorded windows")
    args = parser.parse_args(argv)
    only = [part.strip().zfill(2) for part in args.only.split(",")] if args.only else None
    try:
        if only and args.run_all:
            raise ConfigError("--only and --all exclude each other")
        return run(args.profile, args.data_root, args.device, only, args.in_place, args.timeout, args.overwrite,
                   args.run_all, engine, result, args.re_record).code
    except (ConfigError, FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
