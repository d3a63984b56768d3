"""Floor 6, figures: the registry of figures and tables, each figure drawn from result files with one style, and a figures folder's README."""
