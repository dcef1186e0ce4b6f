"""Stage 1, knowledge sources: loaders and field-mapping configs for PubMed, radiology reports and imaging cases."""

from pathlib import Path

DEMO_DIR = Path(__file__).parent / "demo"
