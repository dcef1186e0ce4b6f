"""The rerank stage's interface and its registry.

A reranker reorders the merged candidates of one request, cuts them to ``k``, may choose each item's passages
and may say which evidence sentences matter (``FusionView.selected``, which the answer writer follows). The
fusion module is one implementation, the retrieval order another; ``register_reranker`` adds more and
``Config.reranker`` picks one by name (see ARCHITECTURE.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from medrag.config import Config
from medrag.types import Evidence, FusionView, QueryInput

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclasses.dataclass
class RerankRequest:
    query: QueryInput
    evidence: list[Evidence]
    """The merged candidates in retrieval order (at most ``Reranker.depth(k)`` of them)."""
    k: int
    image_features: np.ndarray | None = None
    """The query image's (channels, rows, cols) feature map when the reranker asked for it."""


@dataclasses.dataclass
class Reranked:
    evidence: list[Evidence]
    """At most ``k`` items, best first."""
    view: FusionView | None = None
    """Scores, selected sentences and attention maps, where the reranker has them."""
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class RerankContext:
    """What a reranker may use: the configuration and the text encoder (cached, shared with retrieval)."""

    config: Config
    encode: Encode
    dim: int


class Reranker(Protocol):
    name: str
    """Shown in ``Assistant.models()`` (the audit trail of an answer)."""
    needs_image_features: bool
    """Ask the pipeline for the query image's patch feature map (one more output of the same image pass)."""

    def depth(self, k: int) -> int:
        """How many retrieved candidates it wants to see to return ``k``."""
        ...

    def __call__(self, request: RerankRequest) -> Reranked: ...


RerankerFactory = Callable[[RerankContext], Reranker]
_RERANKERS: dict[str, RerankerFactory] = {}


def register_reranker(name: str, factory: RerankerFactory, *, replace: bool = False) -> None:
    """Make ``Config.reranker = name`` build a reranker with ``factory(context)``."""
    if name in _RERANKERS and not replace:
        raise ValueError(f"reranker {name!r} is already registered; pass replace=True to redefine it")
    _RERANKERS[name] = factory


def unregister_reranker(name: str) -> None:
    _RERANKERS.pop(name, None)


def rerankers() -> tuple[str, ...]:
    return tuple(_RERANKERS)


def make_reranker(context: RerankContext) -> Reranker:
    """The reranker ``context.config.reranker`` names; ValueError naming the registered ones otherwise."""
    name = context.config.reranker
    if name not in _RERANKERS:
        raise ValueError(f"unknown reranker {name!r} (config key reranker, MEDRAG_RERANKER); registered: "
                         f"{', '.join(_RERANKERS)}")
    return _RERANKERS[name](context)


class RetrievalOrder:
    """No rerank: the first ``k`` candidates of the retrieval merge, with their word-overlap passages."""

    name = "retrieval order (no rerank)"
    needs_image_features = False

    def __init__(self, context: RerankContext | None = None) -> None:
        del context  # nothing to configure

    def depth(self, k: int) -> int:
        return k

    def __call__(self, request: RerankRequest) -> Reranked:
        return Reranked(request.evidence[: request.k])
