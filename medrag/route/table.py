"""The routing table as data: per intent, the sources to search (weight, alpha, depth) and the models."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from medrag.retrieve.retriever import SourceSearch
from medrag.store.schema import COLLECTIONS

DEFAULT_TABLE = Path(__file__).with_name("routing_table.yaml")


class RoutingTableError(ValueError):
    """The routing table file is malformed; the message names the file, the key and the fix."""


@dataclasses.dataclass(frozen=True)
class IntentRoute:
    description: str
    sources: tuple[SourceSearch, ...]
    models: dict[str, str]


@dataclasses.dataclass(frozen=True)
class RoutingTable:
    intents: dict[str, IntentRoute]
    confidence_threshold: float = 0.6
    min_weight: float = 0.1
    min_probability: float = 0.15
    low_confidence_limit: float = 1.5
    image_min_weight: float = 0.5

    @classmethod
    def load(cls, path: Path | None = None) -> RoutingTable:
        path = Path(path or DEFAULT_TABLE)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise RoutingTableError(f"routing table {path} does not exist; fix MEDRAG_ROUTING_TABLE") from None
        except yaml.YAMLError as error:
            raise RoutingTableError(f"routing table {path} is not valid YAML: {error}") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "routing table") -> RoutingTable:
        raw = dict(raw or {})
        intents = raw.pop("intents", None)
        if not isinstance(intents, dict) or not intents:
            raise RoutingTableError(f"{origin}: 'intents' must map each intent to its sources and models")
        known = {field.name for field in dataclasses.fields(cls)} - {"intents"}
        unknown = set(raw) - known
        if unknown:
            raise RoutingTableError(f"{origin}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls({name: _intent_route(spec, f"{origin}: intents.{name}") for name, spec in intents.items()},
                   **{key: float(value) for key, value in raw.items()})


def _intent_route(spec: dict[str, Any], where: str) -> IntentRoute:
    sources = []
    for collection, search in (spec.get("sources") or {}).items():
        if collection not in COLLECTIONS:
            raise RoutingTableError(f"{where}.sources: unknown collection {collection!r}; "
                                    f"use one of {', '.join(COLLECTIONS)}")
        try:
            sources.append(SourceSearch(collection, **(search or {})))
        except TypeError as error:
            raise RoutingTableError(f"{where}.sources.{collection}: {error}; "
                                    "allowed keys are weight, alpha, limit") from None
        if not 0.0 <= sources[-1].alpha <= 1.0:
            raise RoutingTableError(f"{where}.sources.{collection}.alpha must be between 0 (BM25) and 1 (vector)")
    if not sources:
        raise RoutingTableError(f"{where}: no sources; list at least one collection under 'sources'")
    return IntentRoute(str(spec.get("description", "")), tuple(sources), dict(spec.get("models") or {}))
