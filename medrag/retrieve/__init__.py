"""Stage 6, retrieve: hybrid search per chosen source and rank fusion across sources."""
