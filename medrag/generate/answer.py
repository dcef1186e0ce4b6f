"""What ``Assistant.ask`` returns: the answer, its citations, the evidence and how it was reached.

``to_dict`` is plain JSON; ``to_fhir`` is a FHIR R4 DiagnosticReport for hospital systems, status
"preliminary" and tagged AI-asserted: a draft for a clinician to review, never a final report.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from medrag.generate.decision import Decision
from medrag.generate.grounding import Claim
from medrag.generate.prompt import SOURCE_LABELS

if TYPE_CHECKING:
    from medrag.assistant import SearchResult
    from medrag.retrieve.retriever import Evidence
    from medrag.route.router import Route

INSUFFICIENT = "Insufficient evidence: the retrieved sources do not answer this question."
DRAFT_NOTICE = "AI-generated draft for clinician review; not a diagnosis."
_AI_TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "AIAST",
           "display": "Artificial Intelligence asserted"}


@dataclasses.dataclass(frozen=True)
class Citation:
    number: int
    """``[number]`` in the answer text."""
    collection: str
    source_id: str
    """PMID, report id or case id."""
    sentence: str
    """The exact stored sentence."""
    sentence_index: int
    relevance: float
    """Cosine between the query and the sentence (NaN for an image-only query)."""
    support: float
    """Best support it gives to a sentence that cites it (1.0 for quoted, extractive sentences)."""

    @property
    def label(self) -> str:
        return f"{SOURCE_LABELS.get(self.collection, self.collection)} {self.source_id}"

    def to_dict(self) -> dict[str, Any]:
        relevance = None if self.relevance != self.relevance else round(self.relevance, 4)
        return {"number": self.number, "collection": self.collection, "source_id": self.source_id,
                "sentence": self.sentence, "sentence_index": self.sentence_index, "relevance": relevance,
                "support": round(self.support, 4)}


@dataclasses.dataclass
class Answer:
    text: str
    """The answer, each sentence ending with its citations, e.g. "... at night [1]."."""
    mode: str
    """"extractive" (quoted evidence sentences) or "generative" (language model, grounding-checked)."""
    insufficient: bool
    """True when the evidence did not support an answer; ``text`` then says so."""
    claims: list[Claim]
    citations: list[Citation]
    decision: Decision | None
    """Yes / no / maybe with a confidence, for yes/no questions."""
    search: SearchResult
    """The route, the evidence, the fusion view (attention maps) and the search warnings."""
    timings_ms: dict[str, float]
    models: dict[str, str]
    """Which model did each job, for the audit trail."""
    dropped: list[Claim] = dataclasses.field(default_factory=list)
    """Generated sentences removed by the grounding check, with the reason."""
    grounding: dict[str, int] = dataclasses.field(default_factory=dict)
    """Counts behind citation precision and the supported share, as written before the check."""
    warnings: list[str] = dataclasses.field(default_factory=list)
    tokens: int = 0
    """Tokens the language model generated (0 for extractive answers)."""

    @property
    def route(self) -> Route:
        return self.search.route

    @property
    def evidence(self) -> list[Evidence]:
        return self.search.evidence

    @property
    def heading(self) -> str:
        """Without a question the answer is the closest evidence (similar studies), not a reply: say so."""
        return "Answer" if self.search.query.question else "Closest evidence (no question asked)"

    def to_dict(self) -> dict[str, Any]:
        search = self.search.to_dict()
        return {"answer": self.text, "mode": self.mode, "insufficient_evidence": self.insufficient,
                "decision": self.decision.to_dict() if self.decision else None,
                "claims": [claim.to_dict() for claim in self.claims],
                "citations": [citation.to_dict() for citation in self.citations],
                "dropped": [claim.to_dict() for claim in self.dropped], "grounding": self.grounding,
                "generated_tokens": self.tokens,
                "question": search["question"], "note": search["note"], "has_image": search["has_image"],
                "route": search["route"], "evidence": search["evidence"], "fusion": search["fusion"],
                "timings_ms": {stage: round(ms, 2) for stage, ms in self.timings_ms.items()},
                "models": self.models, "warnings": self.warnings + search["warnings"], "notice": DRAFT_NOTICE}

    def to_fhir(self, issued: dt.datetime | None = None) -> dict[str, Any]:
        """A FHIR R4 DiagnosticReport (JSON shape): preliminary, AI-asserted, citations as presented text.
        The caller adds ``subject`` / ``encounter`` references; medrag never sees who the patient is."""
        issued = issued or dt.datetime.now(dt.UTC)
        conclusion = f"{DRAFT_NOTICE} {self.heading}: {self.text}"
        if self.decision:
            conclusion += f" Decision: {self.decision.label} (confidence {self.decision.confidence:.2f})."
        sources = "\n".join(f"[{c.number}] {c.label}: {c.sentence}" for c in self.citations)
        presented = f"{conclusion}\n\nSources:\n{sources}" if sources else conclusion
        return {
            "resourceType": "DiagnosticReport",
            "meta": {"tag": [_AI_TAG]},
            "status": "preliminary",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                      "display": "Radiology"}]}],
            "code": {"text": "medrag evidence-grounded answer (AI-generated draft)"},
            "issued": issued.isoformat(),
            "conclusion": conclusion,
            "presentedForm": [{"contentType": "text/plain; charset=utf-8", "language": "en",
                               "data": base64.b64encode(presented.encode()).decode("ascii"),
                               "title": "Answer with cited sources"}],
            "extension": [{"url": "https://medrag.dev/fhir/StructureDefinition/citation",
                           "valueString": f"[{c.number}] {c.label}: {c.sentence}"} for c in self.citations],
        }

    def render(self, explain: bool = False) -> str:
        """Readable text for a terminal: the answer, the decision, the numbered sources, then the evidence."""
        lines = [f"{self.heading} ({self.mode}): {self.text}"]
        if self.decision:
            lines.append(f"Decision: {self.decision.label} (confidence {self.decision.confidence:.2f}; "
                         f"{self.decision.decider}: {self.decision.reliability})")
        if self.citations:
            lines.append("Sources:")
            lines += [f"  [{c.number}] {c.label}: {c.sentence}" for c in self.citations]
        lines += [f"  dropped (unsupported): {claim.text} ({claim.note})" for claim in self.dropped]
        lines += [f"Warning: {warning}" for warning in self.warnings]
        if explain:
            lines += ["", self.search.render(explain=True),
                      "  answer timings: " + ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in self.timings_ms.items()
                                                       if stage not in self.search.timings_ms),
                      "  models: " + ", ".join(f"{role}={name}" for role, name in self.models.items())]
        lines.append(DRAFT_NOTICE)
        return "\n".join(lines)
