"""Writing files so that no reader ever sees a half-written one.

Everything the study writes goes through :func:`atomic_path`: the content is written
to a temporary name in the same folder, then renamed over the target in one step.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


_UMASK = os.umask(0o022)
os.umask(_UMASK)


class OutputNotWritableError(RuntimeError):
    """An output folder cannot be created or written."""


def _not_writable(folder: Path, err: OSError) -> OutputNotWritableError:
    return OutputNotWritableError(f"cannot write to output folder {folder}: {err.strerror or err}. "
                                  "Fix its permissions or set DARIO_OUTPUT_ROOT to a writable folder.")


def ensure_dir(folder: Path) -> Path:
    """Create ``folder`` (and parents); raise a message naming it if that fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise _not_writable(folder, err) from None
    return folder


def check_writable(folder: Path) -> Path:
    """Raise :class:`OutputNotWritableError`, as :func:`ensure_dir` would, where ``folder`` cannot be
    created or written; create nothing (its nearest existing folder is probed with a temporary
    file). For commands that check their outputs before any work."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-", delete=True).close()
    except OSError as err:
        raise _not_writable(folder, err) from None
    return folder


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: Path, text: str) -> Path:
    """Atomically write ``text`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def save_torch(obj: object, target: Path) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``target``."""
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
    return Path(target)


def write_csv(frame, target: Path) -> Path:
    """Atomically write a pandas DataFrame as CSV: no index, ``\\n`` line ends, floats as pandas
    writes them (the shortest text that reads back as the same float)."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return Path(target)
