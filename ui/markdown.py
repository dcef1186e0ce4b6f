"""Answer, citations and evidence as Streamlit markdown, with every piece of retrieved or user text escaped.

Pure functions (no Streamlit import) so the rules a reader relies on are unit-tested: every ``[n]`` links to
the card of the evidence it cites, an ``[n]`` without a card is never written, numbers are the answer's own
(the same as in the JSON and FHIR downloads), and no text from an abstract, a report or the user can become
a link, an image, HTML, LaTeX or a colour directive.
"""

from __future__ import annotations

import re

from medrag.types import Answer, Claim

# Streamlit's markdown has no escape function: CommonMark lets a backslash escape any ASCII punctuation, which
# covers links, emphasis, HTML, tables, LaTeX ($) and Streamlit's :colour[...] directives and :emoji: codes.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|$~:=\"'&^])")
_CITATION = re.compile(r"\[\s*\d+(?:\s*[,;\u2013-]\s*\d+)*\s*\]")
_OPEN_CITATION = re.compile(r"\[[\d\s,;\u2013-]*$")
_PMID = re.compile(r"^\d{1,9}$")


def escape(text: str) -> str:
    """``text`` shown literally by ``st.markdown`` (line breaks become spaces: one paragraph)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def card_anchor(index: int) -> str:
    """The HTML id of evidence card ``index`` (1-based, the evidence order on the page)."""
    return f"evidence-{index}"


def card_of_citation(answer: Answer) -> dict[int, int]:
    """Citation number -> evidence card (1-based) holding its sentence; a citation without a card is absent."""
    cards = {(item.collection, item.source_id): index for index, item in enumerate(answer.evidence, 1)}
    return {citation.number: cards[key] for citation in answer.citations
            if (key := (citation.collection, citation.source_id)) in cards}


def citation_links(numbers: list[int], cards: dict[int, int]) -> str:
    """`` [1] [3]`` as links to their cards; numbers without a card are left out."""
    return "".join(f" [\\[{n}\\]](#{card_anchor(cards[n])})" for n in numbers if n in cards)


def claim_markdown(claim: Claim, cards: dict[int, int]) -> str:
    return f"{escape(claim.text.rstrip().rstrip('.'))}{citation_links(claim.cited, cards)}."


def dropped_markdown(claim: Claim) -> str:
    """A sentence the grounding check removed: struck through, with the reason (its citations are not links:
    the check found that they do not support it)."""
    return f"~~{escape(claim.text)}~~ — *removed by the grounding check: {escape(claim.note or 'unsupported')}*"


def answer_markdown(answer: Answer) -> str:
    """The supported sentences with linked citations, one paragraph (empty when the answer is insufficient)."""
    if answer.insufficient:
        return ""
    cards = card_of_citation(answer)
    return " ".join(claim_markdown(claim, cards) for claim in answer.claims)


def draft_markdown(streamed: str) -> str:
    """What the language model has written so far, for display while it streams: citation marks are held back
    (the grounding check numbers and links them when the text is complete, so a number once shown never
    changes), and so is an unfinished mark at the end."""
    text = _OPEN_CITATION.sub("", _CITATION.sub("", streamed))
    return escape(text)


def pubmed_url(source_id: str) -> str | None:
    """The PubMed page of a PMID; None for anything that is not a PMID (nothing else becomes a link)."""
    return f"https://pubmed.ncbi.nlm.nih.gov/{source_id}/" if _PMID.match(source_id) else None


def highlighted(sentence: str, numbers: list[int]) -> str:
    """A cited evidence sentence, highlighted, with the citation numbers that quote it."""
    marks = " ".join(f"\\[{n}\\]" for n in numbers)
    return f":orange-background[{escape(sentence)}] **{marks}**"
