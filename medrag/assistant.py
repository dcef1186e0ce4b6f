"""The Python API: one object that holds the models and the store and answers requests.

    from medrag import Assistant
    with Assistant.local() as assistant:
        answer = assistant.ask(question="Is there a pleural effusion?", note="Dyspnoea.", image="study.dcm")
        print(answer.text)                      # each sentence cites its evidence: "... [1]."
        for citation in answer.citations:       # [1] -> the source id and the exact sentence
            print(citation.number, citation.source_id, citation.sentence)
        report = answer.to_fhir()               # FHIR R4 DiagnosticReport, preliminary, AI-asserted

``search`` stops before the answer and returns the ranked evidence. One Assistant serves many threads.

The work is done by the search pipeline (``medrag.pipeline.search``: prepare -> embed -> read -> route -> retrieve
-> rerank) and the answer writer (``medrag.generate.writer``); the Assistant owns their lifecycle: the models
(each loaded once, the joint image model when the first image arrives, the language model at the first
generative answer), the store, and the lock that lets one request at a time through the models. Every ``ask``,
``ask_batch``, ``search`` and ``search_batch`` writes one line per request to the audit trail (``medrag.audit``):
the de-identified request, the sources returned, the answer and the models, or the error's type.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from medrag.audit import AuditTrail, Call
from medrag.config import Config, load_config
from medrag.deid.dicom import DicomDeidentifier
from medrag.deid.secrets import deid_key
from medrag.encode.joint import JointEncoder
from medrag.encode.text import TextEncoder
from medrag.generate.writer import AnswerWriter, resolve_mode
from medrag.ingest.pipeline import Ingestor, IngestSummary
from medrag.pipeline.prepare import ImageInput, QueryPreparer
from medrag.pipeline.search import Embed, Prepare, Read, Retrieve, RouteStage, SearchPipeline
from medrag.read import FindingReader
from medrag.rerank import RerankContext, Reranker, make_reranker
from medrag.retrieve.cache import QueryCache
from medrag.retrieve.retriever import Retriever
from medrag.route.router import Router
from medrag.sources import get_source
from medrag.store import Filters, Store
from medrag.types import STAGES, Answer, Hints, QueryInput, Request, SearchResult

__all__ = ["STAGES", "Assistant"]


class Assistant:
    def __init__(self, config: Config, store: Store, *, text_encoder: TextEncoder | None = None,
                 joint_encoder: JointEncoder | None = None, cache: QueryCache | None = None) -> None:
        self.config = config
        self.store = store
        self.text_encoder = text_encoder or TextEncoder(config.text_model)
        self._given_joint = joint_encoder
        self.retriever = Retriever(store, self.text_encoder, joint_encoder, cache)
        self.router = Router.load(config, self.text_encoder.encode)
        self.writer = AnswerWriter(config, self.retriever.text_vectors, self.text_encoder.dim)
        self.pipeline = SearchPipeline(
            Prepare(QueryPreparer(DicomDeidentifier(deid_key(config)), limits=config.limits)),
            Embed(self.retriever, lambda: self.joint_encoder, self.text_encoder.dim),
            Read(lambda: self.finding_reader, self.retriever, lambda: self.joint_encoder.source,
                 self.text_encoder.model_path),
            RouteStage(self.router), Retrieve(self.retriever), self.reranker)
        # One request at a time through the models: torch already uses every core for one request, and the
        # query cache and the lazily loaded models are not meant for concurrent writers.
        self._lock = threading.RLock()
        self.audit = AuditTrail.from_config(config)
        """None when ``[audit] enabled`` is false."""

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
    def reranker(self) -> Reranker:
        """The reranker ``config.reranker`` names (default: the fusion module, loaded on first use)."""
        return make_reranker(RerankContext(self.config, self.retriever.text_vectors, self.text_encoder.dim))

    @functools.cached_property
    def joint_encoder(self) -> JointEncoder:
        """Loaded when the first image arrives: text-only use never pays for the image tower."""
        return self._given_joint or JointEncoder.load(self.config.joint_model)

    @functools.cached_property
    def finding_reader(self) -> FindingReader | None:
        """The model's read of query images, loaded when the first image arrives; None only when the default
        model is not installed (a configured ``read_model`` that is missing is an error)."""
        try:
            return FindingReader.load(self.config.read_model)
        except FileNotFoundError:
            if self.config.read_model is not None:
                raise
            return None

    def ask(self, question: str | None = None, note: str | None = None, image: ImageInput | None = None, *,
            filters: Filters | None = None, tenant: str | None = None, mode: str | None = None, k: int = 10,
            hints: Hints | None = None, on_token: Callable[[str], None] | None = None,
            actor: str | None = None) -> Answer:
        """Answer a request with cited evidence.

        ``image``: a DICOM or PNG/JPEG path, bytes, or a pydicom Dataset (de-identified before use).
        ``mode``: "extractive" quotes the best evidence sentences; "generative" lets the language model write
        (``on_token`` receives the text as it streams) and keeps only sentences the evidence supports; "auto"
        (default ``config.answer_mode``) takes the routing table's choice for the query's intent.
        ``actor``: who asks, for the audit trail (default ``[audit] actor``, else the operating-system user).
        Raises ValueError for an empty query, an unreadable image or an unknown mode, and UnknownTenant.
        """
        request = Request(question, note, image, hints)
        call = self._call("ask", tenant, actor, k, filters)
        return self._answer([request], call, filters=filters, tenant=tenant, mode=mode, k=k, on_token=on_token)[0]

    def ask_batch(self, requests: Sequence[Request | Mapping[str, Any]], *, filters: Filters | None = None,
                  tenant: str | None = None, mode: str | None = None, k: int = 10,
                  on_token: Callable[[str], None] | None = None, actor: str | None = None) -> list[Answer]:
        """Many requests (``Request``s, or dicts of question/note/image/hints) searched as one batch, then answered
        in order (one audit line per request)."""
        call = self._call("ask_batch", tenant, actor, k, filters)
        return self._answer(requests, call, filters=filters, tenant=tenant, mode=mode, k=k, on_token=on_token)

    def _answer(self, requests: Sequence[Request | Mapping[str, Any]], call: Call, *, filters: Filters | None,
                tenant: str | None, mode: str | None, k: int,
                on_token: Callable[[str], None] | None) -> list[Answer]:
        """Search and answer, then record each answer (or the failure) in the audit trail."""
        with self._audited(call, requests):
            mode = mode or self.config.answer_mode
            resolve_mode(mode, None)  # an unknown mode fails before any work
            with self._lock:
                answers = [self.writer(result, mode, on_token)
                           for result in self._search(requests, filters=filters, tenant=tenant, k=k)]
            for answer in answers:
                answer.models = {**self.models(answer.search), **answer.models}
        if self.audit is not None:
            self.audit.answers(call, answers)
        return answers

    def _call(self, kind: str, tenant: str | None, actor: str | None, k: int, filters: Filters | None) -> Call:
        """What the audit line says about the call; the tenant as the store resolves a missing one."""
        return Call(kind, tenant or self.store.config.weaviate.tenant, actor, k, filters)

    @contextlib.contextmanager
    def _audited(self, call: Call, requests: Sequence[Request | Mapping[str, Any]]) -> Iterator[None]:
        """A request that raises is recorded too: its inputs' names and the error's type, never the message."""
        try:
            yield
        except Exception as error:
            if self.audit is not None:
                self.audit.failure(call, requests, error)
            raise

    def models(self, result: SearchResult | None = None) -> dict[str, str]:
        """Which model does each job (for the audit trail of an answer)."""
        names = {"text_encoder": str(self.text_encoder.model_path),
                 "router": f"{self.config.router_model or 'intent-minilm (committed)'}, logistic regression over "
                           f"{self.router.classifier.card.get('text_model', 'text')} embeddings"}
        if result is None or result.query.image is not None:
            names["joint_encoder"] = self.joint_encoder.source
        if result is not None and result.reads:
            names["image_read"] = result.reads[0].model
        names["reranker"] = self.reranker.name
        return names

    def ingest(self, collection: str, paths: Iterable[str | Path], *, tenant: str | None = None,
               progress: bool = False, on_progress: Callable[[int, int], None] | None = None,
               **options: Any) -> IngestSummary:
        """Files or folders into any registered knowledge source (``options`` go to its loader, e.g. ``mapping``);
        ``on_progress(done, total)`` follows the records."""
        joint = get_source(collection).joint is not None
        ingestor = self._ingestor(tenant, progress, joint=joint, on_progress=on_progress)
        return ingestor.ingest(collection, [Path(path) for path in paths], **options)

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

    def _ingestor(self, tenant: str | None, progress: bool, joint: bool = True,
                  on_progress: Callable[[int, int], None] | None = None) -> Ingestor:
        """An ingestor sharing this Assistant's encoders (articles carry no joint vector)."""
        return Ingestor(self.config, self.store, text_encoder=self.text_encoder,
                        joint_encoder=self.joint_encoder if joint else None, joint=joint, tenant=tenant,
                        progress=progress, on_progress=on_progress)

    def prepare(self, question: str | None = None, note: str | None = None,
                image: ImageInput | None = None) -> QueryInput:
        """De-identify and decode a request without searching: what an app shows before anything is searched.
        Asking with the returned question, note and ``image`` (the decoded radiograph) searches exactly that."""
        return self.pipeline.prepare.preparer(question, note, image)

    def search(self, question: str | None = None, note: str | None = None, image: ImageInput | None = None, *,
               filters: Filters | None = None, tenant: str | None = None, k: int = 10,
               hints: Hints | None = None, actor: str | None = None) -> SearchResult:
        """Route the de-identified request, search the chosen sources, return the ranked evidence."""
        call = self._call("search", tenant, actor, k, filters)
        return self._searched([Request(question, note, image, hints)], call, filters=filters, tenant=tenant, k=k)[0]

    def search_batch(self, requests: Sequence[Request | Mapping[str, Any]], *, filters: Filters | None = None,
                     tenant: str | None = None, k: int = 10, actor: str | None = None) -> list[SearchResult]:
        """Many requests: one embedding call for the texts not cached yet, one for all images, one routing call;
        then a search and a rerank per request. Shared stages are split evenly in the timings."""
        call = self._call("search_batch", tenant, actor, k, filters)
        return self._searched(requests, call, filters=filters, tenant=tenant, k=k)

    def _searched(self, requests: Sequence[Request | Mapping[str, Any]], call: Call, *, filters: Filters | None,
                  tenant: str | None, k: int) -> list[SearchResult]:
        """Search, then record each result (or the failure) in the audit trail."""
        with self._audited(call, requests):
            results = self._search(requests, filters=filters, tenant=tenant, k=k)
        if self.audit is not None:
            self.audit.searches(call, results, [self.models(result) for result in results])
        return results

    def _search(self, requests: Sequence[Request | Mapping[str, Any]], *, filters: Filters | None,
                tenant: str | None, k: int) -> list[SearchResult]:
        """The search pipeline, unrecorded: the public callers write the audit line."""
        with self._lock:
            return self.pipeline([Request.of(request) for request in requests], filters=filters, tenant=tenant, k=k)
