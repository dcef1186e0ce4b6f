"""The Python API: one object that holds the models and the store and answers requests.

    from medrag import Assistant
    with Assistant.local() as assistant:
        answer = assistant.ask(question="Is there a pleural effusion?", note="Dyspnoea.", image="study.dcm")
        print(answer.text)                      # each sentence cites its evidence: "... [1]."
        for citation in answer.citations:       # [1] -> the source id and the exact sentence
            print(citation.number, citation.source_id, citation.sentence)
        report = answer.to_fhir()               # FHIR R4 DiagnosticReport, preliminary, AI-asserted

``search`` stops before the answer and returns the ranked evidence. One Assistant serves many threads.

Every request is de-identified first (``QueryPreparer``); then routed (``Router``), embedded once
(the same text vector serves routing and retrieval), searched and merged (``Retriever``), and the
candidates reranked by the fusion module, which also picks the evidence sentences and says where it
looked (``FusionReranker``); the answer is written from those sentences (``AnswerWriter``). Models load
once per Assistant; the joint image model when the first image arrives, the language model at the first
generative answer.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from medrag.config import Config, load_config
from medrag.encode.joint import JointEncoder
from medrag.encode.text import TextEncoder
from medrag.fuse.reranker import FusionReranker, query_sentences
from medrag.generate.answer import Answer
from medrag.generate.writer import AnswerWriter, resolve_mode
from medrag.ingest.dicom_deid import DicomDeidentifier
from medrag.ingest.pipeline import Ingestor, IngestSummary
from medrag.ingest.query_input import ImageInput, QueryInput, QueryPreparer
from medrag.ingest.secrets import deid_key
from medrag.retrieve.cache import QueryCache
from medrag.retrieve.retriever import Evidence, Retriever
from medrag.route.features import Query
from medrag.route.router import Hints, Route, Router
from medrag.store import Filters, Store

PASSAGES = 3
"""Sentences shown per evidence item."""
STAGES = ("prepare", "embed", "route", "search", "merge", "fuse")
log = logging.getLogger(__name__)


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

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.query.question, "note": self.query.note, "has_image": self.query.image is not None,
                "route": self.route.to_dict(), "fusion": self.fusion.to_dict() if self.fusion else None,
                "warnings": self.warnings,
                "evidence": [{"collection": item.collection, "source_id": item.source_id,
                              "score": round(item.score, 6), "ranks": item.ranks, "passages": item.passages,
                              "title": item.properties.get("title")} for item in self.evidence],
                "timings_ms": {stage: round(ms, 2) for stage, ms in self.timings_ms.items()}}

    def render(self, explain: bool = False) -> str:
        """Readable text for a terminal: the route (with ``explain``) and the ranked evidence with passages."""
        lines = []
        if explain:
            route = self.route
            lines += [f"Route: {route.intent} (confidence {route.confidence:.2f})", f"  {route.reason}",
                      "  sources: " + ", ".join(f"{s.collection} weight {s.weight:.2f} alpha {s.alpha} top {s.limit}"
                                                for s in route.searches)
                      + ("; the image by the joint vector" if route.image_search else ""),
                      "  models: " + ", ".join(f"{role}={name}" for role, name in route.models.items()),
                      "  timings: " + ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in self.timings_ms.items())]
        lines.append(f"Evidence ({len(self.evidence)}):")
        for rank, item in enumerate(self.evidence, 1):
            title = item.properties.get("title") or item.properties.get("finding") or ""
            # "#rank", not "[rank]": square brackets are the answer's citations
            lines.append(f"#{rank} {item.collection} {item.source_id}  score {item.score:.4f}  {title}".rstrip())
            if explain:
                found = "     found by " + ", ".join(f"{name} #{place}" for name, place in item.ranks.items())
                if self.fusion:
                    found += (f"; fusion score {self.fusion.scores[rank - 1]:.2f} "
                              f"(retrieval #{self.fusion.retrieval_ranks[rank - 1]})")
                lines.append(found)
            lines += [f"     - {passage}" for passage in item.passages]
        lines += [f"Warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - started) * 1000


class Assistant:
    def __init__(self, config: Config, store: Store, *, text_encoder: TextEncoder | None = None,
                 joint_encoder: JointEncoder | None = None, cache: QueryCache | None = None) -> None:
        self.config = config
        self.store = store
        self.text_encoder = text_encoder or TextEncoder(config.text_model)
        self._given_joint = joint_encoder
        self.retriever = Retriever(store, self.text_encoder, joint_encoder, cache)
        self.router = Router.load(config, self.text_encoder.encode)
        self.prepare = QueryPreparer(DicomDeidentifier(deid_key(config)))
        self.writer = AnswerWriter(config, self.retriever.text_vectors, self.text_encoder.dim)
        # One request at a time through the models: torch already uses every core for one request, and the
        # query cache and the lazily loaded models are not meant for concurrent writers.
        self._lock = threading.RLock()

    @classmethod
    def local(cls, config: Config | None = None, **models: Any) -> Assistant:
        """The embedded Weaviate server and the default models (``config`` from medrag.toml / env if None)."""
        config = config or load_config()
        return cls(config, Store.open(config), **models)

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, *, tenant: str = "default",
                config: Config | None = None, **models: Any) -> Assistant:
        """A running Weaviate cluster (one tenant per hospital)."""
        config = (config or load_config()).replace(weaviate={"url": url, "api_key": api_key, "tenant": tenant})
        return cls(config, Store.open(config), **models)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @functools.cached_property
    def reranker(self) -> FusionReranker | None:
        """The fusion module (``config.fusion_model``), or None when fusion is off or was never trained."""
        if not self.config.fusion:
            return None
        try:
            return FusionReranker.load(self.config.fusion_model)
        except FileNotFoundError:
            if self.config.fusion_model is not None:  # the user named a checkpoint: a missing one is their error
                raise
            log.warning("no fusion checkpoint; results stay in retrieval order (run `medrag train fusion`)")
            return None

    @functools.cached_property
    def joint_encoder(self) -> JointEncoder:
        """Loaded when the first image arrives: text-only use never pays for the image tower."""
        return self._given_joint or JointEncoder.load(self.config.joint_model)

    def ask(self, question: str | None = None, note: str | None = None, image: ImageInput | None = None, *,
            filters: Filters | None = None, tenant: str | None = None, mode: str | None = None, k: int = 10,
            hints: Hints | None = None, on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer a request with cited evidence.

        ``image``: a DICOM or PNG/JPEG path, bytes, or a pydicom Dataset (de-identified before use).
        ``mode``: "extractive" quotes the best evidence sentences; "generative" lets the language model write
        (``on_token`` receives the text as it streams) and keeps only sentences the evidence supports; "auto"
        (default ``config.answer_mode``) takes the routing table's choice for the query's intent.
        Raises ValueError for an empty query, an unreadable image or an unknown mode, and UnknownTenant.
        """
        request = {"question": question, "note": note, "image": image, "hints": hints}
        return self.ask_batch([request], filters=filters, tenant=tenant, mode=mode, k=k, on_token=on_token)[0]

    def ask_batch(self, requests: Sequence[Mapping[str, Any]], *, filters: Filters | None = None,
                  tenant: str | None = None, mode: str | None = None, k: int = 10,
                  on_token: Callable[[str], None] | None = None) -> list[Answer]:
        """Many requests (dicts of question/note/image/hints) searched as one batch, then answered in order."""
        mode = mode or self.config.answer_mode
        resolve_mode(mode, None)  # an unknown mode fails before any work
        with self._lock:
            answers = [self.writer(result, mode, on_token)
                       for result in self.search_batch(requests, filters=filters, tenant=tenant, k=k)]
        for answer in answers:
            answer.models = {**self.models(answer.search), **answer.models}
        return answers

    def models(self, result: SearchResult | None = None) -> dict[str, str]:
        """Which model does each job (for the audit trail of an answer)."""
        names = {"text_encoder": str(self.text_encoder.model_path),
                 "router": f"{self.config.router_model or 'intent-minilm (committed)'}, logistic regression over "
                           f"{self.router.classifier.card.get('text_model', 'text')} embeddings"}
        if result is None or result.query.image is not None:
            names["joint_encoder"] = self.joint_encoder.source
        if self.reranker is not None:
            names["fusion"] = self.reranker.source
        return names

    def ingest_pubmed(self, paths: Iterable[str | Path], *, mapping: str | Path | None = None,
                      tenant: str | None = None, progress: bool = False) -> IngestSummary:
        """MEDLINE/PubMed XML, PubTator or PubMedQA JSON files or folders (as ``medrag ingest pubmed``)."""
        return self._ingestor(tenant, progress, joint=False).pubmed([Path(path) for path in paths], mapping=mapping)

    def ingest_reports(self, paths: Iterable[str | Path], *, mapping: str | Path | None = None,
                       tenant: str | None = None, progress: bool = False) -> IngestSummary:
        """Open-i/IU ecgen XML (also inside .tgz) or CSV reports (as ``medrag ingest reports``)."""
        return self._ingestor(tenant, progress).reports([Path(path) for path in paths], mapping=mapping)

    def ingest_images(self, paths: Iterable[str | Path], *, notes: str | Path | None = None,
                      mapping: str | Path | None = None, tenant: str | None = None,
                      progress: bool = False) -> IngestSummary:
        """DICOM files or folders, PNG/JPEG images and image+note CSVs (as ``medrag ingest images``)."""
        return self._ingestor(tenant, progress).images([Path(path) for path in paths],
                                                       notes=Path(notes) if notes else None, mapping=mapping)

    def _ingestor(self, tenant: str | None, progress: bool, joint: bool = True) -> Ingestor:
        """An ingestor sharing this Assistant's encoders (articles carry no joint vector)."""
        return Ingestor(self.config, self.store, text_encoder=self.text_encoder,
                        joint_encoder=self.joint_encoder if joint else None, joint=joint, tenant=tenant,
                        progress=progress)

    def search(self, question: str | None = None, note: str | None = None, image: ImageInput | None = None, *,
               filters: Filters | None = None, tenant: str | None = None, k: int = 10,
               hints: Hints | None = None) -> SearchResult:
        """Route the de-identified request, search the chosen sources, return the ranked evidence."""
        request = {"question": question, "note": note, "image": image, "hints": hints}
        return self.search_batch([request], filters=filters, tenant=tenant, k=k)[0]

    def search_batch(self, requests: Sequence[Mapping[str, Any]], *, filters: Filters | None = None,
                     tenant: str | None = None, k: int = 10) -> list[SearchResult]:
        """Many requests (dicts of question/note/image/hints): one embedding call for the texts not cached yet,
        one for all images, one routing call; then a search per request. Shared stages are split evenly in the
        timings."""
        with self._lock:
            return self._search_batch(requests, filters, tenant, k)

    def _search_batch(self, requests: Sequence[Mapping[str, Any]], filters: Filters | None, tenant: str | None,
                      k: int) -> list[SearchResult]:
        watch = _Stopwatch()
        with watch.stage("prepare"):
            prepared = [self.prepare(r.get("question"), r.get("note"), r.get("image")) for r in requests]
            queries = [Query(item.question, item.note, item.image is not None) for item in prepared]
        with watch.stage("embed"):
            blank = np.zeros(self.text_encoder.dim, dtype=np.float32)  # rows without text are routed by rule
            texts = [query.text for query in queries if query.text]
            vectors = iter(self.retriever.text_vectors(texts)) if texts else iter(())
            text_vectors = [next(vectors) if query.text else blank for query in queries]
            image_vectors, feature_maps = self._images(prepared)
        with watch.stage("route"):
            routes = self.router.route_batch(queries, [r.get("hints") for r in requests], np.stack(text_vectors))
        shared = {stage: ms / len(requests) for stage, ms in watch.timings.items()}
        depth = max(k, self.config.rerank_depth) if self.reranker is not None else k
        results = []
        for request, query, route, text_vector, image_vector, feature_map in zip(
                prepared, queries, routes, text_vectors, image_vectors, feature_maps, strict=True):
            own = _Stopwatch()
            with own.stage("search"):
                rankings = self.retriever.rankings(
                    query.text, route.searches, text_vector=text_vector,
                    image_vector=image_vector if route.image_search else None, filters=filters, tenant=tenant)
            with own.stage("merge"):
                evidence = self.retriever.merge(query.text, rankings, depth)
            result = SearchResult(request, route, evidence, {**shared, **own.timings})
            with own.stage("fuse"):
                self._fuse(result, feature_map, k)
            result.timings_ms = {**shared, **own.timings}
            results.append(result)
        return results

    def _images(self, prepared: Sequence[QueryInput]) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        """Joint vectors of the requests' images and, when fusion runs, the tower's feature maps (one pass)."""
        images = [item.image for item in prepared if item.image is not None]
        if not images:
            return [None] * len(prepared), [None] * len(prepared)
        if self.reranker is not None:
            vectors, maps = self.joint_encoder.encode_images_and_patches(images)
        else:
            vectors, maps = self.joint_encoder.encode_images(images), [None] * len(images)
        pairs = iter(zip(vectors, maps, strict=True))
        chosen = [next(pairs) if item.image is not None else (None, None) for item in prepared]
        return [vector for vector, _ in chosen], [grid for _, grid in chosen]

    def _fuse(self, result: SearchResult, feature_map: np.ndarray | None, k: int) -> None:
        """Rerank ``result.evidence`` in place and cut it to ``k``; the sentences fusion picks become the passages."""
        if self.reranker is None or not result.evidence:
            result.evidence = result.evidence[:k]
            return
        evidence = result.evidence
        try:
            candidates = [(item.sentence_vectors(self.text_encoder.dim), item.collection) for item in evidence]
        except ValueError as error:
            result.warnings.append(f"fusion skipped, results in retrieval order: {error}")
            result.evidence = evidence[:k]
            return
        texts = query_sentences(result.query.question, result.query.note, self.reranker.model.config)
        text = self.retriever.text_vectors(texts) if texts else None
        fused = self.reranker(text, feature_map, candidates, selected=self.config.evidence_sentences)
        keep = fused.order[:k]
        place = {index: position for position, index in enumerate(keep)}
        for index in keep:
            item = evidence[index]
            sentences = item.properties.get("sentences") or []
            scores = fused.sentence_scores[index]
            best = sorted(range(len(scores)), key=lambda s, row=scores: -row[s])[:PASSAGES]
            item.passages = [sentences[s] for s in sorted(best)]
        result.evidence = [evidence[index] for index in keep]
        result.fusion = FusionView(
            scores=[fused.scores[index] for index in keep],
            retrieval_ranks=[index + 1 for index in keep],
            selected=[(place[c], s, score) for c, s, score in fused.selected if c in place],
            sentence_attention=[fused.sentence_attention[index] for index in keep],
            image_attention=None if fused.image_attention is None else [fused.image_attention[i] for i in keep],
            gate=fused.gate, model=self.reranker.source)
