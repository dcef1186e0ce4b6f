"""Stage 7, fuse: position-aware cross-attention between the query and the retrieved evidence."""
