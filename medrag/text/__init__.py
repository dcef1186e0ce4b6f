"""Text utilities shared by ingestion and query time (a leaf): sentence splitting for citations."""
