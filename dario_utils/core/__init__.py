"""Floor 0, core: the typed config, the run layout (every path), file writing, runtime and distributed helpers."""
