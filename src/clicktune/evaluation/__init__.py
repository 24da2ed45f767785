"""Ranking metrics with graded gains and the retrieval evaluator the trainer calls."""
