"""Fusion supervision from real queries through the real pipeline (Weaviate, router, encoders)."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.datasets.covid import covid_cases, report_is_relevant
from medrag.fuse import FusionConfig, collate
from medrag.fuse.reranker import query_sentences
from medrag.store import ARTICLES, CASES, REPORTS
from training.fusion_data import FusionData, FusionDataBuilder
from training.fusion_losses import make_targets


def test_pubmedqa_items_mark_the_own_abstract_and_its_conclusion_sentences(fusion_set, pubmedqa):
    items = [item for item in fusion_set.data.items if item.task == "pubmedqa"]
    assert len(items) == 40
    found = 0
    for item in items:
        assert item.text.shape == (1, 384) and item.image is None
        assert len(item.candidates) <= 8
        relevant = [c for c in item.candidates if c.relevant]
        assert all(c.collection == ARTICLES and c.source_id == item.query_id for c in relevant)
        if relevant:
            found += 1
            own = relevant[0]
            assert len(own.relevant_sentences) == 2
            stored = fusion_set.assistant.store.fetch(ARTICLES, item.query_id, tenant=fusion_set.tenant)
            sentences = stored.properties["sentences"]
            assert all(not sentences[index].startswith("TITLE:") for index in own.relevant_sentences)
    assert found >= 36  # the own abstract is in the top 8 for nearly every question (hybrid recall@10 > 0.98)


def test_covid_items_never_find_their_own_patient_and_label_by_finding(fusion_set):
    cases = {case.source_id: case for case in covid_cases(fusion_set.metadata)}
    items = [item for item in fusion_set.data.items if item.task == "covid"]
    assert len(items) == sum(1 for case in cases.values() if case.finding_class)
    for item in items:
        query = cases[item.query_id]
        assert item.label == query.finding_class
        assert item.image.shape == (1280, 7, 7)
        assert (item.text is None) == (not query.note)
        for candidate in item.candidates:
            if candidate.collection == CASES and candidate.source_id in cases:
                assert cases[candidate.source_id].group != query.group
                assert candidate.relevant == (cases[candidate.source_id].finding_class == query.finding_class)
            elif candidate.collection == CASES:  # a demo DICOM: no finding, so never relevant and no vote
                assert not candidate.relevant and candidate.label is None
            if candidate.collection == REPORTS:
                stored = fusion_set.assistant.store.fetch(REPORTS, candidate.source_id, tenant=fusion_set.tenant)
                mesh = stored.properties.get("mesh") or []
                assert candidate.relevant == report_is_relevant(query.finding_class, mesh)


def test_bank_holds_one_vector_per_stored_sentence(fusion_set):
    data = fusion_set.data
    for (collection, source_id), vectors in list(data.sentence_vectors.items())[:25]:
        stored = fusion_set.assistant.store.fetch(collection, source_id, tenant=fusion_set.tenant)
        assert vectors.shape == (len(stored.properties["sentences"]), 384)


def test_examples_collate_and_targets_match_the_labels(fusion_set):
    data = fusion_set.data
    items = data.items[:6] + [item for item in data.items if item.task == "covid"][:3]
    batch = collate([data.example(item) for item in items], FusionConfig())
    relevant = [data.targets(item) for item in items]
    targets = make_targets(batch, [c for c, _ in relevant], [s for _, s in relevant])
    for row, item in enumerate(items):
        assert targets.relevant_candidates[row].sum().item() == sum(c.relevant for c in item.candidates)
        assert targets.relevant_sentences[row].sum().item() == sum(len(c.relevant_sentences) for c in item.candidates)


def test_saved_data_loads_equal(fusion_set, tmp_path):
    path = tmp_path / "data.pt"
    fusion_set.data.save(path)
    loaded = FusionData.load(path)
    assert [(i.task, i.query_id, i.group, i.label, i.candidates) for i in loaded.items] == [
        (i.task, i.query_id, i.group, i.label, i.candidates) for i in fusion_set.data.items]
    first = next(item for item in fusion_set.data.items if item.task == "covid")
    again = next(item for item in loaded.items if item.query_id == first.query_id)
    np.testing.assert_allclose(again.image, first.image, rtol=1e-3, atol=1e-2)  # stored as float16
    assert loaded.sentence_vectors.keys() == fusion_set.data.sentence_vectors.keys()


def test_query_sentences_keep_the_question_first_and_respect_the_token_limit():
    config = FusionConfig(max_text_tokens=3)
    note = "Fever for 3 days. Cough. Oxygen saturation 91%. Crackles at the right base."
    assert query_sentences("Is this pneumonia?", note, config) == ["Is this pneumonia?", "Fever for 3 days.", "Cough."]
    assert query_sentences(None, None, config) == []


def test_the_builder_refuses_an_assistant_that_already_reranks(config, store, text_encoder, joint_encoder):
    from medrag.assistant import Assistant

    fusing = Assistant(config, store, text_encoder=text_encoder, joint_encoder=joint_encoder)
    with pytest.raises(ValueError, match="keeps the retrieval order"):
        FusionDataBuilder(fusing, FusionConfig())
