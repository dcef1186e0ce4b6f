"""The app's pages: one registration point. A page is a function that draws it; ``register_page`` adds one to
the navigation (ARCHITECTURE.md: "Add a page to the app")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Page:
    title: str
    render: Callable[[], None]
    url_path: str
    """The page's address below the app's root, e.g. ``ask``."""
    icon: str = ""
    default: bool = False
    """The page the app opens on."""


_PAGES: dict[str, Page] = {}
_BUILTIN_PATHS = ("ask", "knowledge", "evaluation")


def register_page(page: Page, *, replace: bool = False) -> None:
    """Add ``page`` to the navigation after the built-in pages (``replace=True`` redefines a registered one)."""
    if page.url_path in {*_PAGES, *_BUILTIN_PATHS} and not replace:
        raise ValueError(f"a page at /{page.url_path} is already registered; pass replace=True to redefine it")
    _PAGES[page.url_path] = page


def pages() -> list[Page]:
    """The built-in pages (Ask, Knowledge base, Evaluation), then the registered ones in registration order."""
    from ui.views import ask, evaluation, knowledge

    builtin = [Page("Ask", ask.render, "ask", icon=":material/chat:", default=True),
               Page("Knowledge base", knowledge.render, "knowledge", icon=":material/database:"),
               Page("Evaluation", evaluation.render, "evaluation", icon=":material/monitoring:")]
    return [_PAGES.get(page.url_path, page) for page in builtin] + [
        page for path, page in _PAGES.items() if path not in _BUILTIN_PATHS]
