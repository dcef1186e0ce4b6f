"""Rule R5: LRU + TTL caches for query embeddings and search results, with measured hit rates.

Cached results carry their collection's write generation: a write through the ``Store`` makes the
collection's cached results unreachable at once, and the TTL bounds how stale a result can be when
another process writes. One lock makes the caches safe to share between threads.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from cachetools import TTLCache

Value = TypeVar("Value")


class QueryCache:
    def __init__(self, maxsize: int = 1024, ttl: float = 300.0, timer: Callable[[], float] = time.monotonic) -> None:
        self._caches = {kind: TTLCache(maxsize, ttl, timer=timer) for kind in ("embedding", "results")}
        self._generation: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _get_many(self, kind: str, keys: Sequence[Hashable], compute: Callable[[list[Hashable]], Sequence[Value]]
                  ) -> list[Value]:
        """Cached values for ``keys``; the missing ones computed in one call (one model batch, one search)."""
        with self._lock:
            found = {key: self._caches[kind][key] for key in keys if key in self._caches[kind]}
            self._counts[f"{kind}_hits"] += sum(key in found for key in keys)
            self._counts[f"{kind}_misses"] += sum(key not in found for key in keys)
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        if missing:
            # Outside the lock: a slow model call or search must not block other threads' hits.
            computed = dict(zip(missing, compute(missing), strict=True))
            with self._lock:
                self._caches[kind].update(computed)
            found |= computed
        return [found[key] for key in keys]

    def embeddings(self, keys: Sequence[Hashable], compute: Callable[[list[Hashable]], Sequence[Value]]
                   ) -> list[Value]:
        """Embeddings for ``keys``; ``compute`` gets the missing keys and returns their embeddings in order."""
        return self._get_many("embedding", keys, compute)

    def embedding(self, key: Hashable, compute: Callable[[], Value]) -> Value:
        return self._get_many("embedding", [key], lambda _: [compute()])[0]

    def results(self, collection: str, key: Hashable, compute: Callable[[], Value]) -> Value:
        with self._lock:
            generation = self._generation[collection]
        return self._get_many("results", [(collection, generation, key)], lambda _: [compute()])[0]

    def invalidate(self, collection: str, _tenant: str | None = None) -> None:
        """Forget the collection's cached results (the ``Store`` calls this after every write)."""
        with self._lock:
            self._generation[collection] += 1
            stale = [key for key in self._caches["results"] if key[0] == collection]
            for key in stale:
                del self._caches["results"][key]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
        for kind in ("embedding", "results"):
            hits, misses = counts.get(f"{kind}_hits", 0), counts.get(f"{kind}_misses", 0)
            counts[f"{kind}_hit_rate"] = hits / (hits + misses) if hits + misses else 0.0
        return counts
