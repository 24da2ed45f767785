"""Fine-tuning methods: the plugin interface, its registry and the built-in methods."""
