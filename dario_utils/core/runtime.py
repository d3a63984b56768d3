"""Run-time set-up shared by every stage: seeds, threads, device, the git commit."""
from __future__ import annotations

import hashlib
import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dario_utils.core import paths
from dario_utils.core.config import Config, ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_torch(config: Config) -> torch.device:
    """Fix threads and deterministic algorithms for reproducible numbers; return the device.

    On CPU the same seed and thread count give identical results run after run. A CUDA device
    on a machine without one is a :class:`~dario_utils.core.config.ConfigError` (bad input, exit 2).
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    # Fine-tuning drives some weights' products into denormal floats, which x86 CPUs
    # compute up to 100x slower (an epoch of the demo went from 1 to over 7 minutes).
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(config.seed)
    device = torch.device(config.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"profile '{config.profile}' asks for device {config.device} but no GPU is visible: "
                              "pass --device cpu (slow) or run on a machine with a GPU")
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


COMMIT_ENV = "DARIO_COMMIT"
"""The commit to record where the code runs outside a git checkout (a copied working tree)."""


def git_commit() -> str:
    """The project's current commit; outside a git checkout ``$DARIO_COMMIT``, else ``unknown``."""
    fallback = os.environ.get(COMMIT_ENV) or "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() if out.returncode == 0 else "") or fallback
    except (OSError, subprocess.SubprocessError):
        return fallback


def working_tree_state() -> dict[str, object]:
    """Whether the checkout's tracked files differ from its commit (``dirty``), and the SHA-256 of that
    difference (``git diff HEAD``), so that a result made from uncommitted changes says so; ``dirty``
    is None outside a git checkout. The published results (``figures/``), which runs themselves write,
    are not part of it."""
    try:
        out = subprocess.run(["git", "diff", "HEAD", "--", ".", ":(exclude)figures"], cwd=paths.PROJECT_ROOT,
                             capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {"dirty": None, "diff_sha256": None}
    if out.returncode != 0:
        return {"dirty": None, "diff_sha256": None}
    return {"dirty": bool(out.stdout), "diff_sha256": hashlib.sha256(out.stdout).hexdigest()[:16] if out.stdout else None}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def speed_report(frame: pd.DataFrame, label_columns: list[str]) -> str:
    """One line per row of a frame with ``seconds`` and ``images_per_s`` columns, in a fixed
    format (``<labels>: 12.3 s, 45.6 images/s``) that the notebook tests sanitise.

    The labels are the row's ``label_columns``: for Table 1 pass ``["name"]``, the display
    names the tables and figures use (``["model"]`` would print the internal keys)."""
    return "\n".join(
        " ".join(str(row[c]) for c in label_columns) + f": {row['seconds']:.1f} s, {row['images_per_s']:.1f} images/s"
        for row in frame.to_dict("records")
    )
