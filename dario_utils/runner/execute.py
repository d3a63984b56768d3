"""The runner's execution loop: the selected notebooks run in order (papermill, or another engine), the
run folder staged around them (:mod:`dario_utils.runner.staging`), and published once every one
succeeded (:mod:`dario_utils.runner.publish`).

The first failing notebook stops the run, naming the notebook and the cell; the exit code is then
1, or :data:`BAD_INPUT` (one line, the error's message) where the notebook raised an error of bad
input (:data:`INPUT_ERRORS`: a data folder without images, say).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from dario_utils.core import paths
from dario_utils.core.config import Config, ConfigError, load_config
from dario_utils.core.result_files import BEYOND_NOTEBOOKS
from dario_utils.data.dataset import resolve_data_root
from dario_utils.runner import recorded
from dario_utils.runner.clean import KERNELSPEC
from dario_utils.runner.publish import publish_figures, refresh_committed
from dario_utils.runner.staging import drop_leftovers, file_states, open_run_folder, settle_run_folder

REFUSED = 3
"""Exit code of a run whose results were kept unpublished."""
SPLIT_NOTEBOOK = "01"
"""The notebook that makes the split (writes ``runs/<profile>/manifests/``): it tells the run's data."""
BAD_INPUT = 2
"""Exit code of bad input: a wrong argument or profile, or a notebook that raised one of :data:`INPUT_ERRORS`."""
INPUT_ERRORS = frozenset({"ConfigError", "DataError", "ImageReadError", "OutputNotWritableError", "TeacherWeightsError",
                          "CheckpointError", "CheckpointReadError", "MissingCheckpointError"})
"""Errors of bad input (by class name, as a notebook's failing cell reports them): their message says what to do."""


@dataclass(frozen=True)
class RunOptions:
    """What to run: the command line's options (:mod:`dario_utils.runner.reproduce`). ``only``: notebook
    numbers; else every notebook with ``run_all``, else :func:`default_notebooks`. ``timeout``: seconds a
    cell may run. ``output_root``: where ``runs/`` and ``figures/`` go, passed on to the notebooks. With
    ``in_place``, trained results that moved outside the recorded run's windows are refused
    (:class:`dario_utils.runner.recorded.RecordingError`, nothing published) unless ``re_record``."""

    profile: str = "demo"
    data_root: str | None = None
    device: str | None = None
    only: list[str] | None = None
    run_all: bool = False
    in_place: bool = False
    re_record: bool = False
    overwrite: bool = False
    timeout: int = 7200
    output_root: Path = paths.PROJECT_ROOT


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


def default_notebooks(config: Config) -> list[str] | None:
    """The notebook numbers a run without ``--only`` or ``--all`` executes: every one (None), or
    all but :data:`~dario_utils.core.result_files.BEYOND_NOTEBOOKS` where the profile's ``beyond.with_study``
    is false."""
    if config.beyond.with_study:
        return None
    return [nb.name[:2] for nb in notebooks() if nb.name[:2] not in BEYOND_NOTEBOOKS]


def _one_line(message: str) -> str:
    """``message`` on one line (a notebook's error value may wrap)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _selected(options: RunOptions, config: Config) -> list[Path]:
    """The notebooks ``options`` select; where the profile's default run leaves some out, says so."""
    only = options.only
    if only is None and not options.run_all:
        only = default_notebooks(config)
        if only is not None:
            beyond = ",".join(BEYOND_NOTEBOOKS)
            print(f"notebooks {beyond} (beyond the report) are not part of profile {config.profile}'s default run "
                  f"(beyond.with_study: false): run them with --only {beyond} (make beyond) or everything with --all",
                  flush=True)
    return notebooks(only)


def run(options: RunOptions, engine: Engine | None = None, result: RunResult | None = None) -> RunResult:
    """Execute the notebooks and publish their tables and figures; the result's code is 0 on success,
    1 if a notebook failed, :data:`BAD_INPUT` if it failed on bad input, :data:`REFUSED` if the results
    were kept unpublished. ``engine``: :func:`papermill_engine` unless given. ``result``: filled in as
    the run goes (a caller whose run is interrupted keeps what finished), and returned."""
    result = result if result is not None else RunResult()
    if options.in_place and engine is not None:
        raise ConfigError("--in-place stores Jupyter kernels' outputs in the committed notebooks: "
                          "it needs papermill, not another engine")
    execute_notebook, cell_error = engine or papermill_engine()
    data_root, profile = options.data_root, options.profile
    if data_root:  # the notebooks run in notebooks/: pass the data root as an absolute path
        data_root = str(Path(data_root).expanduser().resolve())
    if str(profile).endswith((".yaml", ".yml")):  # and a profile file of one's own too
        profile = str(Path(profile).expanduser().resolve())
    config = load_config(profile, {"data_root": data_root, "device": options.device}, output_root=options.output_root)
    if options.in_place and config.profile != paths.STORED_OUTPUTS_PROFILE:
        raise ConfigError("--in-place refreshes the committed notebooks, which hold the demo profile's outputs")
    if options.in_place and config.output_root != paths.output_root_from_env():
        raise ConfigError("--in-place runs the committed notebooks with their own parameters, which take the output "
                          f"root from {paths.OUTPUT_ROOT_ENV}: set it instead of passing another output root")
    resolve_data_root(config)  # fail now, with a clear message, on a wrong data root
    selected = _selected(options, config)
    executed_dir = config.layout.executed_notebooks
    executed_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, "data_root": data_root, "device": options.device,
                  "output_root": str(config.output_root), "progress": False}
    figures = open_run_folder(config, any(nb.name[:2] == SPLIT_NOTEBOOK for nb in selected))
    before = file_states(figures)
    try:
        for nb in selected:
            out = executed_dir / nb.name
            print(f"[{nb.name}] running (profile {config.profile})", flush=True)
            start = time.perf_counter()
            try:
                execute_notebook(
                    str(nb), str(out), parameters={} if options.in_place else parameters,
                    cwd=str(paths.NOTEBOOKS_DIR), kernel_name=KERNELSPEC["name"], execution_timeout=options.timeout,
                    progress_bar=False, log_output=False,
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
                settle_run_folder(figures, config, before)
            print(f"[{nb.name}] done in {result.seconds[nb.stem]:.0f} s", flush=True)
    finally:
        drop_leftovers(figures, config, before)
    if options.in_place:  # a rerun that moved outside the recorded windows is recorded only when asked
        recorded.refuse_moved(config.layout, options.re_record)
    if not publish_figures(config, [nb.stem for nb in selected], options.overwrite, options.data_root, result.seconds):
        result.code = REFUSED
        return result
    if options.in_place:  # only once every notebook succeeded and the results were published
        refresh_committed(config, selected)
    print(f"tables and figures: {config.layout.published_figures}")
    result.code = 0
    return result
