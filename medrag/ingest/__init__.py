"""Stage 2, ingest: load a registered knowledge source, prepare (de-identify first), encode, upsert."""
