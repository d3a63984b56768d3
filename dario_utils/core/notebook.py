"""The first cell of every notebook: the profile's config, under the output root the notebook was given."""
from __future__ import annotations

from pathlib import Path

from dario_utils.core import paths
from dario_utils.core.config import Config, load_config


def setup(profile: str, data_root: str | None = None, device: str | None = None,
          output_root: str | Path | None = None) -> Config:
    """Load ``profile`` with the notebook's parameters and print what it runs. ``output_root``: the
    runner's; where None (a notebook opened by hand, or nbval), ``$DARIO_OUTPUT_ROOT`` or the project root."""
    config = load_config(profile, {"data_root": data_root, "device": device},
                         output_root=output_root or paths.output_root_from_env())
    print(f"profile {config.profile}: {config.data.kind} data, {config.data.image_size} -> {config.small_size} px, "
          f"teacher {config.teacher.name}, SR nf={config.sr.nf} nb={config.sr.nb} from {config.sr.pretrained}")
    return config
