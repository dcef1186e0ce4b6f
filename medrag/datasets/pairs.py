"""Real image-text pairs for the joint space; each dataset module makes its own (``covid_pairs``, ``vqa_rad_pairs``).

A pair carries its canonical group key, so a named split (``medrag.datasets.splits``) never puts one
patient, or one image listed under two patient ids, on both sides.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Pair:
    image_path: Path
    text: str
    group: str
    """Canonical split key: ``covid:<patient group>`` or ``vqa-rad:<image file>``."""
    source: str
    finding_class: str | None = None
    """One of ``medrag.datasets.covid.FINDING_CLASSES`` for covid cases with a known finding; the zero-shot label."""
