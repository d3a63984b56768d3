"""Floor 0, core: the typed config, the run layout (every path), the generic registry, metrics, file writing, runtime, torchrun and the notebooks' setup."""
