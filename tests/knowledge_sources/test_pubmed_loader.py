"""load_pubmed on the real PubMedQA, BC5CDR and NCBI disease files, and on the MEDLINE XML sample."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

import pytest

from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.records import Problem, SourceRecord

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def pubmed_dir(data_dir: Path) -> Path:
    return data_dir / "pubmed"


@pytest.fixture(scope="module")
def pubmedqa_records(pubmed_dir: Path) -> dict[str, SourceRecord]:
    items = list(load_pubmed([pubmed_dir / "pubmedqa_pqal_dev.json"]))
    assert not [item for item in items if isinstance(item, Problem)]
    return {item.source_id: item for item in items}


def test_pubmedqa_all_500_articles(pubmedqa_records: dict[str, SourceRecord]) -> None:
    assert len(pubmedqa_records) == 500
    assert {record.source for record in pubmedqa_records.values()} == {"pubmedqa"}
    assert {record.kind for record in pubmedqa_records.values()} == {"article"}


def test_pubmedqa_fields_of_one_real_article(pubmedqa_records: dict[str, SourceRecord],
                                             pubmedqa: dict[str, dict]) -> None:
    record = pubmedqa_records["10808977"]
    sections = record.fields["sections"]
    assert [section["label"] for section in sections] == ["BACKGROUND", "DESIGN", "PARTICIPANTS", "INTERVENTION",
                                                           "MAIN OUTCOME", "RESULTS"]
    assert sections[0]["text"].startswith("Telephone counseling and tailored print communications")
    assert sections[1]["text"] == "Three-year randomized field trial."
    assert "Mammography" in record.fields["mesh"] and len(record.fields["mesh"]) == 15
    assert record.fields["year"] == 2000
    assert record.origin.endswith("record 1 (id 10808977)")
    # Evaluation labels stay out: no answer, no conclusion, and the question is not used as the title.
    stored = repr(record.fields)
    source = pubmedqa["10808977"]
    assert source["QUESTION"] not in stored and source["LONG_ANSWER"][:60] not in stored
    assert set(record.fields) == {"sections", "mesh", "year"}


def test_pubmedqa_without_year(pubmedqa_records: dict[str, SourceRecord], pubmedqa: dict[str, dict]) -> None:
    missing = [pmid for pmid, item in pubmedqa.items() if not item["YEAR"]]
    assert len(missing) == 36
    assert all(pubmedqa_records[pmid].fields["year"] is None for pmid in missing)


def test_bc5cdr_1500_abstracts_over_three_files(pubmed_dir: Path) -> None:
    items = list(load_pubmed([pubmed_dir / "bc5cdr"]))  # README.txt in the folder is not a PubTator file
    assert not [item for item in items if isinstance(item, Problem)]
    per_file = Counter(Path(item.origin.split(",")[0]).name for item in items)
    assert per_file == {"CDR_DevelopmentSet.PubTator.txt": 500, "CDR_TestSet.PubTator.txt": 500,
                        "CDR_TrainingSet.PubTator.txt": 500}
    assert {item.source for item in items} == {"pubtator-bc5cdr"}
    record = next(item for item in items if item.source_id == "227508")
    assert record.fields["title"] == "Naloxone reverses the antihypertensive effect of clonidine."
    assert record.fields["sections"][0]["label"] == ""
    assert record.fields["sections"][0]["text"].startswith("In unanesthetized, spontaneously hypertensive rats")
    assert len(record.fields["sections"]) == 1


def test_ncbi_disease_693_abstracts_one_pmid_twice(pubmed_dir: Path) -> None:
    items = list(load_pubmed([pubmed_dir / "ncbi-disease"]))
    assert not [item for item in items if isinstance(item, Problem)]
    per_file = Counter(Path(item.origin.split(",")[0]).name for item in items)
    assert per_file == {"NCBIdevelopset_corpus.txt": 100, "NCBItrainset_corpus.txt": 593}
    ids = Counter(item.source_id for item in items)
    assert len(ids) == 692 and ids["8528200"] == 2  # the training set holds PMID 8528200 twice
    assert {item.source for item in items} == {"pubtator-ncbi-disease"}


def test_caller_may_name_the_source(pubmed_dir: Path) -> None:
    first = next(load_pubmed([pubmed_dir / "ncbi-disease"], source="ncbi"))
    assert first.source == "ncbi"


@pytest.fixture(scope="module")
def sample() -> list[SourceRecord | Problem]:
    return list(load_pubmed([DATA / "pubmed_sample.xml"]))


def test_medline_sample_articles(sample: list[SourceRecord | Problem], pubmedqa: dict[str, dict]) -> None:
    records = [item for item in sample if isinstance(item, SourceRecord)]
    assert [record.source_id for record in records] == ["19504993", "27928673", "20011163", "17113061"]
    first = records[0]
    assert first.source == "pubmed" and first.kind == "article"
    assert first.fields["title"] == "It's Fournier's gangrene still dangerous?"
    assert first.fields["journal"].startswith("Placeholder Journal")
    assert first.fields["publication_types"] == ["Journal Article"]
    assert first.fields["year"] == 2009
    # Sections and MeSH are PubMedQA's real ones for that PMID.
    real = pubmedqa["19504993"]
    assert [(section["label"], section["text"]) for section in first.fields["sections"]] == list(
        zip(real["LABELS"], real["CONTEXTS"], strict=True))
    assert first.fields["mesh"] == real["MESHES"]


def test_medline_date_year(sample: list[SourceRecord | Problem]) -> None:
    medline_date = next(item for item in sample if isinstance(item, SourceRecord) and item.source_id == "17113061")
    assert medline_date.fields["year"] == 2007  # from <MedlineDate>2007 Jan-Feb</MedlineDate>


def test_medline_bad_and_deleted_records(sample: list[SourceRecord | Problem]) -> None:
    problems = [item for item in sample if isinstance(item, Problem)]
    missing_pmid, deletion = problems
    assert missing_pmid.origin == f"{DATA / 'pubmed_sample.xml'}, record 5"
    assert missing_pmid.field == "id" and not missing_pmid.skipped
    assert "MedlineCitation.PMID" in missing_pmid.reason and "pubmed_medline.yaml" in missing_pmid.fix
    assert deletion.skipped and deletion.origin.endswith("record 6")
    assert deletion.reason == "DeleteCitation: a deletion notice for PMIDs 99999901, not an article"


def test_medline_gzip_gives_the_same_records(sample: list[SourceRecord | Problem]) -> None:
    gzipped = list(load_pubmed([DATA / "pubmed_sample.xml.gz"]))
    plain = [(type(item), getattr(item, "fields", None), getattr(item, "reason", None)) for item in sample]
    assert [(type(item), getattr(item, "fields", None), getattr(item, "reason", None)) for item in gzipped] == plain


def test_loader_is_lazy_and_reads_mixed_inputs(pubmed_dir: Path) -> None:
    loader = load_pubmed([DATA / "pubmed_sample.xml", pubmed_dir / "pubmedqa_pqal_dev.json"])
    assert inspect.isgenerator(loader)
    first = next(loader)
    assert first.source_id == "19504993"
    assert sum(isinstance(item, SourceRecord) for item in loader) == 3 + 500
