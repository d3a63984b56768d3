"""Time the README's test command and record it for the docs: ``figures/test_time.json``.

    python -m tools.test_time        # runs make's unit-tests, then notebook-tests, in this checkout

Each phase runs as ``make test`` runs it; the record (written only when both passed) holds the
seconds of each, the counts pytest reported, the commit tested and whether the tree was dirty, the
CPU, its core count and ``ONEDNN_MAX_CPU_ISA`` where set. ``make docs`` quotes it. Time it on a
fresh clone (``make install`` first) with nothing else running, or the seconds say so.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from dario_utils.core import paths
from dario_utils.core.runtime import cpu_name, git_commit, working_tree_state
from dario_utils.runner.docs import TEST_TIME_FILE

PHASES = ("unit-tests", "notebook-tests")
"""The Makefile's targets that ``make test`` runs, in its order."""
RECORD = paths.PROJECT_ROOT / TEST_TIME_FILE
_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|error|errors|xfailed|warnings?)\b")


def run_phase(target: str) -> dict[str, object]:
    """Run ``make <target>``, echoing its output; its seconds, exit code and pytest's final counts."""
    start = time.perf_counter()
    process = subprocess.Popen(["make", "--no-print-directory", target], cwd=paths.PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = ""
    for line in process.stdout:
        sys.stdout.write(line)
        if _COUNTS.search(line):
            last = line
    code = process.wait()
    counts = {kind: int(n) for n, kind in _COUNTS.findall(last)}
    return {"target": target, "seconds": round(time.perf_counter() - start, 1), "exit_code": code, "counts": counts}


def main() -> int:
    phases = []
    for target in PHASES:
        phases.append(run_phase(target))
        if phases[-1]["exit_code"] != 0:
            print(f"error: make {target} failed (exit {phases[-1]['exit_code']}); nothing recorded", file=sys.stderr)
            return 1
    record = {
        "command": "make test",
        "seconds": round(sum(p["seconds"] for p in phases), 1),
        "phases": phases,
        "commit": git_commit(),
        **working_tree_state(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    print(f"make test: {record['seconds'] / 60:.1f} min on {record['cpu']} ({record['cores']} cores); wrote {RECORD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
