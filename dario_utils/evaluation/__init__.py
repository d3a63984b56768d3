"""Floor 4, evaluation: metrics, scoring the study's models, the test-scoring log, cross-validation."""
