"""R5 cache: LRU + TTL, hit rates, and invalidation when the store writes."""

from __future__ import annotations

from medrag.retrieve.cache import QueryCache
from medrag.store import ARTICLES, TEXT_VECTOR, Record


class Clock:
    """A timer the test moves by hand (TTL expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = QueryCache(maxsize=8, ttl=10.0, timer=clock)
    computed = []
    assert cache.embedding("q", lambda: computed.append(1) or "v1") == "v1"
    clock.now = 9.0
    assert cache.embedding("q", lambda: computed.append(2) or "v2") == "v1"
    clock.now = 10.5
    assert cache.embedding("q", lambda: computed.append(3) or "v3") == "v3"
    assert computed == [1, 3]
    assert cache.stats()["embedding_hit_rate"] == 1 / 3


def test_least_recently_used_entry_goes_first():
    cache = QueryCache(maxsize=2, ttl=100.0)
    cache.embedding("a", lambda: 1)
    cache.embedding("b", lambda: 2)
    cache.embedding("a", lambda: -1)  # touch a: b is now the least recently used
    cache.embedding("c", lambda: 3)
    assert cache.embedding("a", lambda: -1) == 1
    assert cache.embedding("b", lambda: 20) == 20


def test_a_write_to_the_collection_invalidates_its_cached_results(store, tenant):
    cache = QueryCache()
    store.write_listeners.append(cache.invalidate)
    try:
        def count() -> int:
            return cache.results(ARTICLES, ("count", tenant), lambda: store.count(ARTICLES, tenant=tenant))

        assert count() == 0
        assert count() == 0 and cache.stats()["results_hits"] == 1
        store.upsert(ARTICLES, [Record("new", {"text": "pleural effusion"}, {TEXT_VECTOR: [0.1] * 384})],
                     tenant=tenant)
        assert count() == 1, "the cached 0 must not survive the write"
        assert cache.results("RadiologyReport", "other", lambda: "kept") == "kept"
    finally:
        store.write_listeners.remove(cache.invalidate)
