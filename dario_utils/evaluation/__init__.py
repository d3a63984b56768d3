"""Floor 4, evaluation: scoring the study's models, the tables, the report's numbers, the test-scoring log, cross-validation and the try-it command."""
