"""The three places the product grows, each used the way ARCHITECTURE.md tells a newcomer to: a toy knowledge
source, a toy reranker and a toy answer strategy, registered through their public extension point and run through
``Assistant.ask`` end to end on the real Weaviate server, the real encoders and router, and real report text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge_sources import DEMO_DIR
from knowledge_sources.records import Problem, SourceRecord
from knowledge_sources.reports import load_reports
from medrag.assistant import Assistant
from medrag.generate.grounding import Grounding
from medrag.generate.writer import AnswerTask, Drafted, register_strategy, unregister_strategy
from medrag.rerank import Reranked, RerankRequest, register_reranker, unregister_reranker
from medrag.sources import Field, KnowledgeSource, Prepared, register_source, unregister_source
from medrag.text.sentences import split_sentences
from medrag.types import Claim, Hints

TEACHING = "TeachingFile"
QUESTION = "Is there a pleural effusion or pneumothorax?"


def load_teaching_files(paths: list[Path], mapping: str | None = None) -> Iterator[SourceRecord | Problem]:
    """A teaching-file export: JSON lines of {"id", "topic", "text"}."""
    del mapping  # the toy format has one layout
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            row = json.loads(line)
            yield SourceRecord("report", row["id"], "teaching", {"topic": row["topic"], "text": row["text"]},
                               f"{path}, line {number}")


def prepare_teaching_file(record: SourceRecord) -> Prepared:
    text = record.fields["text"]
    return Prepared(TEACHING, record.source_id,
                    {"text": text, "sentences": split_sentences(text) or [text], "topic": record.fields["topic"],
                     "source": record.source, "modality": "text"})


def teaching_source(collection: str = TEACHING, like: str | None = "RadiologyReport") -> KnowledgeSource:
    return KnowledgeSource(
        collection, "Teaching files: curated findings with a topic", label="teaching file", display="teaching files",
        fields=(Field("topic", "keyword"),), load=load_teaching_files,
        prepare=lambda context: prepare_teaching_file, like=like)


class ReverseOrder:
    """A toy reranker that is easy to observe: the retrieval order, reversed."""

    name = "reverse (toy)"
    needs_image_features = False

    def __init__(self, context) -> None:
        self.context = context

    def depth(self, k: int) -> int:
        return k

    def __call__(self, request: RerankRequest) -> Reranked:
        return Reranked(list(reversed(request.evidence[: request.k])))


class FirstSentence:
    """A toy answer strategy: quote the single most relevant evidence sentence."""

    def __init__(self, writer) -> None:
        self.writer = writer

    def write(self, task: AnswerTask) -> Drafted:
        best = task.relevant[0]
        return Drafted(Grounding([Claim(best.text, [best.number], 1.0, True)], [], False, 1, 1, 1, 1),
                       "first sentence (toy)")


@pytest.fixture(scope="module")
def teaching_files(tmp_path_factory) -> Path:
    """Findings of real IU reports, exported as teaching files."""
    rows = []
    for item in load_reports([DEMO_DIR / "iu-reports"]):
        if isinstance(item, SourceRecord) and item.fields.get("findings"):
            rows.append({"id": f"TF-{item.source_id}", "topic": "chest", "text": item.fields["findings"]})
        if len(rows) == 12:
            break
    path = tmp_path_factory.mktemp("teaching") / "teaching.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    return path


@pytest.fixture
def extensions() -> Iterator[None]:
    register_source(teaching_source())
    register_reranker("reverse-toy", ReverseOrder)
    register_strategy("first-sentence", FirstSentence)
    yield
    unregister_source(TEACHING)
    unregister_reranker("reverse-toy")
    unregister_strategy("first-sentence")


def test_a_toy_source_reranker_and_answer_strategy_plug_in_and_answer(config, store, text_encoder, joint_encoder,
                                                                     tenant, teaching_files, extensions):
    plain = Assistant(config.replace(reranker="retrieval"), store, text_encoder=text_encoder,
                      joint_encoder=joint_encoder)
    summary = plain.ingest(TEACHING, [teaching_files], tenant=tenant)
    assert summary.ok and summary.written == 12, summary.render()

    hints = Hints(sources=(TEACHING,))
    retrieved = plain.search(question=QUESTION, tenant=tenant, hints=hints, k=5)
    assert [item.collection for item in retrieved.evidence] == [TEACHING] * 5
    assert "teaching files" in retrieved.route.reason

    toy = Assistant(config.replace(reranker="reverse-toy"), store, text_encoder=text_encoder,
                    joint_encoder=joint_encoder)
    answer = toy.ask(question=QUESTION, tenant=tenant, hints=hints, k=5, mode="first-sentence")
    assert [item.source_id for item in answer.evidence] == [item.source_id for item in retrieved.evidence][::-1]
    assert answer.models["reranker"] == "reverse (toy)" and answer.models["generator"] == "first sentence (toy)"
    assert not answer.insufficient and len(answer.citations) == 1
    [citation] = answer.citations
    assert citation.collection == TEACHING and citation.label == f"teaching file {citation.source_id}"
    stored = store.fetch(TEACHING, citation.source_id, tenant=tenant).properties
    assert stored["sentences"][citation.sentence_index] == citation.sentence and stored["topic"] == "chest"
    assert answer.text == f"{citation.sentence.rstrip('.')} [1]."


def test_the_fusion_module_reads_a_new_source_as_the_one_it_resembles_or_falls_back(
        config, store, assistant, text_encoder, joint_encoder, tenant, teaching_files, extensions):
    assistant.ingest(TEACHING, [teaching_files], tenant=tenant)
    hints = Hints(sources=(TEACHING,))
    resembling = assistant.search(question=QUESTION, tenant=tenant, hints=hints, k=5)
    assert resembling.fusion is not None and not resembling.warnings, "read as radiology reports"

    register_source(teaching_source(like=None), replace=True)
    unknown = assistant.search(question="Is the heart size normal?", tenant=tenant, hints=hints, k=5)
    assert unknown.fusion is None and len(unknown.evidence) == 5
    assert any("not trained on ['TeachingFile']" in warning for warning in unknown.warnings)
    answer = assistant.ask(question="Is the heart size normal?", tenant=tenant, hints=hints, k=5,
                           mode="extractive")
    assert answer.citations and {c.collection for c in answer.citations} == {TEACHING}


def test_unknown_extension_names_fail_with_the_registered_ones(config, store, text_encoder):
    with pytest.raises(ValueError, match="registered: fusion, retrieval"):
        Assistant(config.replace(reranker="nope"), store, text_encoder=text_encoder)
    with pytest.raises(ValueError, match="unknown knowledge source 'Nope'"):
        Assistant(config, store, text_encoder=text_encoder).ingest("Nope", [])
