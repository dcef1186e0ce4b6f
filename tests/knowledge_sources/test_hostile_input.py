"""Hostile and malformed knowledge files (issue 18): each is a Problem naming the file and the fix, and the batch
goes on; the fuzzers of ``reliability.hostile_input`` run here on a few dozen cases per parser."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest
from hypothesis import given

from knowledge_sources.mapping import MappingError, builtin_mapping, parse_mapping
from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.readers import ReaderOptions, read
from knowledge_sources.records import Problem, SourceRecord
from knowledge_sources.reports import load_reports
from medrag.config import LimitsConfig
from reliability.hostile_input import (
    MEDLINE,
    REPORTS_CSV,
    check_mapping,
    check_pubmed_xml,
    check_reports_csv,
    csv_files,
    entity_bomb,
    fuzz_settings,
    in_a_record,
    mappings,
    xml_files,
)

SMALL = LimitsConfig(max_file_mb=1, max_field_chars=1_000, max_xml_depth=20)
EXAMPLES = 60


def _kinds(items: list) -> list[str]:
    return [type(item).__name__ for item in items]


# --- the fuzzers, few cases ------------------------------------------------------------------------------------------

@fuzz_settings(EXAMPLES)
@given(case=xml_files)
def test_any_pubmed_xml_gives_records_or_problems_naming_the_file(tmp_path_factory, case) -> None:
    check_pubmed_xml(case, tmp_path_factory.mktemp("xml"))


@fuzz_settings(EXAMPLES)
@given(case=csv_files)
def test_any_report_csv_gives_records_or_problems_naming_the_file(tmp_path_factory, case) -> None:
    check_reports_csv(case, tmp_path_factory.mktemp("csv"))


@fuzz_settings(EXAMPLES)
@given(data=mappings)
def test_any_mapping_loads_or_raises_a_mapping_error_naming_the_file(tmp_path_factory, data) -> None:
    check_mapping(data, tmp_path_factory.mktemp("mapping"))


# --- XML: entities, size, depth --------------------------------------------------------------------------------------

def test_a_billion_laughs_file_is_refused_and_the_next_file_is_read(tmp_path: Path) -> None:
    bomb = tmp_path / "a_bomb.xml"
    bomb.write_bytes(entity_bomb(depth=9, width=10))
    good = tmp_path / "b_good.xml"
    good.write_bytes(MEDLINE)
    items = list(load_pubmed([bomb, good]))
    assert _kinds(items) == ["Problem", "SourceRecord", "SourceRecord"]
    assert items[0].origin == str(bomb)
    assert "declares entities" in items[0].reason and "<!ENTITY>" in items[0].fix
    assert items[1].source_id == "19504993"


def test_a_small_entity_expansion_is_refused_too(tmp_path: Path) -> None:
    """expat alone expands a 500-byte bomb to 300,000 characters (its guard starts later); nothing expands now."""
    path = tmp_path / "small_bomb.xml"
    path.write_bytes(entity_bomb(depth=5, width=10))
    (problem,) = read(path, ReaderOptions(record="PubmedArticle"))
    assert isinstance(problem, Problem) and "EntitiesForbidden" in problem.reason


def test_an_external_entity_is_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("PATIENT-SECRET-42")
    path = tmp_path / "xxe.xml"
    path.write_text(f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file://{secret}">]>'
                    "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>&xxe;"
                    "</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>")
    items = list(load_pubmed([path]))
    assert _kinds(items) == ["Problem"]
    assert items[0].origin == str(path) and "external" in items[0].reason
    assert "PATIENT-SECRET-42" not in str(items[0])


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml.gz"
    path.write_bytes(gzip.compress(MEDLINE[:-20] + b" " * 3 * 1024 * 1024 + MEDLINE[-20:]))
    assert path.stat().st_size < 20_000
    items = list(load_pubmed([path], limits=SMALL))
    assert _kinds(items) == ["SourceRecord", "SourceRecord", "Problem"]
    assert items[-1].origin == str(path) and "larger than 1 MB" in items[-1].reason
    assert "MEDRAG_LIMITS_MAX_FILE_MB (now 1)" in items[-1].fix


def test_a_huge_attribute_is_one_records_problem_and_the_other_records_are_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    path.write_bytes(MEDLINE.replace(b'Status="MEDLINE"', b'Status="' + b"x" * 5_000 + b'"'))
    items = list(load_pubmed([path], limits=SMALL))
    assert _kinds(items) == ["Problem", "SourceRecord"]
    assert items[0].origin == f"{path}, record 1" and items[0].field == "MedlineCitation.@Status"
    assert "5000 characters, over the limit of 1000" in items[0].reason
    assert "MEDRAG_LIMITS_MAX_FIELD_CHARS" in items[0].fix


def test_deep_nesting_is_refused_before_the_converter_recurses(tmp_path: Path) -> None:
    path = tmp_path / "deep.xml"
    path.write_bytes(in_a_record(b"<a>" * 5_000 + b"</a>" * 5_000))
    items = list(load_pubmed([path]))
    assert _kinds(items) == ["Problem"]
    assert "nest deeper than 64 levels" in items[0].reason and "MEDRAG_LIMITS_MAX_XML_DEPTH" in items[0].fix


# --- JSON and CSV ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "reason"), [
    ('[{"uid": ' + "9" * 5_000 + "}]", "4300 digits"),
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
])
def test_json_python_cannot_convert_is_a_problem(tmp_path: Path, content: str, reason: str) -> None:
    for name, text in (("whole.json", content), ("lines.jsonl", content + "\n")):
        path = tmp_path / name
        path.write_text(text)
        (problem,) = read(path)
        assert isinstance(problem, Problem) and problem.origin.startswith(str(path)) and reason in problem.reason


def test_a_csv_cell_over_the_field_limit_is_one_rows_problem(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_text(REPORTS_CSV + f'2,,,"{"y" * 5_000}",x\n3,,,Clear.,Normal.\n')
    items = list(load_reports([path], limits=SMALL))
    assert _kinds(items) == ["SourceRecord", "Problem", "SourceRecord"]
    assert items[1].origin == f"{path}, after line 2" and "longer than 1000 characters" in items[1].reason
    assert "MEDRAG_LIMITS_MAX_FIELD_CHARS" in items[1].reason
    assert csv.field_size_limit() == SMALL.max_field_chars
    assert [item.source_id for item in items if isinstance(item, SourceRecord)] == ["CXR1", "CXR3"]


def test_a_csv_header_over_the_field_limit_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_text("uid," + "h" * 5_000 + "\n1,2\n")
    (problem,) = load_reports([path], limits=SMALL)
    assert problem.origin == f"{path}, line 1" and "malformed CSV header" in problem.reason


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_csv_in_another_encoding_is_reported_not_misread(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(REPORTS_CSV.encode(encoding))
    (problem,) = load_reports([path])
    assert problem.origin == str(path) and "the header has no column" in problem.reason


def test_nul_bytes_and_invalid_utf8_in_a_csv_are_problems_of_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(REPORTS_CSV.encode() + b"2,,,Bad \xff\xfe bytes.,x\n3,,,NUL \x00 inside.,y\n")
    items = list(load_reports([path]))
    assert _kinds(items) == ["SourceRecord", "Problem", "SourceRecord"]
    assert items[1].field == "findings" and "not valid utf-8" in items[1].reason


# --- mapping files ---------------------------------------------------------------------------------------------------

def _with(reader: dict | None = None, **top: object) -> dict:
    """A small valid mapping with the given reader settings and top-level keys."""
    return {"name": "m", "kind": "report", "source": "s", "id": "uid", "fields": {"findings": "findings"},
            "reader": reader or {}, **top}


@pytest.mark.parametrize(("data", "where"), [
    (_with({"encoding": "no-such-codec"}), "reader.encoding: unknown encoding"),
    (_with({"delimiter": ";;"}), "reader.delimiter: ';;' is not one character"),
    (_with({"record": 5}), "reader.record: expected a non-empty string"),
    (_with({"text": [None]}), "reader: text must be a list of element names"),
    (_with({"skip": {"A": 1}}), "skip must map element names to reasons"),
    (_with(require_any=1), "require_any: expected a list of field names"),
    (_with(require_any=[None]), "require_any: expected a list of field names"),
])
def test_mapping_mistakes_that_used_to_fail_at_read_time_fail_at_load(data: dict, where: str) -> None:
    with pytest.raises(MappingError) as raised:
        parse_mapping(data, "hospital.yaml")
    assert str(raised.value).startswith("hospital.yaml, ") and where in str(raised.value)


def test_a_valid_reader_section_still_loads() -> None:
    mapping = parse_mapping(_with({"encoding": "latin-1", "delimiter": ";"}), "hospital.yaml")
    assert mapping.reader.encoding == "latin-1" and mapping.reader.delimiter == ";"
    assert builtin_mapping("pubmed_medline").reader.record == "PubmedArticle"
