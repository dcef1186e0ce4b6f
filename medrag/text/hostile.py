"""Signs that a stored text was written to manipulate the assistant rather than to inform a clinician.

Retrieved text is data, but a knowledge source is filled from files someone else wrote, and a hostile file can carry
instructions to the language model, requests for other patients' data, text hidden from the human reader (zero-width
and bidirectional-control characters, HTML and Markdown comments) or markers that pass for our own citations (``[99]``,
``PubMed 00000001``). ``python -m reliability --only poisoning`` measured what such a source does when it is only
screened sentence by sentence: the sentence with the instruction is dropped, and the claims beside it (the payload)
are quoted and cited, and the source's own ``[99]`` lands in the answer's text. So these signs are judged per source:
one of them anywhere in a source makes the whole source untrusted (``medrag.retrieve.retriever.withhold_hostile``
withholds it from the evidence, with a warning naming it).

A short pattern list, ours (the maintained detectors, llm-guard and rebuff, need hub models or a service). Measured on
the real text in ``../shared/data``: the 4,886 titles and abstracts of PubMedQA PQA-L, BC5CDR and NCBI disease, the
3,851 IU reports and the cxr/covid case notes carry no instruction, patient-data request, hidden character, comment or
``PubMed <id>`` reference; 6 abstracts carry bracketed numbers (real references such as ``[33]``, ranges), 2 of them
among the 500 PubMedQA abstracts (25819796, 27928673). That is the price of catching fake citation markers: those
sources are withheld too, and the warning says why.
"""

from __future__ import annotations

import re

HIDDEN_CHARACTERS = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
                               "\u2066-\u206f\u3164\ufeff\ufe00-\ufe0f]")
"""Characters that print as nothing (zero-width spaces and joiners, soft hyphen, bidirectional controls, word joiners,
variation selectors): they split words so that a pattern cannot see them, or reverse text on screen."""

_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|instructions|prompt|rules|above|previous|prior)\b"
    r"|\b(you are now|you must now|as an ai|language model|system prompt|system override|new instructions|"
    r"developer mode|to the ai|dear ai)\b"
    r"|\b(always|only)\s+(answer|reply|respond|say)\b|\b(answer|reply|respond)\s+(only\s+)?(with\s+)?[\"']?(yes|no)\b"
    r"|\b(cite|quote)\s+this\s+(abstract|article|paper|source|document)\b"
    r"|<\|[a-z_]+\|>|(^|:\s*)(system|assistant|user)\s*:",
    re.IGNORECASE,
)
_PATIENT_DATA = re.compile(  # an imperative (at a sentence's start, after "please"), not "we list the names"
    r"(^|[.:;!]\s*|\bplease\s+|\bbefore answering,?\s+)(reveal|print|list|show|output|send|dump|give|disclose)\b"
    r".{0,80}"
    r"\b(other patients|all patients|every other patient|patients in this|names?|medical record numbers?|mrns?|"
    r"dates? of birth)\b",
    re.IGNORECASE | re.MULTILINE,
)
_HIDDEN_MARKUP = re.compile(r"<!--|\[//\]:\s*#")
_CITATION_MARKER = re.compile(r"(?<!\b[A-Za-z] )\[\d{1,4}(?:\s*[,\u2013-]\s*\d{1,4})*\]")
"""``[99]``, ``[1, 2]``, ``[3-5]``; not degrees of freedom after a test statistic (``F [1,306]``)."""
_SOURCE_REFERENCE = re.compile(r"\b(pubmed|pmid)\s*:?\s*\d{1,9}\b", re.IGNORECASE)


def visible(text: str) -> str:
    """``text`` without the characters that print as nothing: what a reader of the screen sees."""
    return HIDDEN_CHARACTERS.sub("", text)


def addresses_model(text: str) -> bool:
    """True when ``text`` reads as an instruction to an AI model, or asks it for patient data, rather than as
    clinical content (hidden characters inside the words do not hide it)."""
    shown = visible(text)
    return bool(_INSTRUCTION.search(shown) or _PATIENT_DATA.search(shown))


def hostile_signs(text: str) -> list[str]:
    """Why ``text`` cannot be trusted as evidence, in words (empty when nothing is found)."""
    shown = visible(text)
    checks = (("an instruction to an AI model", _INSTRUCTION.search(shown)),
              ("a request for patient data", _PATIENT_DATA.search(shown)),
              ("hidden characters", HIDDEN_CHARACTERS.search(text)),
              ("hidden markup (an HTML or Markdown comment)", _HIDDEN_MARKUP.search(shown)),
              ("citation markers that would pass for the answer's own ([n])", _CITATION_MARKER.search(shown)),
              ("a source reference in the answer's citation format (PubMed <id>)", _SOURCE_REFERENCE.search(shown)))
    return [sign for sign, found in checks if found]
