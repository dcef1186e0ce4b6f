"""The routing table as data: per intent, the sources to search (weight, alpha, depth) and the models."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from medrag.route.features import CUES
from medrag.sources import collections, joint_collections
from medrag.types import SourceSearch

DEFAULT_TABLE = Path(__file__).with_name("routing_table.yaml")


class RoutingTableError(ValueError):
    """The routing table file is malformed; the message names the file, the key and the fix."""


@dataclasses.dataclass(frozen=True)
class IntentRoute:
    description: str
    sources: tuple[SourceSearch, ...]
    models: dict[str, str]
    cues: str | None = None
    """The cue-word list (``medrag.route.features.CUES``) whose words explain this intent in the route's reason."""


@dataclasses.dataclass(frozen=True)
class RoutingTable:
    intents: dict[str, IntentRoute]
    confidence_threshold: float = 0.6
    min_weight: float = 0.1
    min_probability: float = 0.15
    low_confidence_limit: float = 1.5
    image_min_weight: float = 0.5
    image_only_intent: str | None = None
    """The intent of an image that comes without text (default: the first intent that searches a source with a
    joint vector)."""

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
        image_only = raw.pop("image_only_intent", None)
        routes = {name: _intent_route(spec, f"{origin}: intents.{name}") for name, spec in intents.items()}
        if image_only is None:
            image_only = next((name for name, route in routes.items()
                               if any(s.collection in joint_collections() for s in route.sources)), next(iter(routes)))
        if image_only not in routes:
            raise RoutingTableError(f"{origin}: image_only_intent {image_only!r} is not an intent of the table; "
                                    f"use one of {', '.join(routes)}")
        return cls(routes, image_only_intent=str(image_only), **{key: float(value) for key, value in raw.items()})


def _intent_route(spec: dict[str, Any], where: str) -> IntentRoute:
    sources = []
    for collection, search in (spec.get("sources") or {}).items():
        if collection not in collections():
            raise RoutingTableError(f"{where}.sources: unknown collection {collection!r}; "
                                    f"use one of {', '.join(collections())} (or register it: medrag.sources)")
        try:
            sources.append(SourceSearch(collection, **(search or {})))
        except TypeError as error:
            raise RoutingTableError(f"{where}.sources.{collection}: {error}; "
                                    "allowed keys are weight, alpha, limit") from None
        if not 0.0 <= sources[-1].alpha <= 1.0:
            raise RoutingTableError(f"{where}.sources.{collection}.alpha must be between 0 (BM25) and 1 (vector)")
    if not sources:
        raise RoutingTableError(f"{where}: no sources; list at least one collection under 'sources'")
    cues = spec.get("cues")
    if cues is not None and cues not in CUES:
        raise RoutingTableError(f"{where}.cues: {cues!r} is not a cue-word list; use one of {', '.join(CUES)}")
    return IntentRoute(str(spec.get("description", "")), tuple(sources), dict(spec.get("models") or {}), cues)
