"""The app's one stylesheet: static CSS of ours (no user or retrieved text ever goes through it)."""

from __future__ import annotations

import streamlit as st

# A citation link jumps to its card (#evidence-n); the card that holds the target is outlined, so the reader sees
# which source the number points to. Streamlit gives a keyed container the class st-key-<key>.
_CSS = """
<style>
[class*="st-key-card-"]:has(:target) { outline: 3px solid #f59e0b; border-radius: 0.6rem;
                                       background: rgba(245, 158, 11, 0.08); }
</style>
"""


def apply_style() -> None:
    st.markdown(_CSS, unsafe_allow_html=True)
