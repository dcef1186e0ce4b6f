"""Evaluation harness: retrieval, routing, QA and report metrics, ablations and baselines (``medrag eval``)."""
