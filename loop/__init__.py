"""The learning loop as plain functions: training mix, fine-tune, gate, MLflow registry, one cycle."""
