"""Run the study's numbered notebooks in order with papermill (or, without Jupyter, in this process).

    python -m dario_utils.reproduce --profile demo
    python -m dario_utils.reproduce --profile imagenet-sample --data-root ../shared/imagenet-sample-dev
    python -m dario_utils.reproduce --profile demo --only 06    # notebook 06, beyond the report
                                                                # (not in the demo's default run)
    python -m dario_utils.reproduce --profile demo --all --in-place   # refresh the committed notebooks
                                                                      # (once every notebook succeeded)
    python -m dario_utils.reproduce --profile imagenet-sample-gpu --engine inline   # no papermill needed

Where papermill is not installed (or with ``--engine inline``) the notebooks run in this
process by :mod:`dario_utils.inline`, which needs no Jupyter package; failures are reported alike.

Executed copies go to ``runs/<profile>/notebooks/``. Tables and figures are written to a
staging folder and replace ``figures/<profile>/`` only when every notebook succeeded, so
a failed run keeps the previous complete results. The first failing notebook stops the
run, naming the notebook and the cell; the exit code is then 1.

The runner writes ``provenance.json`` (profile, data root, manifests fingerprint, notebooks
run, commit, date, Table 1 rows, figures) into the staged folder and the "Made by" section
of its README. It then refuses to replace a published folder that holds the results of a
fuller run: other data (data root or manifests fingerprint differ from its provenance), or
Table 1 rows or figures this run lacks. The run's results then stay in
``runs/<profile>/figures-unpublished/`` and the exit code is 3; ``--overwrite`` publishes anyway.
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
from datetime import datetime, timezone
from pathlib import Path

from . import paths, recorded
from .config import Config, ConfigError, load_config
from .fileio import write_text

STAGING_ENV = "DARIO_FIGURES_STAGING"
NO_PROGRESS_ENV = "TQDM_DISABLE"
REFUSED = 3
"""Exit code of a run whose results were kept unpublished."""

ENGINES = ("auto", "papermill", "inline")
ENGINE_ENV = "DARIO_NOTEBOOK_ENGINE"
"""Names the engine where ``--engine`` is not given: ``papermill`` (a Jupyter kernel per notebook),
``inline`` (:mod:`dario_utils.inline`, in this process, without Jupyter) or ``auto`` (papermill
where it can be imported, else inline)."""

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (darionet)", "language": "python"}
"""The kernel ``make lab`` installs (the Makefile's ``--name`` and ``--display-name``); stored in
the committed notebooks so that opening them in JupyterLab changes nothing."""

_OVERWRITTEN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
"""A line's text up to its last carriage return not ending it (nbval's pattern: what a terminal overwrites)."""


BEYOND = "06"
"""Number of the notebook beyond the report, left out of the default run of a profile whose
``beyond.with_study`` is false (the demo: it would double the run's time; ``make beyond``)."""


def default_notebooks(config: Config) -> list[str] | None:
    """The notebook numbers a run without ``--only`` or ``--all`` executes: every one (None), or
    all but :data:`BEYOND` where the profile's ``beyond.with_study`` is false."""
    if config.beyond.with_study:
        return None
    return [nb.name[:2] for nb in notebooks() if nb.name[:2] != BEYOND]


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


def _stage_figures(profile: str) -> Path:
    """A staging copy of ``figures/<profile>/`` that the notebooks write into."""
    final = paths.figures_dir(profile)
    staging = paths.run_dir(profile) / "figures-staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir():
        shutil.copytree(final, staging)
    else:
        staging.mkdir()
    return staging


def manifests_fingerprint(profile: str) -> str | None:
    """Short sha256 over the contents of ``runs/<profile>/manifests/{train,val,test}.csv``; None if one is missing."""
    digest = hashlib.sha256()
    for split in ("train", "val", "test"):
        manifest = paths.manifests_dir(profile) / f"{split}.csv"
        if not manifest.is_file():
            return None
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:12]


def table1_models(folder: Path) -> list[str]:
    """The ``model`` column of ``folder/table1.csv`` (empty where there is none)."""
    table = folder / "table1.csv"
    if not table.is_file():
        return []
    with table.open(newline="") as handle:
        return [row["model"] for row in csv.DictReader(handle) if row.get("model")]


def figure_files(folder: Path) -> list[str]:
    """The figures of ``folder``: its ``fig*.png`` file names, by figure number."""
    from .figures import by_figure_number

    return sorted((p.name for p in folder.glob("fig*.png")), key=by_figure_number)


def _data_root(config: Config) -> str:
    """The data root as recorded: absolute, or relative to the project root where it lies inside it
    (the demo profile's shipped images), so that a committed folder does not name the checkout's place."""
    from .data import resolve_data_root

    root = resolve_data_root(config)
    return root.relative_to(paths.PROJECT_ROOT).as_posix() if root.is_relative_to(paths.PROJECT_ROOT) else str(root)


def provenance(config: Config, selected: list[Path], folder: Path) -> dict:
    """What made the tables and figures in ``folder``: see the module's docstring. The notebooks
    listed are those of this run and, where ``folder`` holds an earlier run's results on the same
    data (the demo's notebook 06 runs on its own), those of that run too."""
    from .runtime import git_commit

    ran = [nb.stem for nb in selected]
    earlier = _read_provenance(folder) or {}
    same_data = (earlier.get("data_root") == _data_root(config)
                 and earlier.get("manifests_sha256") == manifests_fingerprint(config.profile))
    return {
        "profile": config.profile,
        "data_root": _data_root(config),
        "manifests_sha256": manifests_fingerprint(config.profile),
        "notebooks": sorted(set(ran) | set(earlier.get("notebooks", []))) if same_data else ran,
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "table1_models": table1_models(folder),
        "figures": figure_files(folder),
    }


def _read_provenance(folder: Path) -> dict | None:
    """``folder/provenance.json``; None where there is none (results of an older runner)."""
    from .figures import PROVENANCE_FILE

    source = folder / PROVENANCE_FILE
    return json.loads(source.read_text()) if source.is_file() else None


def publish_refusals(staged: Path, published: Path) -> list[str]:
    """Why ``staged`` must not replace ``published``: other data, or rows or figures it would lose."""
    reasons = []
    new, old = _read_provenance(staged) or {}, _read_provenance(published)
    if old and old.get("data_root") != new.get("data_root"):
        reasons.append(f"other data: data root {new.get('data_root')}, published {old.get('data_root')}")
    elif old and old.get("manifests_sha256") and old["manifests_sha256"] != new.get("manifests_sha256"):
        reasons.append(f"other data: manifests {new.get('manifests_sha256')}, published {old['manifests_sha256']}")
    staged_models = set(table1_models(staged))
    rows = [model for model in table1_models(published) if model not in staged_models]
    if rows:
        reasons.append(f"rows {', '.join(rows)} would be lost")
    lost = sorted(set(figure_files(published)) - set(figure_files(staged)))
    if lost:
        reasons.append(f"figures {', '.join(lost)} would be lost")
    return reasons


def _replace_folder(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, swapping out what ``target`` held."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    source.rename(target)
    if old.exists():
        shutil.rmtree(old)


def _publish_figures(config: Config, selected: list[Path], staging: Path, overwrite: bool) -> bool:
    """Record the staged folder's provenance, then swap it in place of ``figures/<profile>/``
    unless that holds a fuller run's results (and not ``overwrite``): then keep it in
    ``runs/<profile>/figures-unpublished/``, print why, and return False."""
    from .figures import PROVENANCE_FILE, readme_made_by

    profile = config.profile
    write_text(staging / PROVENANCE_FILE, json.dumps(provenance(config, selected, staging), indent=2) + "\n")
    readme_made_by(staging)
    final = paths.figures_dir(profile)
    reasons = [] if overwrite else publish_refusals(staging, final)
    if reasons:
        kept = paths.run_dir(profile) / "figures-unpublished"
        _replace_folder(staging, kept)
        print(f"error: figures/{profile}/ holds the results of a fuller run ({'; '.join(reasons)}); "
              f"this run's tables and figures are in {kept}: pass --overwrite to replace them", file=sys.stderr)
        return False
    _replace_folder(staging, final)
    return True


def choose_engine(engine: str | None = None) -> str:
    """``papermill`` or ``inline``: ``engine``, else ``$DARIO_NOTEBOOK_ENGINE``, else ``auto``
    (papermill where it can be imported)."""
    engine = engine or os.environ.get(ENGINE_ENV) or "auto"
    if engine not in ENGINES:
        raise ConfigError(f"unknown notebook engine '{engine}' (from --engine or {ENGINE_ENV}): "
                          f"choose from {', '.join(ENGINES)}")
    if engine == "auto":
        try:
            import papermill  # noqa: F401
        except ImportError:
            return "inline"
        return "papermill"
    return engine


def run(profile: str, data_root: str | None = None, device: str | None = None, only: list[str] | None = None,
        in_place: bool = False, timeout: int = 7200, overwrite: bool = False, engine: str | None = None,
        run_all: bool = False) -> int:
    """Execute the notebooks and publish their tables and figures; return 0 on success, 1 if a
    notebook failed, :data:`REFUSED` if the results were kept unpublished (see the module's docstring).
    ``only``: notebook numbers; else every notebook with ``run_all``, else :func:`default_notebooks`.
    ``engine``: see :data:`ENGINE_ENV`."""
    engine = choose_engine(engine)
    if engine == "papermill":
        import papermill as executor
        from papermill.exceptions import PapermillExecutionError as CellError
    else:
        if in_place:
            raise ConfigError("--in-place stores Jupyter kernels' outputs in the committed notebooks: it needs "
                              "the papermill engine (pip install papermill), not the inline one")
        from . import inline as executor
        from .inline import CellExecutionError as CellError
        print("notebooks run in this process (engine inline: dario_utils.inline, no Jupyter kernel)", flush=True)

    if data_root:  # the notebooks run in notebooks/: pass the data root as an absolute path
        data_root = str(Path(data_root).expanduser().resolve())
    config = load_config(profile, {"data_root": data_root, "device": device})
    if in_place and config.profile != "demo":
        raise ConfigError("--in-place refreshes the committed notebooks, which hold the demo profile's outputs")
    if config.data.kind != "demo":
        from .data import resolve_data_root

        resolve_data_root(config)  # fail now, with a clear message, on a wrong data root
    if only is None and not run_all:
        only = default_notebooks(config)
        if only is not None:
            print(f"notebook {BEYOND} (beyond the report) is not part of profile {config.profile}'s default run "
                  f"(beyond.with_study: false): run it with --only {BEYOND} (make beyond) or everything with --all",
                  flush=True)
    selected = notebooks(only)
    executed_dir = paths.run_dir(config.profile) / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, "data_root": data_root, "device": device}
    staging = _stage_figures(config.profile)
    os.environ[STAGING_ENV] = str(staging)
    os.environ[NO_PROGRESS_ENV] = "1"  # nobody sees the kernels' progress bars; keep them out of the outputs
    try:
        for nb in selected:
            out = executed_dir / nb.name
            print(f"[{nb.name}] running (profile {config.profile})", flush=True)
            start = time.perf_counter()
            try:
                executor.execute_notebook(
                    str(nb), str(out), parameters={} if in_place else parameters, cwd=str(paths.NOTEBOOKS_DIR),
                    kernel_name=KERNELSPEC["name"], execution_timeout=timeout, progress_bar=False, log_output=False,
                )
            except CellError as err:
                first_line = (err.source or "").strip().splitlines()[:1]
                print(f"error: notebook {nb.name} failed in cell {err.cell_index} "
                      f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
                      f"  the cell starts: {first_line[0] if first_line else ''}\n"
                      f"  executed copy with the traceback: {out}\n"
                      f"  figures/{config.profile}/ keeps the previous complete results", file=sys.stderr)
                return 1
            print(f"[{nb.name}] done in {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        os.environ.pop(STAGING_ENV, None)
        os.environ.pop(NO_PROGRESS_ENV, None)
    if not _publish_figures(config, selected, staging, overwrite):
        return REFUSED
    if in_place:  # only once every notebook succeeded and the results were published
        for nb in selected:
            clean_notebook(executed_dir / nb.name)
            shutil.copyfile(executed_dir / nb.name, nb)
        print(f"refreshed the outputs stored in {', '.join(nb.name for nb in selected)}")
        try:
            print(f"recorded the trained results in {recorded.record(config.profile).name}")
        except FileNotFoundError as err:  # a run without notebooks 03-04 has no trained results
            print(f"no trained results recorded: {err}")
    print(f"tables and figures: {paths.figures_dir(config.profile)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help="profile name in profiles/ (default demo)")
    parser.add_argument("--data-root", help="data folder for the imagenet-sample and paper profiles")
    parser.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,02")
    parser.add_argument("--all", action="store_true", dest="run_all",
                        help=f"every notebook, {BEYOND} included where the profile's default run leaves it out")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="override the profile's device")
    parser.add_argument("--in-place", action="store_true", help="write outputs into notebooks/ (demo only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace figures/<profile>/ even with other data or fewer rows or figures")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds a cell may run (default 7200)")
    parser.add_argument("--engine", choices=ENGINES,
                        help=f"how notebooks run: papermill (Jupyter kernels), inline (in this process, no Jupyter "
                             f"needed) or auto, papermill where installed (default: ${ENGINE_ENV} or auto)")
    args = parser.parse_args(argv)
    only = [part.strip().zfill(2) for part in args.only.split(",")] if args.only else None
    try:
        if only and args.run_all:
            raise ConfigError("--only and --all exclude each other")
        return run(args.profile, args.data_root, args.device, only, args.in_place, args.timeout, args.overwrite,
                   args.engine, args.run_all)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
