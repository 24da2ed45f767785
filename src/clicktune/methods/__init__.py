"""Fine-tuning methods: the built-in embedding methods (the hooks `clicktune.tuning` drives) and
the registry that discovers plugins."""
