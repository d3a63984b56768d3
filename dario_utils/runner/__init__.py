"""Floor 7, runner: executes the notebooks, publishes and records results, writes the docs."""
