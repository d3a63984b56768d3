"""Floor 6, figures and tables: the report's items drawn from result files, with one style."""
