"""The dynamic scheduler: which sources a query searches, how, with which models, and why.

Learned intent probabilities (``IntentClassifier``) choose rows of the routing table; the rows are
mixed by probability, so a query that is 70% literature and 30% clinical searches PubMed first and
reports second. Rules override the model where the user or the input leaves no doubt: explicit
hints, an image (always searched by its joint vector), an image without text. When the model is
unsure (top probability below the table's threshold) the query searches more sources, not fewer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from medrag.config import Config
from medrag.route.classifier import IntentClassifier
from medrag.route.features import CUES, Query, words
from medrag.route.table import RoutingTable
from medrag.sources import collections, get_source, joint_collections
from medrag.types import Hints, Route, SourceSearch

Embed = Callable[[Sequence[str]], np.ndarray]


class Router:
    def __init__(self, table: RoutingTable, classifier: IntentClassifier, embed: Embed) -> None:
        missing = set(classifier.intents) - set(table.intents)
        if missing:
            raise ValueError(f"the routing table has no row for intents {sorted(missing)} of the intent model; "
                             "add them to the table or retrain the model with the table's intents")
        self.table = table
        self.classifier = classifier
        self.embed = embed

    @classmethod
    def load(cls, config: Config, embed: Embed) -> Router:
        return cls(RoutingTable.load(config.routing_table), IntentClassifier.load(config.router_model), embed)

    def route(self, query: Query, hints: Hints | None = None, embedding: np.ndarray | None = None) -> Route:
        embeddings = None if embedding is None else embedding[None, :]
        return self.route_batch([query], [hints], embeddings)[0]

    def route_batch(self, queries: Sequence[Query], hints: Sequence[Hints | None] | None = None,
                    embeddings: np.ndarray | None = None) -> list[Route]:
        """Routes for many queries with one embedding call and one classifier call."""
        for query in queries:
            if not query.text and not query.has_image:
                raise ValueError("empty query: give a question, a note or an image")
        hints = list(hints or [None] * len(queries))
        texts = [query.text for query in queries]
        with_text = [index for index, text in enumerate(texts) if text]
        probabilities = np.zeros((len(queries), len(self.classifier.intents)))
        if with_text:
            vectors = embeddings[with_text] if embeddings is not None else self.embed([texts[i] for i in with_text])
            probabilities[with_text] = self.classifier.probabilities([queries[i] for i in with_text], vectors)
        return [self._decide(query, hint or Hints(), dict(zip(self.classifier.intents, row.tolist(), strict=True)))
                for query, hint, row in zip(queries, hints, probabilities, strict=True)]

    def _decide(self, query: Query, hints: Hints, probabilities: dict[str, float]) -> Route:
        rules = []
        if hints.intent:
            if hints.intent not in self.table.intents:
                raise ValueError(f"unknown intent hint {hints.intent!r}; use one of {', '.join(self.table.intents)}")
            probabilities = {name: float(name == hints.intent) for name in self.table.intents}
            rules.append(f"the user asked to treat this as {hints.intent}")
        elif not query.text:
            image_only = self.table.image_only_intent
            probabilities = {name: float(name == image_only) for name in self.table.intents}
            rules.append(f"an image without text is an {image_only} query")
        intent = max(probabilities, key=probabilities.__getitem__)
        confident = probabilities[intent] >= self.table.confidence_threshold
        searches = self._mix(probabilities, intent, confident)
        if not confident:
            rules.append(f"low confidence ({probabilities[intent]:.2f} < {self.table.confidence_threshold}): "
                         "also searching the runner-up intents' sources, deeper")
        if query.has_image:
            searches = self._with_image(searches)
            rules.append("an image came with the query: reports and cases are also searched by the joint vector")
        if hints.sources:
            searches = self._only(searches, hints.sources)
            rules.append(f"the user limited the search to {', '.join(hints.sources)}")
        models = dict(self.table.intents[intent].models)
        if query.has_image:
            models["image_encoder"] = "joint"
        return Route(intent, probabilities, searches, query.has_image, models,
                     self._reason(query, intent, probabilities, searches, rules), tuple(rules))

    def _mix(self, probabilities: dict[str, float], top: str, confident: bool) -> tuple[SourceSearch, ...]:
        """Probability-weighted sum of the table rows; the top intent's alpha and the largest depth win."""
        weights: dict[str, float] = {}
        settings: dict[str, SourceSearch] = {}
        ranked = sorted(probabilities, key=probabilities.__getitem__, reverse=True)
        for name in ranked:
            if name != top and probabilities[name] < self.table.min_probability:
                continue
            for search in self.table.intents[name].sources:
                weights[search.collection] = weights.get(search.collection, 0.0) + probabilities[name] * search.weight
                first = settings.setdefault(search.collection, search)
                settings[search.collection] = dataclasses.replace(first, limit=max(first.limit, search.limit))
        searches = []
        for collection, weight in weights.items():
            search = settings[collection]
            if confident and weight < self.table.min_weight:
                continue
            limit = search.limit if confident else round(search.limit * self.table.low_confidence_limit)
            searches.append(dataclasses.replace(search, weight=round(max(weight, self.table.min_weight), 4),
                                                limit=limit))
        return tuple(sorted(searches, key=lambda search: search.weight, reverse=True))

    def _with_image(self, searches: tuple[SourceSearch, ...]) -> tuple[SourceSearch, ...]:
        by_collection = {search.collection: search for search in searches}
        for collection in joint_collections():
            current = by_collection.get(collection) or SourceSearch(collection, weight=0.0)
            by_collection[collection] = dataclasses.replace(
                current, weight=max(current.weight, self.table.image_min_weight))
        return tuple(sorted(by_collection.values(), key=lambda search: search.weight, reverse=True))

    @staticmethod
    def _only(searches: tuple[SourceSearch, ...], chosen: Sequence[str]) -> tuple[SourceSearch, ...]:
        unknown = [name for name in chosen if name not in collections()]
        if unknown:
            raise ValueError(f"unknown source hint {unknown}; use one of {', '.join(collections())}")
        by_collection = {search.collection: search for search in searches}
        return tuple(by_collection.get(name) or SourceSearch(name) for name in chosen)

    def _reason(self, query: Query, intent: str, probabilities: dict[str, float],
                searches: tuple[SourceSearch, ...], rules: list[str]) -> str:
        cue_list = self.table.intents[intent].cues or intent
        vocabulary = CUES.get(cue_list, frozenset())
        cues = sorted(set(words(query.text)) & vocabulary)[:5]
        odds = ", ".join(f"{name} {p:.2f}" for name, p in sorted(probabilities.items(), key=lambda kv: -kv[1]))
        inputs = ", ".join(name for name, present in (("question", query.question.strip()),
                                                     ("note", query.note.strip()), ("image", query.has_image))
                           if present)
        parts = [f"{intent}: {self.table.intents[intent].description} ({odds}; inputs: {inputs}"
                 + (f"; cue words: {', '.join(cues)}" if cues else "") + ")."]
        parts += [f"Rule: {rule}." for rule in rules]
        parts.append("Searching " + ", ".join(f"{get_source(s.collection).display} (weight {s.weight:.2f})"
                                              for s in searches) + ".")
        return " ".join(parts)
