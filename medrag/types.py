"""The data that flows between the stages, at the bottom of the layers.

Every stage takes and returns these (the request as de-identified, the route, the evidence, the rerank
view, the answer and its citations), so a stage depends on the types, never on the stage that made them.
Importing this module loads neither torch nor the Weaviate client.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medrag.imaging.radiograph import Radiograph
from medrag.vectors import SENTENCE_VECTORS, unpack_vectors

STAGES = ("prepare", "embed", "read", "route", "search", "merge", "fuse")
"""The search pipeline's stages, in order, as they appear in the timings."""


# --- the request -------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Request:
    """What a caller asks, before de-identification: any of a question, a note and an image."""

    question: str | None = None
    note: str | None = None
    image: Any = None
    """A DICOM or PNG/JPEG path, bytes, a binary stream, a pydicom Dataset or a decoded ``Radiograph``."""
    hints: Hints | None = None

    @classmethod
    def of(cls, value: Request | Mapping[str, Any]) -> Request:
        """A request from a dict with any of the keys question, note, image and hints."""
        if isinstance(value, Request):
            return value
        unknown = set(value) - {"question", "note", "image", "hints"}
        if unknown:
            raise ValueError(f"request has unknown keys {sorted(unknown)}; use question, note, image and hints")
        return cls(**value)


@dataclasses.dataclass
class QueryInput:
    question: str
    note: str
    image: Radiograph | None
    dicom: Dataset | None
    """The de-identified DICOM, for display with its own window/level; None for PNG/JPEG."""
    scrubbed: dict[str, int]
    """How many identifiers of each kind were replaced in the question and note."""


# --- routing and retrieval ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SourceSearch:
    """How to search one source: its collection, weight in the merge, hybrid alpha and depth."""

    collection: str
    weight: float = 1.0
    alpha: float = 0.5
    limit: int = 20


@dataclasses.dataclass(frozen=True)
class Hints:
    """What the user asked for explicitly; hints beat the model."""

    sources: tuple[str, ...] = ()
    """Search exactly these collections."""
    intent: str | None = None
    """Treat the query as this intent (a row of the routing table)."""


@dataclasses.dataclass(frozen=True)
class Route:
    intent: str
    probabilities: dict[str, float]
    searches: tuple[SourceSearch, ...]
    image_search: bool
    """Search the joint vector of reports and cases with the query image."""
    models: dict[str, str]
    reason: str
    rules: tuple[str, ...]
    """Overrides that changed the model's decision, in the order they applied."""

    @property
    def confidence(self) -> float:
        return self.probabilities[self.intent]

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "confidence": round(self.confidence, 4),
                "probabilities": {name: round(p, 4) for name, p in self.probabilities.items()},
                "sources": [dataclasses.asdict(search) for search in self.searches],
                "image_search": self.image_search, "models": self.models, "reason": self.reason,
                "rules": list(self.rules)}


@dataclasses.dataclass
class Evidence:
    collection: str
    source_id: str
    score: float
    """Weighted RRF score: the sum over the rankings that found it."""
    ranks: dict[str, int]
    """Rank in each ranking that found it, e.g. ``{"RadiologyReport/hybrid": 1, "RadiologyReport/joint": 4}``."""
    properties: dict[str, Any]
    passages: list[str]

    def sentence_vectors(self, dim: int = 384) -> np.ndarray:
        """(len(sentences), dim) float32: the text-encoder vector of each stored sentence, stored at ingest."""
        blob = self.properties.get(SENTENCE_VECTORS)
        if not blob:
            raise ValueError(
                f"{self.collection} {self.source_id} has no {SENTENCE_VECTORS}: it was ingested before they "
                f"were stored; re-run `medrag ingest ...` on its source (same --tenant) to add sentence vectors"
            )
        vectors = unpack_vectors(blob, dim)
        sentences = self.properties.get("sentences") or []
        if len(vectors) != len(sentences):
            raise ValueError(f"{self.collection} {self.source_id}: {len(vectors)} sentence vectors for "
                             f"{len(sentences)} sentences; re-run `medrag ingest ...` on its source to re-encode")
        return vectors


# --- rerank and search result ---------------------------------------------------------------------------

@dataclasses.dataclass
class FusionView:
    """What the fusion module made of one request, aligned with ``SearchResult.evidence`` (reranked order)."""

    scores: list[float]
    """Rerank score of each evidence item."""
    retrieval_ranks: list[int]
    """Each item's place (1-based) in the retrieval order, before the rerank."""
    selected: list[tuple[int, int, float]]
    """The best evidence sentences over all items, best first: (evidence index, sentence index, score);
    the sentence is ``evidence[i].properties["sentences"][j]``."""
    sentence_attention: list[list[float]]
    """Per item, the share of the query's attention on each of its sentences."""
    image_attention: list[np.ndarray] | None
    """Per item, a (rows, cols) map over the query image (sums to 1): where the query looked while reading
    it. None without an image."""
    gate: float | None
    """Share of the image in the query (R2 gate)."""
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "gate": None if self.gate is None else round(self.gate, 4),
                "scores": [round(score, 4) for score in self.scores], "retrieval_ranks": self.retrieval_ranks,
                "selected": [{"evidence": e, "sentence": s, "score": round(score, 4)} for e, s, score in self.selected],
                "sentence_attention": [[round(value, 5) for value in row] for row in self.sentence_attention],
                "image_attention": None if self.image_attention is None else
                [np.round(grid, 5).tolist() for grid in self.image_attention]}


@dataclasses.dataclass(frozen=True)
class ImageRead:
    """The model's read of the query radiograph for one finding question: a calibrated probability shown with
    the reliability measured on patients no model trained on. It is a second opinion on the pixels (and, for
    ``inputs == "image + note"``, the note), never a diagnosis, and it cites no source."""

    task: str
    """What is told apart, e.g. "COVID-19 vs other pneumonia"."""
    inputs: str
    """"image" or "image + note"."""
    probabilities: dict[str, float]
    """Each class of the task and its probability (they sum to 1)."""
    auc: float
    """ROC AUC of this model on the held-out patients of its split."""
    auc_interval: tuple[float, float]
    """95% bootstrap interval of ``auc`` over held-out patients."""
    held_out: str
    """What ``auc`` was measured on, e.g. "110 images of 58 patients never trained on (split medrag-v1)"."""
    model: str

    @property
    def label(self) -> str:
        """The more likely class."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def sentence(self) -> str:
        """``Model read (image): COVID-19 more likely than other pneumonia, probability 0.83 (measured AUC
        0.78 [0.68-0.89] on ...); not a diagnosis.``"""
        others = " / ".join(name for name in self.probabilities if name != self.label)
        low, high = self.auc_interval
        return (f"Model read ({self.inputs}): {self.label} more likely than {others}, probability "
                f"{self.probabilities[self.label]:.2f} (measured AUC {self.auc:.2f} [{low:.2f}-{high:.2f}] on "
                f"{self.held_out}); not a diagnosis.")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "inputs": self.inputs, "label": self.label,
                "probabilities": {name: round(p, 4) for name, p in self.probabilities.items()},
                "auc": round(self.auc, 4), "auc_ci95": [round(value, 4) for value in self.auc_interval],
                "held_out": self.held_out, "model": self.model, "text": self.sentence}


@dataclasses.dataclass
class SearchResult:
    query: QueryInput
    route: Route
    evidence: list[Evidence]
    timings_ms: dict[str, float]
    """Milliseconds per stage, in ``STAGES`` order."""
    fusion: FusionView | None = None
    """None when fusion is off, no checkpoint exists, or the evidence has no stored sentence vectors."""
    warnings: list[str] = dataclasses.field(default_factory=list)
    reads: list[ImageRead] = dataclasses.field(default_factory=list)
    """The model's reads of the query image (image alone, and image + note when a note came); empty without an
    image or a read model that fits the joint model."""

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.query.question, "note": self.query.note, "has_image": self.query.image is not None,
                "route": self.route.to_dict(), "fusion": self.fusion.to_dict() if self.fusion else None,
                "warnings": self.warnings, "image_reads": [read.to_dict() for read in self.reads],
                "evidence": [{"collection": item.collection, "source_id": item.source_id,
                              "score": round(item.score, 6), "ranks": item.ranks, "passages": item.passages,
                              "title": item.properties.get("title")} for item in self.evidence],
                "timings_ms": {stage: round(ms, 2) for stage, ms in self.timings_ms.items()}}


# --- the answer -------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Claim:
    text: str
    """The sentence without its citation marks."""
    cited: list[int]
    """Evidence numbers it cites (after the check: those that support it)."""
    support: float
    """Best support over the cited sentences (cosine); 0 when none supports it."""
    supported: bool
    note: str = ""
    """Why it was dropped, or that the citation was added by the check."""

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "cited": self.cited, "support": round(self.support, 4),
                "supported": self.supported, "note": self.note}


@dataclasses.dataclass(frozen=True)
class Decision:
    label: str
    """"yes", "no" or "maybe"."""
    confidence: float
    """The decider's probability of ``label``."""
    probabilities: dict[str, float]
    decider: str
    reliability: str
    """What is measured about the decider, shown beside the decision so nobody reads more into it."""
    abstained: bool = False
    """The confidence is below the decider's measured threshold: the evidence does not settle the question."""
    reader_scores: tuple[float, ...] = ()
    """The reader's log-probabilities of yes / no / maybe that the decider read (evaluation reuses them for the
    zero-shot baseline instead of a second pass of the reader)."""

    @property
    def headline(self) -> str:
        """``yes`` / ``no`` / ``maybe``, or ``undecided (leans yes)`` when the decider abstained."""
        return f"undecided (leans {self.label})" if self.abstained else self.label

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": round(self.confidence, 4),
                "probabilities": {label: round(p, 4) for label, p in self.probabilities.items()},
                "decider": self.decider, "reliability": self.reliability, "abstained": self.abstained}


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
    label: str
    """How a reader names the source: "PubMed 17323047", "report CXR57" (the source's registered label)."""


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
    written: str = ""
    """What the language model wrote, before the grounding check dropped anything (empty for extractive
    answers): the audit trail of a generative answer, and what its citation precision is measured on."""

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
                "generated_tokens": self.tokens, "written": self.written,
                "question": search["question"], "note": search["note"], "has_image": search["has_image"],
                "image_reads": search["image_reads"], "route": search["route"], "evidence": search["evidence"],
                "fusion": search["fusion"],
                "timings_ms": {stage: round(ms, 2) for stage, ms in self.timings_ms.items()},
                "models": self.models, "warnings": self.warnings + search["warnings"], "notice": DRAFT_NOTICE}

    def to_fhir(self, issued: dt.datetime | None = None) -> dict[str, Any]:
        """A FHIR R4 DiagnosticReport (JSON shape): preliminary, AI-asserted, citations as presented text.
        The caller adds ``subject`` / ``encounter`` references; medrag never sees who the patient is."""
        issued = issued or dt.datetime.now(dt.UTC)
        conclusion = f"{DRAFT_NOTICE} {self.heading}: {self.text}"
        if self.decision:
            conclusion += f" Decision: {self.decision.label} (confidence {self.decision.confidence:.2f})."
        conclusion += "".join(f" {read.sentence}" for read in self.search.reads)
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
