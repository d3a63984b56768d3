"""Run the study's numbered notebooks in order with papermill.

    python -m dario_utils.runner.reproduce --profile demo
    python -m dario_utils.runner.reproduce --profile imagenet-sample --data-root ../shared/imagenet-sample-dev
    python -m dario_utils.runner.reproduce --profile demo --only 06,07   # the notebooks beyond the report
                                                                   # (not in the demo's default run)
    python -m dario_utils.runner.reproduce --profile demo --all --in-place   # refresh the committed notebooks
                                                                      # (once every notebook succeeded)

Machines without Jupyter (the GPU machine) run the same with an in-process engine from
``tools/gpu/`` (``python -m tools.gpu.reproduce_inline``), passed to :func:`main` as ``engine``.

The output root is ``$DARIO_OUTPUT_ROOT``, else the project root; the notebooks are given it as a
parameter. Executed copies go to ``runs/<profile>/notebooks/``. The notebooks write their tables
and figures to the run's own folder, ``runs/<profile>/figures/``, which keeps every notebook's latest
results of one data (:mod:`dario_utils.runner.staging`; data are told apart by content:
:mod:`dario_utils.runner.provenance`). Only when every notebook succeeded is the folder published as
``figures/<profile>/``, so a failed run keeps the previous complete results. The first failing
notebook stops the run, naming the notebook and the cell; the exit code is then 1, or 2 (one line,
the error's message) where the notebook raised an error of bad input (a data folder without images, say).

Before publishing, the runner writes ``provenance.json`` (profile, data root as given,
manifests and images fingerprints, notebooks run, commit, date, Table 1 rows, figures) into the
run's folder and the "Made by" section of its README. It then refuses to replace a published
folder that holds the results of a fuller run: other data (a fingerprint differs from its
provenance), or Table 1 rows or figures this run lacks. The run's results then stay in
``runs/<profile>/figures/`` only and the exit code is 3; ``--overwrite`` publishes anyway
(:mod:`dario_utils.runner.publish`).
"""
from __future__ import annotations

import argparse
import sys

from dario_utils.core import paths
from dario_utils.core.config import ConfigError
from dario_utils.core.result_files import BEYOND_NOTEBOOKS
from dario_utils.runner.execute import BAD_INPUT, Engine, run, RunOptions, RunResult


def parse_options(argv: list[str] | None = None) -> RunOptions:
    """The command line's :class:`~dario_utils.runner.execute.RunOptions`, with the output root of the
    environment (:func:`dario_utils.core.paths.output_root_from_env`)."""
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
    if only and args.run_all:
        raise ConfigError("--only and --all exclude each other")
    return RunOptions(profile=args.profile, data_root=args.data_root, device=args.device, only=only,
                      run_all=args.run_all, in_place=args.in_place, re_record=args.re_record,
                      overwrite=args.overwrite, timeout=args.timeout, output_root=paths.output_root_from_env())


def main(argv: list[str] | None = None, engine: Engine | None = None, result: RunResult | None = None) -> int:
    """The command line (see the module's docstring); ``engine`` and ``result`` as
    :func:`dario_utils.runner.execute.run`'s."""
    try:
        return run(parse_options(argv), engine, result).code
    except (ConfigError, FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
