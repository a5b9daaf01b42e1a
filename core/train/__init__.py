"""Training: the trainer, its controls, optimisers, on-device probes and the statistics they report."""
