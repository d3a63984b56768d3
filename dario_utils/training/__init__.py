"""Floor 3, training: the logit losses, the frozen head's cache and the fine-tuning loop."""
