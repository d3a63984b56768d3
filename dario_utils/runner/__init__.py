"""Floor 7, runner: runs the notebooks (CLI, execution, staging, cleaning, provenance, publishing), checks recorded and published results, writes the docs."""
