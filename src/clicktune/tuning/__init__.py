"""The fine-tuning framework: the plugin interface, the embedding method's configuration, and the
standard iteration that drives a method's hooks (`hooks.IterationHooks`) step by step.

Method implementations live in `clicktune.methods`; nothing here imports them.
"""
