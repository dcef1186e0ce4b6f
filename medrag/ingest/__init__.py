"""Stage 2, ingest: de-identification first, then image normalisation and records for the store."""
