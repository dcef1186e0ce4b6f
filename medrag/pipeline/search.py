"""The search pipeline: prepare -> embed -> read -> route -> retrieve -> rerank, each a stage with typed input and
output.

A batch of requests shares the first four stages (one encoder call for every text not cached, one pass of the
image tower, the model's read of each image from those vectors, one classifier call); retrieval and rerank run
per request. Each stage's time goes into
``SearchResult.timings_ms`` (a shared stage is split evenly over the batch).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from medrag.encode.joint import JointEncoder
from medrag.imaging.radiograph import radiograph_metadata
from medrag.pipeline.prepare import QueryPreparer
from medrag.read import FindingReader
from medrag.rerank import Reranker, RerankRequest
from medrag.retrieve.retriever import Retriever, withhold_hostile
from medrag.route.features import Query
from medrag.route.router import Router
from medrag.store import Filters
from medrag.types import Evidence, ImageRead, QueryInput, Request, Route, SearchResult


class Stopwatch:
    """Milliseconds per named stage (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - started) * 1000


@dataclasses.dataclass
class Embedded:
    """One request's vectors: the text vector (zeros without text) and, with an image, its joint vector and the
    image tower's feature map (when the reranker reads it)."""

    text: np.ndarray
    image: np.ndarray | None
    feature_map: np.ndarray | None


class Prepare:
    """De-identify each request (DICOM header, question, note) and decode its image."""

    def __init__(self, preparer: QueryPreparer) -> None:
        self.preparer = preparer

    def __call__(self, requests: Sequence[Request]) -> list[QueryInput]:
        return [self.preparer(request.question, request.note, request.image) for request in requests]


class Embed:
    """Text vectors through the retriever's cache (the same vector serves routing and retrieval) and one pass of
    the joint image tower for every image of the batch."""

    def __init__(self, retriever: Retriever, joint_encoder: Callable[[], JointEncoder], dim: int) -> None:
        self.retriever = retriever
        self.joint_encoder = joint_encoder
        """Called only when an image arrives: text-only use never loads the image tower."""
        self.dim = dim

    def __call__(self, queries: Sequence[QueryInput], routed: Sequence[Query], feature_maps: bool) -> list[Embedded]:
        blank = np.zeros(self.dim, dtype=np.float32)  # rows without text are routed by rule
        texts = [query.text for query in routed if query.text]
        vectors = iter(self.retriever.text_vectors(texts)) if texts else iter(())
        text_vectors = [next(vectors) if query.text else blank for query in routed]
        images = [query.image for query in queries if query.image is not None]
        if not images:
            return [Embedded(vector, None, None) for vector in text_vectors]
        encoder = self.joint_encoder()
        maps = None
        if feature_maps:
            try:
                image_vectors, maps = encoder.encode_images_and_patches(images)
            except NotImplementedError:  # a tower without a feature grid (a ViT): the reranker says what it misses
                maps = None
        if maps is None:
            image_vectors, maps = encoder.encode_images(images), [None] * len(images)
        pairs = iter(zip(image_vectors, maps, strict=True))
        return [Embedded(vector, *(next(pairs) if query.image is not None else (None, None)))
                for vector, query in zip(text_vectors, queries, strict=True)]


class Read:
    """The model's read of each query image from the vectors ``Embed`` made: the image alone, and image + note
    when a note came. No read (and a warning) when the read model was trained on another joint model."""

    def __init__(self, reader: Callable[[], FindingReader | None], retriever: Retriever,
                 joint_source: Callable[[], str], text_model: Path | None = None) -> None:
        self.reader = reader
        """Called only when an image arrives; None when no read model is installed."""
        self.retriever = retriever
        self.joint_source = joint_source
        self.text_model = text_model
        """The folder of the model behind the note vectors (None: not checked against the read's card)."""

    def __call__(self, queries: Sequence[QueryInput], embedded: Sequence[Embedded]) -> list[tuple[list[ImageRead],
                                                                                                   list[str]]]:
        if all(item.image is None for item in embedded):
            return [([], []) for _ in queries]
        reader = self.reader()
        if reader is None:
            return [([], []) for _ in queries]
        if not reader.fits(self.joint_source()):
            warning = (f"no model read of the image: {reader.name} was trained on the joint model "
                       f"{reader.card.get('joint_model')!r}, not on the configured one; retrain it with "
                       "`medrag train read`")
            return [([], [warning] if item.image is not None else []) for item in embedded]
        refusals = [reader.refusal(_body_part(query)) for query in queries]
        with_notes = self.text_model is None or reader.fits_text(self.text_model)
        notes = [query.note for query, item, refusal in zip(queries, embedded, refusals, strict=True)
                 if item.image is not None and query.note and refusal is None and with_notes]
        vectors = dict(zip(notes, self.retriever.text_vectors(notes), strict=True)) if notes else {}
        text_warning = ([] if with_notes else
                        [f"no image + note read: {reader.name} was trained on note vectors of "
                         f"{reader.card.get('text_model')!r}, not of the configured text model; retrain it with "
                         "`medrag train read`"])
        return [([], [refusal]) if refusal and item.image is not None
                else (reader.read(item.image, vectors.get(query.note)),
                      text_warning if query.note else []) if item.image is not None else ([], [])
                for query, item, refusal in zip(queries, embedded, refusals, strict=True)]


def _body_part(query: QueryInput) -> str | None:
    """``BodyPartExamined`` of a DICOM query (kept by de-identification); None for PNG/JPEG."""
    return radiograph_metadata(query.dicom)["body_part"] if query.dicom is not None else None


class RouteStage:
    """The scheduler: one classifier call for the batch, rules and hints per request."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def __call__(self, routed: Sequence[Query], requests: Sequence[Request],
                 embedded: Sequence[Embedded]) -> list[Route]:
        return self.router.route_batch(routed, [request.hints for request in requests],
                                       np.stack([item.text for item in embedded]))


class Retrieve:
    """Hybrid search of each routed source (and the joint vector for an image), merged by weighted RRF."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def __call__(self, text: str, route: Route, embedded: Embedded, *, depth: int, filters: Filters | None,
                 tenant: str | None, watch: Stopwatch) -> tuple[list[Evidence], list[str]]:
        """The top ``depth`` evidence, and a warning for each source withheld as hostile (``withhold_hostile``)."""
        with watch.stage("search"):
            rankings = self.retriever.rankings(
                text, route.searches, text_vector=embedded.text,
                image_vector=embedded.image if route.image_search else None, filters=filters, tenant=tenant)
        with watch.stage("merge"):
            rankings, withheld = withhold_hostile(rankings)
            return self.retriever.merge(text, rankings, depth), withheld


class SearchPipeline:
    """The stages in order; ``Assistant`` builds one and owns the models behind it."""

    def __init__(self, prepare: Prepare, embed: Embed, read: Read, route: RouteStage, retrieve: Retrieve,
                 reranker: Reranker) -> None:
        self.prepare = prepare
        self.embed = embed
        self.read = read
        self.route = route
        self.retrieve = retrieve
        self.reranker = reranker

    def __call__(self, requests: Sequence[Request], *, filters: Filters | None = None, tenant: str | None = None,
                 k: int = 10) -> list[SearchResult]:
        watch = Stopwatch()
        with watch.stage("prepare"):
            queries = self.prepare(requests)
            # What the router reads, built once: its ``text`` is also what is embedded and searched.
            routed = [Query(query.question, query.note, query.image is not None) for query in queries]
        with watch.stage("embed"):
            embedded = self.embed(queries, routed, self.reranker.needs_image_features)
        with watch.stage("read"):
            reads = self.read(queries, embedded)
        with watch.stage("route"):
            routes = self.route(routed, requests, embedded)
        shared = {stage: ms / len(requests) for stage, ms in watch.timings.items()}
        depth = self.reranker.depth(k)
        results = []
        for query, text, route, vectors, (read, read_warnings) in zip(queries, routed, routes, embedded, reads,
                                                                      strict=True):
            own = Stopwatch()
            evidence, withheld = self.retrieve(text.text, route, vectors, depth=depth, filters=filters,
                                               tenant=tenant, watch=own)
            with own.stage("fuse"):
                reranked = self.reranker(RerankRequest(query, evidence, k, vectors.feature_map))
            results.append(SearchResult(query, route, reranked.evidence, {**shared, **own.timings}, reranked.view,
                                        read_warnings + withheld + reranked.warnings, read))
        return results
