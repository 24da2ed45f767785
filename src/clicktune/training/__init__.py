"""Clickstream → training examples, the trainer wrapper and callbacks, hyperparameter search."""
