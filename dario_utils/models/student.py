"""The student: the RRDBNet that fine-tuning starts from, as the profile's ``sr`` section names it."""
from __future__ import annotations

from pathlib import Path

import torch

from dario_utils.core import paths
from dario_utils.core.config import Config
from dario_utils.models.checkpoints import CheckpointError, CheckpointReadError, load_sr, SR_NAMES
from dario_utils.models.rrdbnet import RRDBNet


def student_architecture(config: Config) -> dict[str, int]:
    """RRDBNet kwargs the profile's ``sr`` section asks for."""
    return {"nf": config.sr.nf, "nb": config.sr.nb, "gc": config.sr.gc, "scale": config.sr.sr_scale}


def _student_source(config: Config) -> str | Path:
    """What ``sr.pretrained`` names: a known name, a path or a file in the weights cache."""
    name = config.sr.pretrained
    if name in SR_NAMES or Path(name).expanduser().is_file():
        return name if name in SR_NAMES else Path(name).expanduser()
    cached = paths.weights_cache() / name
    if cached.is_file():
        return cached
    raise FileNotFoundError(
        f"sr.pretrained '{name}' is neither a known name ({', '.join(SR_NAMES)}), nor a file, nor in the "
        f"weights cache: put the file at {cached} (or set DARIO_WEIGHTS_CACHE), or give its full path")


def build_student(config: Config, device: str | torch.device) -> RRDBNet:
    """The RRDBNet fine-tuning starts from (``sr.pretrained``), in eval mode on ``device``.

    ``sr.pretrained`` is a name of :data:`dario_utils.models.SR_NAMES`, a checkpoint path, or
    a file name in :func:`dario_utils.core.paths.weights_cache`. Its architecture must be the one
    of the ``sr`` section (nf, nb, gc, sr_scale), else :class:`CheckpointError`.
    """
    source = _student_source(config)
    try:
        return load_sr(source, device, expect_config=student_architecture(config))
    except CheckpointReadError:
        raise  # an unreadable file, not an architecture mismatch
    except CheckpointError as err:
        raise CheckpointError(
            f"the start weights of profile '{config.profile}' (sr.pretrained={config.sr.pretrained!r}) do not "
            f"fit its sr section {student_architecture(config)}: {err}. Set sr.nf/nb/gc/sr_scale to the file's "
            f"architecture or point sr.pretrained at another file") from None
