"""Shared fixtures: one real Weaviate server for the whole test session, and the real data dir.

There is no mock or in-memory stand-in for Weaviate: tests that need the store get the real server
started from the weaviate-server binary. Under ``CI=true`` a missing binary fails the run.

Test lanes: a test that asks for none of the fixtures in ``NEEDS_SERVER_OR_DATA`` (directly or through another
fixture) is marked ``unit``: ``pytest -m unit`` runs those without a server or ../shared/data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from medrag.config import Config, load_config
from medrag.store import Store
from medrag.store.binary import WeaviateBinary, find_binary

PLUMBING_READER = "smollm2-135m-instruct"
"""The reader of tests that check how answers are put together, not how well the reader reads: the packaged
135M fallback, about ten times faster than the 1.5B default on 2 cores. Tests of reading itself ask for the
``reader`` fixture (the default), and ``medrag demo`` runs with the default as a user would."""

NEEDS_SERVER_OR_DATA = frozenset({"weaviate_binary", "store", "tenant", "data_dir", "pubmedqa", "knowledge",
                                   "assistant", "fill_demo_knowledge", "fusion_set"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixture closure needs neither the server nor the data dir as ``unit``."""
    for item in items:
        if not NEEDS_SERVER_OR_DATA & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The user's configuration (binary, caches, data dir) with a private home, the embedded server and the
    plumbing reader."""
    home = tmp_path_factory.mktemp("medrag-home")
    return load_config().replace(home=home, weaviate={"url": None, "data_dir": None, "port": None},
                                 generator_model=PLUMBING_READER)


@pytest.fixture(scope="session")
def data_dir(config: Config) -> Path:
    path = Path(config.data_dir)
    if not path.is_dir():
        pytest.fail(f"data dir {path.resolve()} not found; set MEDRAG_DATA_DIR to the shared data folder")
    return path


@pytest.fixture(scope="session")
def weaviate_binary(config: Config) -> WeaviateBinary:
    found = find_binary(config)
    if found is None:
        message = "no weaviate-server binary: run `make setup` (or set MEDRAG_WEAVIATE_BIN)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def store(config: Config, weaviate_binary: WeaviateBinary) -> Iterator[Store]:
    """The one Weaviate server of this test session, with the schema created."""
    with Store.open(config) as opened:
        opened.ensure_schema()
        yield opened


@pytest.fixture
def tenant(store: Store) -> str:
    """A fresh tenant per test: tests share the server but never each other's objects."""
    return store.create_tenant(f"t{uuid.uuid4().hex[:16]}")


@pytest.fixture(scope="session")
def text_encoder(config: Config):
    from medrag.encode.text import TextEncoder

    return TextEncoder(config.text_model)


@pytest.fixture(scope="session")
def pubmedqa(data_dir: Path) -> dict[str, dict]:
    """The 500 expert-labelled PubMedQA questions with their real abstracts, keyed by PMID."""
    import json

    return json.loads((data_dir / "pubmed" / "pubmedqa_pqal_dev.json").read_text())


@pytest.fixture(scope="session")
def joint_encoder():
    """The committed joint image-text model, loaded once for the session."""
    from medrag.encode.joint import JointEncoder

    return JointEncoder.load()


@pytest.fixture(scope="session")
def fill_demo_knowledge(config, store, text_encoder, joint_encoder, pubmedqa, tmp_path_factory):
    """``fill(tenant, questions)``: the first ``questions`` PubMedQA abstracts, the demo IU reports, covid
    cases and DICOMs, ingested into ``tenant`` (real data, real encoders, the real server)."""
    import json

    from knowledge_sources import DEMO_DIR
    from medrag.ingest.pipeline import Ingestor

    def fill(tenant: str, questions: int) -> None:
        subset = tmp_path_factory.mktemp("knowledge") / "qa.json"
        subset.write_text(json.dumps(dict(list(pubmedqa.items())[:questions])))
        ingestor = Ingestor(config, store, text_encoder=text_encoder, joint_encoder=joint_encoder, tenant=tenant,
                            progress=False)
        ingestor.pubmed([subset])
        ingestor.reports([DEMO_DIR / "iu-reports"])
        ingestor.images([DEMO_DIR / "covid" / "metadata.csv"])
        ingestor.images([DEMO_DIR / "dicom"])

    return fill


@pytest.fixture(scope="session")
def reader(config):
    """The default reader (packaged Qwen2.5-Coder-1.5B-Instruct through llama.cpp), loaded once: 1.9 GB."""
    from medrag.lm.load import load_language_model

    return load_language_model(None, config.cache_dir)


@pytest.fixture(scope="session")
def assistant(config, store, text_encoder, joint_encoder):
    """One Assistant over the session's store and models (the real router, fusion and answer writer)."""
    from medrag.assistant import Assistant

    return Assistant(config, store, text_encoder=text_encoder, joint_encoder=joint_encoder)


@pytest.fixture(scope="session")
def knowledge(store, fill_demo_knowledge) -> str:
    """One tenant filled once with 40 PubMedQA abstracts and the demo reports, cases and DICOMs; tests only
    read it."""
    tenant = store.create_tenant(f"assistant-{uuid.uuid4().hex[:8]}")
    fill_demo_knowledge(tenant, 40)
    return tenant


@pytest.fixture(scope="module")
def one_thread():
    """Fusion tests run on one torch thread: the tensors are tiny, and one thread is immune to OpenMP
    spin-waiting when other processes share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fusion_set(config, store, text_encoder, joint_encoder, fill_demo_knowledge, pubmedqa, tmp_path_factory):
    """Fusion supervision built through the real pipeline: 40 PubMedQA questions and the demo covid cases,
    against their knowledge ingested into a tenant of the session's Weaviate server."""
    import json
    import uuid
    from types import SimpleNamespace

    from knowledge_sources import DEMO_DIR
    from medrag.assistant import Assistant
    from medrag.fuse import FusionConfig
    from training.fusion_data import FusionDataBuilder

    tenant = store.create_tenant(f"fusion{uuid.uuid4().hex[:12]}")
    fill_demo_knowledge(tenant, 40)
    questions = tmp_path_factory.mktemp("fusion") / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:40])))
    metadata = DEMO_DIR / "covid" / "metadata.csv"
    assistant = Assistant(config.replace(reranker="retrieval"), store, text_encoder=text_encoder,
                          joint_encoder=joint_encoder)
    builder = FusionDataBuilder(assistant, FusionConfig(), tenant=tenant, candidates=8, progress=False)
    return SimpleNamespace(data=builder.build(questions, metadata), assistant=assistant, tenant=tenant,
                           questions=questions, metadata=metadata)
