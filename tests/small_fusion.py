"""The small fusion configuration the fusion tests share: the real architecture, tiny sizes."""

from medrag.fuse import FusionConfig

SMALL = FusionConfig(d_model=32, heads=4, image_dim=16, text_dim=12, evidence_dim=12, grid=(3, 3),
                     max_text_tokens=8, max_candidates=16, max_sentences=8)
