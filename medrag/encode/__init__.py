"""Stage 3, encode: text and image encoders into the text space and the joint image-text space."""

from medrag.encode.text import TextEncoder, default_text_model_path

__all__ = ["TextEncoder", "default_text_model_path"]
