"""Sentence splitting: the fusion and the citations work on sentences."""

from __future__ import annotations

import functools

import pysbd


@functools.cache
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, abbreviation-aware (``e.g.``, ``Fig. 2``, ``3.5 mm``), stripped, non-empty."""
    return [sentence.strip() for sentence in _segmenter().segment(text) if sentence.strip()]
