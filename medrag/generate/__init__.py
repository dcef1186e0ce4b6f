"""Stage 8, generate: grounded answers with numbered citations."""
