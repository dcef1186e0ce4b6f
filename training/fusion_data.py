"""Supervision for the fusion module, built from real queries run through the real pipeline.

Every training query goes through ``Assistant.search_batch`` (de-identification, routing, hybrid and
joint search, RRF merge), so the candidates the module learns to rerank are the ones it will be given
at inference, hard negatives included. Two sources of labels:

- PubMedQA (question -> its own abstract): the abstract with the question's PMID is the relevant
  candidate. Its relevant sentences are the two closest (MiniLM cosine) to the authors' conclusion
  (``LONG_ANSWER``), which the knowledge base does not contain: the sentences that carry the answer.
- covid cases (image + clinical note -> reports and cases): a case candidate is relevant when its
  finding class equals the query's, a report when its MeSH terms fit that class
  (``medrag.datasets.covid.report_is_relevant``). Relevant sentences: a case's ``FINDING:`` sentence, a
  report's sentences that name what the class looks like. The query's own patient is removed from its
  candidates, so a case never finds itself or its twin image.

VQA-RAD is not used: its answers are about the image, and nothing says which report or article would
support them.

Candidate sentence vectors are those stored at ingestion (``Evidence.sentence_vectors``), kept once per
object in a bank; images are the frozen tower's feature maps. The built set is saved with
``torch.save`` as plain tensors and lists, so loading needs no pickle (``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from medrag.datasets.covid import INFECTION_MESH, CovidCase, covid_cases, report_is_relevant
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.fuse.model import FusionConfig, FusionExample
from medrag.fuse.reranker import query_sentences
from medrag.retrieve.retriever import Evidence
from medrag.store import ARTICLES, CASES, REPORTS

DATA_VERSION = 2
"""2: canonical group keys (``pubmedqa:<PMID>``, ``covid:<patient group>``) for the named split."""
CONCLUSION_SENTENCES = 2
"""Sentences of a PubMedQA abstract marked relevant: the ones closest to the authors' conclusion."""
_WORDS_OF_CLASS = {
    "no finding": re.compile(r"\b(normal|no acute|clear|unremarkable|no (focal )?(consolidation|effusion))\b", re.I),
    "infection": re.compile(r"\b(" + "|".join(sorted(INFECTION_MESH)).replace(" ", r"\s") + r"|opacit\w*|infiltrat\w*)",
                            re.I),
}


@dataclasses.dataclass
class Candidate:
    collection: str
    source_id: str
    relevant: bool
    relevant_sentences: list[int]
    """Indices into the candidate's stored ``sentences``."""
    label: str | None = None
    """The finding class of a case candidate (for the finding classification)."""


@dataclasses.dataclass
class FusionItem:
    """One query with its candidates in retrieval order."""

    task: str
    """"pubmedqa" or "covid"."""
    query_id: str
    group: str
    """Canonical split key: ``pubmedqa:<PMID>`` or ``covid:<patient group>``."""
    text: np.ndarray | None
    """(T, text_dim) question and note-sentence vectors."""
    image: np.ndarray | None
    """(channels, rows, cols) image feature map."""
    candidates: list[Candidate]
    label: str | None = None
    """The query's finding class (covid)."""


@dataclasses.dataclass
class FusionData:
    items: list[FusionItem]
    sentence_vectors: dict[tuple[str, str], np.ndarray]
    """(collection, source id) -> (sentences, dim) float16: each stored object once."""

    def example(self, item: FusionItem) -> FusionExample:
        candidates = [[(vector, candidate.collection)
                       for vector in self.sentence_vectors[(candidate.collection, candidate.source_id)]]
                      for candidate in item.candidates]
        return FusionExample(candidates, text=item.text, image=item.image)

    def targets(self, item: FusionItem) -> tuple[set[int], set[tuple[int, int]]]:
        """Relevant candidate indices and (candidate, sentence) pairs, for ``make_targets``."""
        return ({index for index, candidate in enumerate(item.candidates) if candidate.relevant},
                {(index, sentence) for index, candidate in enumerate(item.candidates)
                 for sentence in candidate.relevant_sentences})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({
            "version": DATA_VERSION,
            "bank": [[collection, source_id, _tensor(vectors)]
                     for (collection, source_id), vectors in self.sentence_vectors.items()],
            "items": [{**{key: getattr(item, key) for key in ("task", "query_id", "group", "label")},
                       "text": _tensor(item.text), "image": _tensor(item.image),
                       "candidates": [dataclasses.asdict(candidate) for candidate in item.candidates]}
                      for item in self.items],
        }, path)

    @classmethod
    def load(cls, path: Path) -> FusionData:
        saved = torch.load(path, weights_only=True)
        if saved.get("version") != DATA_VERSION:
            raise ValueError(f"{path}: fusion data version {saved.get('version')}, expected {DATA_VERSION}; "
                             "delete it and build again")
        items = [FusionItem(row["task"], row["query_id"], row["group"], _array(row["text"]), _array(row["image"]),
                            [Candidate(**candidate) for candidate in row["candidates"]], row["label"])
                 for row in saved["items"]]
        bank = {(collection, source_id): vectors.numpy() for collection, source_id, vectors in saved["bank"]}
        return cls(items, bank)


def _tensor(array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(np.asarray(array, np.float16))


def _array(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.float().numpy()


def _report_sentences(sentences: Sequence[str], finding: str) -> list[int]:
    words = _WORDS_OF_CLASS["no finding" if finding == "no finding" else "infection"]
    return [index for index, sentence in enumerate(sentences) if words.search(sentence)]


def _conclusion_sentences(evidence: Evidence, answer_vector: np.ndarray) -> list[int]:
    sentences = evidence.properties.get("sentences") or []
    vectors = evidence.sentence_vectors()
    eligible = [index for index, sentence in enumerate(sentences) if not sentence.startswith("TITLE:")]
    similarity = vectors[eligible] @ answer_vector
    return sorted(eligible[index] for index in np.argsort(-similarity)[:CONCLUSION_SENTENCES])


def covid_queries(metadata_csv: Path) -> list[CovidCase]:
    """The cases of a metadata.csv-format file that become queries: a known finding class and an image."""
    return [case for case in covid_cases(metadata_csv) if case.finding_class and case.image_path.is_file()]


class FusionDataBuilder:
    """Runs labelled queries through an Assistant and keeps what the fusion module needs from each result."""

    def __init__(self, assistant: Any, config: FusionConfig, *, tenant: str | None = None, candidates: int = 20,
                 progress: bool = True, batch_size: int = 32) -> None:
        if assistant.config.reranker != "retrieval":
            raise ValueError("FusionDataBuilder needs an Assistant that keeps the retrieval order "
                             "(config.replace(reranker=\"retrieval\")): "
                             "the module learns to rerank the retrieval order, not its own")
        self.assistant = assistant
        self.config = config
        self.tenant = tenant
        self.candidates = candidates
        self.progress = progress
        self.batch_size = batch_size
        self.bank: dict[tuple[str, str], np.ndarray] = {}

    def _search(self, requests: list[dict[str, Any]], depth: int, desc: str) -> list[Any]:
        results = []
        for start in tqdm(range(0, len(requests), self.batch_size), desc=desc, unit="batch",
                          disable=not self.progress):
            results += self.assistant.search_batch(requests[start:start + self.batch_size], tenant=self.tenant,
                                                   k=depth)
        return results

    def _keep(self, evidence: Evidence) -> None:
        key = (evidence.collection, evidence.source_id)
        if key not in self.bank:
            vectors = evidence.sentence_vectors(self.config.evidence_dim)[: self.config.max_sentences]
            self.bank[key] = vectors.astype(np.float16)

    def _texts(self, question: str | None, note: str | None) -> np.ndarray | None:
        texts = query_sentences(question, note, self.config)
        return self.assistant.retriever.text_vectors(texts) if texts else None

    def pubmedqa(self, questions_json: Path) -> list[FusionItem]:
        records = read_pubmedqa(questions_json)
        answers = self.assistant.text_encoder.encode([record.long_answer for record in records])
        results = self._search([{"question": record.question} for record in records], self.candidates,
                               "fusion data: PubMedQA")
        items = []
        for record, answer, result in zip(records, answers, results, strict=True):
            candidates = []
            for evidence in result.evidence:
                self._keep(evidence)
                own = evidence.collection == ARTICLES and evidence.source_id == record.pmid
                candidates.append(Candidate(evidence.collection, evidence.source_id, own,
                                            _conclusion_sentences(evidence, answer) if own else []))
            items.append(FusionItem("pubmedqa", record.pmid, record.group, self._texts(result.query.question, None),
                                    None, candidates))
        return items

    def covid(self, metadata_csv: Path) -> list[FusionItem]:
        labels = {case.source_id: case for case in covid_cases(metadata_csv)}
        cases = covid_queries(metadata_csv)
        # Deeper than needed: the query's own patient is dropped from its candidates afterwards.
        depth = self.candidates + 10
        items = []
        for start in tqdm(range(0, len(cases), self.batch_size), desc="fusion data: covid", unit="batch",
                          disable=not self.progress):
            batch = cases[start:start + self.batch_size]
            results = self.assistant.search_batch([{"note": case.note or None, "image": case.image_path}
                                                   for case in batch], tenant=self.tenant, k=depth)
            patches = self.assistant.joint_encoder.encode_patches([result.query.image for result in results])
            for case, result, image in zip(batch, results, patches, strict=True):
                items.append(FusionItem("covid", case.source_id, case.group,
                                        self._texts(None, result.query.note), image,
                                        self._covid_candidates(case, result.evidence, labels), case.finding_class))
        return items

    def _covid_candidates(self, query: Any, evidence: Sequence[Evidence], labels: Mapping[str, Any]
                          ) -> list[Candidate]:
        candidates = []
        for item in evidence:
            if item.collection == CASES:
                other = labels.get(item.source_id)
                if other is not None and other.group == query.group:
                    continue
                label = other.finding_class if other is not None else None
                sentences = item.properties.get("sentences") or []
                relevant = label == query.finding_class
                marked = [i for i, s in enumerate(sentences) if s.startswith("FINDING:")] if relevant else []
                candidates.append(Candidate(CASES, item.source_id, relevant, marked, label))
            elif item.collection == REPORTS:
                relevant = report_is_relevant(query.finding_class, item.properties.get("mesh") or [])
                sentences = item.properties.get("sentences") or []
                candidates.append(Candidate(REPORTS, item.source_id, relevant,
                                            _report_sentences(sentences, query.finding_class) if relevant else []))
            else:
                candidates.append(Candidate(item.collection, item.source_id, False, []))
            self._keep(item)
            if len(candidates) == self.candidates:
                break
        return candidates

    def build(self, questions_json: Path | None, metadata_csv: Path | None) -> FusionData:
        items = (self.pubmedqa(questions_json) if questions_json else []) + (
            self.covid(metadata_csv) if metadata_csv else [])
        read = self.config.max_sentences  # a sentence past it is not read, so it cannot be a target either
        for item in items:
            for candidate in item.candidates:
                candidate.relevant_sentences = [s for s in candidate.relevant_sentences if s < read]
        return FusionData([item for item in items if item.candidates], self.bank)


def _digest(path: Path | None) -> str:
    return "" if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fusion_data(assistant: Any, questions_json: Path | None, metadata_csv: Path | None, *, tenant: str,
                cache_dir: Path, candidates: int = 20, rebuild: bool = False, progress: bool = True) -> FusionData:
    """The fusion supervision of these files (already ingested in ``tenant``), built once and cached.

    The cache key covers the files' content, the tenant, the depth and the models that produced the
    candidates, so a retrained joint model or a new text encoder builds it again.
    """
    models = [str(assistant.text_encoder.model_path), assistant.joint_encoder.source if metadata_csv else ""]
    key = hashlib.sha256(json.dumps([DATA_VERSION, _digest(questions_json), _digest(metadata_csv), tenant,
                                     candidates, models]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "fusion" / f"data-{key}.pt"
    if path.is_file() and not rebuild:
        return FusionData.load(path)
    builder = FusionDataBuilder(assistant, FusionConfig(), tenant=tenant, candidates=candidates, progress=progress)
    data = builder.build(questions_json, metadata_csv)
    data.save(path)
    return data
