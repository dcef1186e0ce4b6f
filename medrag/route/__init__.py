"""Stage 5, route: the scheduler that picks knowledge sources, weights and models per query."""
