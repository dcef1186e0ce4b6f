"""The answer as markdown: numbers link to the card that holds their sentence, nothing untrusted is interpreted."""

from __future__ import annotations

import re

from medrag.types import Answer, Citation, Claim, Evidence, QueryInput, Route, SearchResult, SourceSearch
from ui import markdown as md


def _evidence(source_id: str, sentences: list[str]) -> Evidence:
    return Evidence("PubmedArticle", source_id, 0.1, {"PubmedArticle/hybrid": 1}, {"sentences": sentences}, sentences)


def _answer(claims: list[Claim], citations: list[Citation], evidence: list[Evidence],
            dropped: list[Claim] | None = None) -> Answer:
    route = Route("literature", {"literature": 1.0}, (SourceSearch("PubmedArticle"),), False, {}, "test", ())
    search = SearchResult(QueryInput("q?", "", None, None, {}), route, evidence, {})
    return Answer("text", "generative", not claims, claims, citations, None, search, {}, {}, dropped or [])


def _citation(number: int, source_id: str, index: int = 0) -> Citation:
    return Citation(number, "PubmedArticle", source_id, "s", index, 0.8, 0.9, f"PubMed {source_id}")


def test_escape_neutralises_links_html_latex_and_directives() -> None:
    hostile = "[click](javascript:alert(1)) <img src=x onerror=alert(1)> $x^2$ :red[alarm] **bold** # head"
    escaped = md.escape(hostile)
    assert re.search(r"(?<!\\)[\[\]()<>$*#:!]", escaped) is None  # every special character is escaped
    assert escaped.replace("\\", "") == hostile  # and nothing else changed


def test_citations_link_to_the_card_holding_their_source_and_unknown_numbers_are_never_written() -> None:
    evidence = [_evidence("111", ["a."]), _evidence("222", ["b.", "c."])]
    claims = [Claim("First claim.", [1], 0.9, True), Claim("Second claim", [2, 1, 7], 0.8, True)]
    answer = _answer(claims, [_citation(1, "222", 1), _citation(2, "111")], evidence)
    text = md.answer_markdown(answer)
    assert text == ("First claim [\\[1\\]](#evidence-2). Second claim [\\[2\\]](#evidence-1) "
                    "[\\[1\\]](#evidence-2).")
    assert "7" not in text  # a number without a citation (and so without a card) is left out


def test_insufficient_answer_has_no_text_and_dropped_sentences_are_struck_through_with_the_reason() -> None:
    dropped = Claim("The moon is made of cheese.", [3], 0.1, False, note="the cited evidence does not support it")
    answer = _answer([], [], [_evidence("1", ["a."])], [dropped])
    assert md.answer_markdown(answer) == ""
    line = md.dropped_markdown(dropped)
    assert line.startswith("~~The moon is made of cheese\\.~~") and "does not support it" in line


def test_a_streamed_draft_holds_citation_marks_back_so_a_shown_number_never_changes() -> None:
    assert md.draft_markdown("Effusion is common [3]. It resolves [1, 2") == "Effusion is common \\. It resolves"
    assert md.draft_markdown("Pneumonia [") == "Pneumonia"
    assert "[" not in md.draft_markdown("A [2]. B [4-5]. C [")


def test_only_pmids_become_pubmed_links() -> None:
    assert md.pubmed_url("17323047") == "https://pubmed.ncbi.nlm.nih.gov/17323047/"
    assert md.pubmed_url("CXR57") is None
    assert md.pubmed_url("1)](javascript:alert(1)") is None


def test_highlighted_sentence_keeps_its_text_literal() -> None:
    line = md.highlighted("Effusion [sic] in 3.5% *of* cases", [1, 4])
    assert line.startswith(":orange-background[") and line.endswith("**\\[1\\] \\[4\\]**")
    assert "[sic]" not in line and "*of*" not in line


def test_card_of_citation_uses_the_evidence_order() -> None:
    evidence = [_evidence("9", ["x."]), _evidence("8", ["y."])]
    answer = _answer([Claim("c", [1], 1.0, True)], [_citation(1, "8")], evidence)
    assert md.card_of_citation(answer) == {1: 2}
