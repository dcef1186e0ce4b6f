"""The search pipeline (stage 5-7 at query time): prepare -> embed -> route -> retrieve -> rerank, each a stage
with typed inputs and outputs (``medrag.pipeline.search``); ``prepare`` de-identifies and decodes the request."""
