"""Simulated search traffic on public IR collections: loaders, a click model, a serving model.

The demo and the quality benchmark use it to produce clickstream that behaves like real users'
(position bias, noise clicks) while the collection's relevance judgements stay the ground truth.
"""
