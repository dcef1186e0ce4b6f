"""The Python API end to end on real data in real Weaviate: de-identify, route, embed once, search, merge."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from knowledge_sources import DEMO_DIR
from medrag.assistant import STAGES, Assistant
from medrag.encode.joint import JointEncoder
from medrag.route.router import Hints
from medrag.store import ARTICLES, CASES, REPORTS, Filters
from medrag.store.errors import UnknownTenant


def test_a_literature_question_is_routed_to_pubmed_and_finds_its_abstract(assistant, knowledge, pubmedqa):
    pmid, entry = list(pubmedqa.items())[5]
    result = assistant.search(question=entry["QUESTION"], tenant=knowledge, k=5)
    assert result.route.intent == "literature"
    assert result.evidence[0].collection == ARTICLES and result.evidence[0].source_id == pmid
    assert list(result.timings_ms) == list(STAGES)
    assert json.loads(json.dumps(result.to_dict()))["route"]["intent"] == "literature"


def test_a_dicom_with_a_note_searches_reports_and_cases_by_text_and_image(assistant, knowledge):
    result = assistant.search(note="Fever and dry cough, bilateral ground-glass opacities.",
                              image=DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm", tenant=knowledge,
                              k=assistant.config.rerank_depth)  # every candidate, so the reranker drops none
    assert result.route.image_search and result.query.dicom is not None
    found_by = {name for item in result.evidence for name in item.ranks}
    assert {f"{REPORTS}/joint", f"{CASES}/joint", f"{REPORTS}/hybrid"} <= found_by
    assert any(item.collection == CASES and item.properties.get("finding", "").startswith("COVID-19")
               for item in result.evidence)
    # the model's read of the image, alone and with the note, each with the AUC it reached on unseen patients
    assert [read.inputs for read in result.reads] == ["image", "image + note"]
    assert all(0 <= p <= 1 for read in result.reads for p in read.probabilities.values())
    exported = json.loads(json.dumps(result.to_dict()))["image_reads"]
    assert [read["text"] for read in exported] == [read.sentence for read in result.reads]


def test_filters_hints_and_tenants_pass_through(assistant, knowledge, pubmedqa):
    question = next(iter(pubmedqa.values()))["QUESTION"]
    only_reports = assistant.search(question=question, tenant=knowledge, hints=Hints(sources=(REPORTS,)))
    assert {item.collection for item in only_reports.evidence} == {REPORTS}
    future = assistant.search(question=question, tenant=knowledge, filters=Filters(year_from=2100))
    assert future.evidence == []
    with pytest.raises(UnknownTenant):
        assistant.search(question=question, tenant="no-such-hospital")


def test_the_same_question_twice_comes_from_the_cache(assistant, knowledge, pubmedqa):
    question = list(pubmedqa.values())[1]["QUESTION"]
    first = assistant.search(question=question, tenant=knowledge)
    before = assistant.retriever.cache.stats()
    second = assistant.search(question=question, tenant=knowledge)
    after = assistant.retriever.cache.stats()
    assert [item.source_id for item in first.evidence] == [item.source_id for item in second.evidence]
    assert after["embedding_misses"] == before["embedding_misses"]  # the question and fusion's query tokens
    assert after["embedding_hits"] > before.get("embedding_hits", 0)
    assert after["results_hits"] > before.get("results_hits", 0)


def test_a_batch_gives_the_same_routes_and_evidence_as_one_by_one(assistant, knowledge, pubmedqa):
    requests = [{"question": entry["QUESTION"]} for entry in list(pubmedqa.values())[10:14]]
    requests.append({"note": "cough and fever", "image": DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm"})
    requests.append({"image": DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm"})
    batch = assistant.search_batch(requests, tenant=knowledge, k=5)
    single = [assistant.search(**request, tenant=knowledge, k=5) for request in requests]
    assert [r.route.intent for r in batch] == [r.route.intent for r in single]
    assert [[e.source_id for e in r.evidence] for r in batch] == [[e.source_id for e in r.evidence] for r in single]
    # A batch encodes notes together: the same vectors up to float rounding, so the same reads to 1e-5.
    for batched, alone in zip(batch, single, strict=True):
        assert [read.inputs for read in batched.reads] == [read.inputs for read in alone.reads]
        for read, reference in zip(batched.reads, alone.reads, strict=True):
            assert read.probabilities == pytest.approx(reference.probabilities, abs=1e-5)
    assert [len(r.reads) for r in batch] == [0, 0, 0, 0, 2, 1], "text alone has no read; no note, no image + note read"
    assert all(set(r.timings_ms) == set(STAGES) for r in batch)


def test_fusion_reranks_picks_sentences_and_returns_attention_maps(assistant, knowledge):
    result = assistant.search(note="Fever and dry cough, bilateral ground-glass opacities.",
                              image=DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm", tenant=knowledge, k=5)
    fusion = result.fusion
    assert fusion is not None and len(fusion.scores) == len(result.evidence) == 5
    assert fusion.scores == sorted(fusion.scores, reverse=True)
    assert len(set(fusion.retrieval_ranks)) == 5 and max(fusion.retrieval_ranks) <= assistant.config.rerank_depth
    for item, attention in zip(result.evidence, fusion.sentence_attention, strict=True):
        sentences = item.properties["sentences"]
        assert set(item.passages) <= set(sentences) and len(attention) == len(sentences)
    assert all(grid.shape == (7, 7) and abs(grid.sum() - 1) < 1e-4 for grid in fusion.image_attention)
    assert 0.0 <= fusion.gate <= 1.0
    evidence, sentence, _ = fusion.selected[0]
    assert sentence < len(result.evidence[evidence].properties["sentences"])
    exported = json.dumps(result.to_dict())
    assert "sentence_vectors" not in exported and json.loads(exported)["fusion"]["image_attention"]


def test_without_fusion_the_evidence_stays_in_retrieval_order(config, store, text_encoder, joint_encoder,
                                                              assistant, knowledge, pubmedqa):
    plain = Assistant(config.replace(reranker="retrieval"), store, text_encoder=text_encoder,
                      joint_encoder=joint_encoder)
    question = list(pubmedqa.values())[7]["QUESTION"]
    unfused = plain.search(question=question, tenant=knowledge, k=10)
    fused = assistant.search(question=question, tenant=knowledge, k=10)
    assert unfused.fusion is None and fused.fusion is not None
    assert [item.score for item in unfused.evidence] == sorted((item.score for item in unfused.evidence), reverse=True)
    depth = assistant.config.rerank_depth
    retrieval_order = [e.source_id for e in plain.search(question=question, tenant=knowledge, k=depth).evidence]
    assert [retrieval_order[rank - 1] for rank in fused.fusion.retrieval_ranks] == [
        e.source_id for e in fused.evidence]


def test_objects_stored_without_sentence_vectors_get_retrieval_order_and_a_warning(assistant, store, text_encoder,
                                                                                   pubmedqa):
    from medrag.store.store import Record

    tenant = store.create_tenant(f"old-{uuid.uuid4().hex[:8]}")
    pmid, entry = next(iter(pubmedqa.items()))
    text = " ".join(entry["CONTEXTS"])
    store.upsert(ARTICLES, [Record(pmid, {"text": text, "sentences": entry["CONTEXTS"], "source": "pubmedqa"},
                                   {"text": text_encoder.encode([text])[0]})], tenant=tenant)
    result = assistant.search(question=entry["QUESTION"], tenant=tenant, k=3)
    assert [item.source_id for item in result.evidence] == [pmid] and result.fusion is None
    assert "re-run `medrag ingest" in result.warnings[0] and pmid in result.warnings[0]


def _vit_checkpoint(folder: Path) -> Path:
    """An open_clip checkpoint folder whose image tower is a (tiny, untrained) ViT, the way BiomedCLIP's is: a
    joint model with no convolutional feature grid for the fusion module."""
    import open_clip
    from safetensors.torch import save_file

    from medrag.encode.joint import _resolve_text_tower, base_model_config

    model_cfg = {**_resolve_text_tower(base_model_config()),
                 "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "head_width": 32, "patch_size": 32}}
    model = open_clip.CustomTextCLIP(**model_cfg)
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3, "size": 224}}))
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()},
              folder / "open_clip_model.safetensors")
    text_tower = Path(model_cfg["text_cfg"]["hf_tokenizer_name"])
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(text_tower / name, folder / name)
    return folder


def test_a_joint_model_without_a_feature_grid_still_answers_image_queries(config, store, knowledge, text_encoder,
                                                                           tmp_path):
    vit = JointEncoder.load(_vit_checkpoint(tmp_path))
    assistant = Assistant(config, store, text_encoder=text_encoder, joint_encoder=vit)
    study = DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm"
    with_note = assistant.search(note="Fever and dry cough.", image=study, tenant=knowledge)
    assert with_note.evidence and with_note.fusion is not None and with_note.fusion.image_attention is None
    assert any("took no part in the rerank" in warning for warning in with_note.warnings)
    assert with_note.reads == [] and any("medrag train read" in warning for warning in with_note.warnings)
    image_only = assistant.search(image=study, tenant=knowledge)
    assert image_only.evidence and image_only.fusion is None
    assert any("fusion skipped, results in retrieval order" in warning for warning in image_only.warnings)
