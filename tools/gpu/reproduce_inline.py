"""The study's runner (:mod:`dario_utils.runner.reproduce`) with the in-process engine of :mod:`tools.gpu.inline`,
for a machine without Jupyter (the GPU machine), from the repository root:

    python -m tools.gpu.reproduce_inline --profile imagenet-sample-gpu --device cuda --result run.json

Takes the runner's options (``--in-place`` excepted: it stores Jupyter kernels' outputs) and
``--result FILE``, where the run's :class:`~dario_utils.runner.execute.RunResult` (exit code, seconds
per finished notebook) is written as JSON, also when the run is interrupted. Exit code: the runner's.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dario_utils.runner import reproduce
from dario_utils.runner.execute import Engine, RunResult
from tools.gpu import inline

ENGINE = Engine(inline.execute_notebook, inline.CellExecutionError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--result", type=Path, help="write the run's result here as JSON")
    args, runner_argv = parser.parse_known_args(argv)
    print("notebooks run in this process (engine inline: tools.gpu.inline, no Jupyter kernel)", flush=True)
    result = RunResult()
    try:
        return reproduce.main(runner_argv, engine=ENGINE, result=result)
    finally:
        if args.result:
            args.result.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
