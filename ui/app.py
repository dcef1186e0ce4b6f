"""medrag for clinicians: ``make ui`` or ``medrag ui`` (Streamlit, on 127.0.0.1).

Pages come from the registry in ``ui.views``; every page gets the shared Assistant from ``ui.resources`` and keeps
everything about a request in its own session.
"""

from __future__ import annotations

import streamlit as st

from ui.style import apply_style
from ui.views import pages


def main() -> None:
    st.set_page_config(page_title="medrag", page_icon=":material/radiology:", layout="wide")
    apply_style()
    navigation = st.navigation([st.Page(page.render, title=page.title, icon=page.icon or None,
                                        url_path=page.url_path, default=page.default) for page in pages()])
    navigation.run()


main()
