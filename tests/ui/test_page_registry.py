"""The app's pages come from one registry: the built-ins in order, then registered ones; a built-in can be
replaced only on purpose."""

from __future__ import annotations

import pytest

from ui import views
from ui.views import Page, pages, register_page


def test_built_in_pages_come_first_with_ask_as_the_default() -> None:
    found = pages()
    assert [page.url_path for page in found[:3]] == ["ask", "knowledge", "evaluation"]
    assert [page.url_path for page in found if page.default] == ["ask"]


def test_a_registered_page_is_added_after_the_built_ins_and_a_built_in_is_replaced_only_on_purpose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "_PAGES", {})
    register_page(Page("Audit", lambda: None, "audit"))
    assert [page.url_path for page in pages()] == ["ask", "knowledge", "evaluation", "audit"]
    with pytest.raises(ValueError, match="already registered"):
        register_page(Page("My evaluation", lambda: None, "evaluation"))
    register_page(Page("My evaluation", lambda: None, "evaluation"), replace=True)
    assert [page.title for page in pages()] == ["Ask", "Knowledge base", "My evaluation", "Audit"]
