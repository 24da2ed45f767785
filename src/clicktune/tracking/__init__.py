"""MLflow: iterations, runs, the best model, the registry and cleanup."""
