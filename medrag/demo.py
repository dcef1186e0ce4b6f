"""``medrag demo``: the whole path on a tiny real knowledge base, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable

from knowledge_sources import DEMO_DIR
from medrag.config import Config
from medrag.encode.text import TextEncoder
from medrag.store import ARTICLES, TEXT_VECTOR, Record, Store

DEMO_QUESTION = "Is the treatment of hospital-acquired pneumonia delayed when it is diagnosed at night?"


def _demo_articles() -> list[tuple[str, str, int]]:
    """(PMID, abstract text, year) of the demo abstracts (PubMedQA format)."""
    entries = json.loads((DEMO_DIR / "pubmedqa_demo.json").read_text())
    return [(pmid, " ".join(entry["CONTEXTS"]), int(entry["YEAR"])) for pmid, entry in entries.items()]


def run_demo(config: Config, out: Callable[[str], None] = print) -> None:
    articles = _demo_articles()
    encoder = TextEncoder(config.text_model)
    vectors = encoder.encode([text for _, text, _ in articles])
    with Store.open(config, log=out) as store:
        out(f"Weaviate running at {store.url}" + (f" (pid {store.server.pid})" if store.server else ""))
        store.ensure_schema()
        store.create_tenant()
        records = [
            Record(pmid, {"text": text, "year": year, "source": "pubmedqa-demo", "modality": "text"},
                   {TEXT_VECTOR: vector})
            for (pmid, text, year), vector in zip(articles, vectors, strict=True)
        ]
        report = store.upsert(ARTICLES, records)
        out(f"upserted {report.written} abstracts; {ARTICLES} now holds {store.count(ARTICLES)}")
        out(f"\nQ: {DEMO_QUESTION}")
        hits = store.hybrid(ARTICLES, DEMO_QUESTION, encoder.encode([DEMO_QUESTION])[0], alpha=0.5, limit=3)
        for rank, hit in enumerate(hits, 1):
            out(f"  {rank}. PMID {hit.source_id} (hybrid score {hit.score:.3f}): {hit.properties['text'][:160]}...")
