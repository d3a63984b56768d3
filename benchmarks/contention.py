"""Two jobs on shared cores: OpenMP's spinning vs passive waiting, measured in one run.

    python benchmarks/contention.py [--repeats 6]

Runs the same workload (the demo's RRDBNet on a batch of 8 images of 40 px, inference,
``torch.get_num_threads()`` threads) four ways, each in fresh processes: alone and two at once,
with ``OMP_WAIT_POLICY`` unset (spinning, the default) and ``PASSIVE`` (what the Makefile sets).
Prints each wall time and the slowdown of a pair over the job alone.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

WORKLOAD = """
import torch
from dario_utils.models.rrdbnet import RRDBNet
torch.manual_seed(0)
net = RRDBNet().eval()
x = torch.rand(8, 3, 40, 40)
with torch.inference_mode():
    net(x)
    for _ in range({repeats}):
        net(x)
"""


def timed_jobs(jobs: int, wait_policy: str | None, repeats: int) -> float:
    """Wall seconds for ``jobs`` copies of the workload started together."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    code = WORKLOAD.format(repeats=repeats)
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(jobs)]
    for process in processes:
        if process.wait():
            raise SystemExit(f"the workload failed (exit {process.returncode})")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="forward passes per job")
    args = parser.parse_args()
    print(f"{'OMP_WAIT_POLICY':<16} {'alone s':>8} {'pair s':>8} {'pair/alone':>11}")
    for policy in (None, "PASSIVE"):
        alone = timed_jobs(1, policy, args.repeats)
        pair = timed_jobs(2, policy, args.repeats)
        print(f"{policy or 'unset (spin)':<16} {alone:8.1f} {pair:8.1f} {pair / alone:11.2f}")


if __name__ == "__main__":
    main()
