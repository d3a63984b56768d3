"""Run the study's numbered notebooks in order with papermill.

    python -m dario_utils.reproduce --profile demo
    python -m dario_utils.reproduce --profile imagenet-sample --data-root ../shared/imagenet-sample-dev
    python -m dario_utils.reproduce --profile demo --in-place   # refresh the committed notebooks
                                                                # (once every notebook succeeded)

Executed copies go to ``runs/<profile>/notebooks/``. Tables and figures are written to a
staging folder and replace ``figures/<profile>/`` only when every notebook succeeded, so
a failed run keeps the previous complete results. The first failing notebook stops the
run, naming the notebook and the cell; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import paths
from .config import ConfigError, load_config

STAGING_ENV = "DARIO_FIGURES_STAGING"


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


def clean_notebook(path: Path) -> None:
    """Drop what varies between runs and is not a result (papermill timings, execution
    timestamps) so a committed notebook changes only when a result does."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
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


def _publish_figures(profile: str, staging: Path) -> None:
    """Swap the staged results in place of ``figures/<profile>/``."""
    final = paths.figures_dir(profile)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)


def run(profile: str, data_root: str | None = None, device: str | None = None, only: list[str] | None = None,
        in_place: bool = False, timeout: int = 7200) -> int:
    """Execute the notebooks; return 0 on success, 1 if a notebook failed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if data_root:  # the notebooks run in notebooks/: pass the data root as an absolute path
        data_root = str(Path(data_root).expanduser().resolve())
    config = load_config(profile, {"data_root": data_root, "device": device})
    if in_place and config.profile != "demo":
        raise ConfigError("--in-place refreshes the committed notebooks, which hold the demo profile's outputs")
    if config.data.kind != "demo":
        from .data import resolve_data_root

        resolve_data_root(config)  # fail now, with a clear message, on a wrong data root
    selected = notebooks(only)
    executed_dir = paths.run_dir(config.profile) / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, "data_root": data_root, "device": device}
    staging = _stage_figures(config.profile)
    os.environ[STAGING_ENV] = str(staging)
    try:
        for nb in selected:
            out = executed_dir / nb.name
            print(f"[{nb.name}] running (profile {config.profile})", flush=True)
            start = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(nb), str(out), parameters={} if in_place else parameters, cwd=str(paths.NOTEBOOKS_DIR),
                    kernel_name="python3", execution_timeout=timeout, progress_bar=False, log_output=False,
                )
            except PapermillExecutionError as err:
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
    _publish_figures(config.profile, staging)
    if in_place:  # only once every notebook succeeded
        for nb in selected:
            clean_notebook(executed_dir / nb.name)
            shutil.copyfile(executed_dir / nb.name, nb)
        print(f"refreshed the outputs stored in {', '.join(nb.name for nb in selected)}")
    print(f"tables and figures: {paths.figures_dir(config.profile)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help="profile name in profiles/ (default demo)")
    parser.add_argument("--data-root", help="data folder for the imagenet-sample and paper profiles")
    parser.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,02")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="override the profile's device")
    parser.add_argument("--in-place", action="store_true", help="write outputs into notebooks/ (demo only)")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds a cell may run (default 7200)")
    args = parser.parse_args(argv)
    only = [part.strip().zfill(2) for part in args.only.split(",")] if args.only else None
    try:
        return run(args.profile, args.data_root, args.device, only, args.in_place, args.timeout)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
