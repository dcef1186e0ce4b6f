"""Fusion tests run on one torch thread: the tensors are tiny, and one thread is immune to OpenMP
spin-waiting when other processes share the cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
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
    from medrag.fuse.data import FusionDataBuilder

    tenant = store.create_tenant(f"fusion{uuid.uuid4().hex[:12]}")
    fill_demo_knowledge(tenant, 40)
    questions = tmp_path_factory.mktemp("fusion") / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:40])))
    metadata = DEMO_DIR / "covid" / "metadata.csv"
    assistant = Assistant(config.replace(fusion=False), store, text_encoder=text_encoder,
                          joint_encoder=joint_encoder)
    builder = FusionDataBuilder(assistant, FusionConfig(), tenant=tenant, candidates=8, progress=False)
    return SimpleNamespace(data=builder.build(questions, metadata), assistant=assistant, tenant=tenant,
                           questions=questions, metadata=metadata)
