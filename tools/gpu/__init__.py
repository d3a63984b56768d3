"""The one-GPU headline run (README.md here): the bundle, the in-process notebook engine, the run's script."""
