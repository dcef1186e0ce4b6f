"""The declarative field mapping: paths, transforms, defaults, errors, depth weights, mapping files."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_sources.mapping import (
    MISSING,
    TRANSFORMS,
    FieldPath,
    MappingError,
    builtin_names,
    load_mapping,
    parse_mapping,
)
from knowledge_sources.records import Problem, SourceRecord
from knowledge_sources.reports import load_reports

DATA = Path(__file__).parent / "data"

# xmltodict's shape for a MEDLINE record: a single child is a dict, several are a list.
MEDLINE_LIKE = {
    "MedlineCitation": {
        "PMID": {"@Version": "1", "#text": "123"},
        "MeshHeadingList": {"MeshHeading": [
            {"DescriptorName": {"@UI": "D006801", "#text": "Humans"}},
            {"DescriptorName": {"@UI": "D005260", "#text": "Female"}},
        ]},
        "Abstract": {"AbstractText": {"@Label": "RESULTS", "#text": "One section."}},
        "Title": "Plain text element",
    }
}


def _mapping(fields: dict, **top) -> object:
    return parse_mapping({"name": "t", "kind": "report", "source": "test", "id": {"path": "id"},
                          "fields": fields, **top}, origin="inline.yaml")


@pytest.mark.parametrize(("path", "expected"), [
    ("MedlineCitation.PMID.#text", "123"),
    ("MedlineCitation.Title.#text", "Plain text element"),  # #text of a plain string is the string
    ("MedlineCitation.MeshHeadingList.MeshHeading[*].DescriptorName.#text", ["Humans", "Female"]),
    ("MedlineCitation.MeshHeadingList.MeshHeading.DescriptorName.@UI", ["D006801", "D005260"]),  # implicit fan-out
    ("MedlineCitation.MeshHeadingList.MeshHeading[0].DescriptorName.#text", "Humans"),
    ("MedlineCitation.MeshHeadingList.MeshHeading[-1].DescriptorName.#text", "Female"),
    ("MedlineCitation.Abstract.AbstractText[*].#text", ["One section."]),  # a single dict is a one-item list
    ("MedlineCitation.Abstract.AbstractText[0].@Label", "RESULTS"),
    ("MedlineCitation.Abstract.AbstractText[@Label=RESULTS].#text", "One section."),
])
def test_paths_resolve_nested_values_lists_and_filters(path: str, expected: object) -> None:
    assert FieldPath.parse(path).resolve(MEDLINE_LIKE) == expected


def test_paths_that_find_nothing_are_missing_and_escaped_dots_are_keys() -> None:
    assert FieldPath.parse("MedlineCitation.Nope.x").resolve(MEDLINE_LIKE) is MISSING
    assert FieldPath.parse("MedlineCitation.Abstract.AbstractText[@Label=METHODS]").resolve(MEDLINE_LIKE) is MISSING
    assert FieldPath.parse(r"pt\.age").resolve({"pt.age": "7"}) == "7"


@pytest.mark.parametrize(("chain", "value", "expected"), [
    ("trim", "  a b  ", "a b"),
    ("lower", "CXR", "cxr"),
    ("upper", "m", "M"),
    ("collapse_ws", " a \n\t b ", "a b"),
    ("int", "45", 45),
    ("int", "45.0", 45),
    ("float", "37.5", 37.5),
    ("date:%Y", "Mar 3, 2020", "2020"),
    ("date:%Y-%m", "March 2003", "2003-03"),
    ("date:%Y | int", "3/7/2020", 2020),
    ("split:;", "a;b;c", ["a", "b", "c"]),
    ("split", "a b  c", ["a", "b", "c"]),
    ("split:; | join:+", "a;b", "a+b"),
    ("split:; | first", "x;y", "x"),
    ("null_if:todo", "TODO", None),
    ("null_if:todo", "COVID-19", "COVID-19"),
    ("strip_prefix:FINDINGS: | trim", "FINDINGS: clear", "clear"),
    ("prefix:CXR", "12", "CXR12"),
    (r"regex:\d{4}", "1998 Dec-1999 Jan", "1998"),
    (r"regex:v(\d+)", "release v12", "12"),
    ("map:F=female,M=male", "F", "female"),
    ("map:F=female,M=male", "O", "O"),
    ("split:; | trim | upper", " a ; b ", ["A", "B"]),  # element-wise on lists
])
def test_each_transform(chain: str, value: str, expected: object) -> None:
    record = _mapping({"out": {"path": "v", "transforms": chain}}).apply({"id": "1", "v": value}, "rec")
    assert isinstance(record, SourceRecord), record
    assert record.fields["out"] == expected


def test_every_registered_transform_is_tested() -> None:
    tested = {"trim", "lower", "upper", "collapse_ws", "int", "float", "date", "split", "join", "first", "null_if",
              "strip_prefix", "prefix", "regex", "map"}
    assert set(TRANSFORMS) == tested


def test_map_table_from_a_file_beside_the_mapping(tmp_path: Path) -> None:
    (tmp_path / "sex.yaml").write_text("F: female\nM: male\n")
    (tmp_path / "m.yaml").write_text("name: m\nkind: case\nsource: s\nid: {path: id}\n"
                                     "fields: {sex: {path: sex, transforms: 'map:sex.yaml'}}\n")
    record = load_mapping(tmp_path / "m.yaml").apply({"id": "1", "sex": "M"}, "rec")
    assert record.fields == {"sex": "male"}


def test_defaults_alternatives_constants_and_empty_values() -> None:
    mapping = _mapping({
        "age": {"path": "age", "transforms": "int", "default": None},
        "mesh": {"path": "terms", "transforms": "split:;", "default": []},
        "view": {"path": ["view", "ViewPosition"]},
        "body_part": {"value": "CHEST"},
        "note": "note",
    })
    record = mapping.apply({"id": "7", "age": "", "terms": " ", "ViewPosition": "PA", "note": "text"}, "rec")
    assert record.fields == {"age": None, "mesh": [], "view": "PA", "body_part": "CHEST", "note": "text"}


def test_required_missing_gives_a_problem_naming_file_record_and_field() -> None:
    mapping = load_mapping(DATA / "hospital_reports_nested.yaml")
    problem = mapping.apply({"accession": "A1", "report": {"sections": []}}, "export.jsonl, line 3")
    assert isinstance(problem, Problem) and not problem.skipped
    assert problem.origin == "export.jsonl, line 3 (id A1)"
    assert problem.field == "impression"
    assert "required value missing" in problem.reason
    assert "hospital_reports_nested.yaml" in problem.fix


def test_failing_transform_gives_a_problem_and_the_rest_goes_on() -> None:
    mapping = _mapping({"age": {"path": "age", "transforms": "int"}})
    rows = enumerate(["5", "forty-two", "7"])
    results = [mapping.apply({"id": str(n), "age": age}, f"rows.csv, line {n}") for n, age in rows]
    assert [type(item).__name__ for item in results] == ["SourceRecord", "Problem", "SourceRecord"]
    assert results[1].field == "age" and "'int' failed on the value (str, 9 characters" in results[1].reason
    assert "forty-two" not in str(results[1]), "a problem locates the value, it never copies it (PHI)"
    assert results[1].origin == "rows.csv, line 1 (id 1)"


@pytest.mark.parametrize(("fields", "message"), [
    ({"year": {"path": "date", "transforms": "date:%Y | intt"}}, "field 'year': unknown transform 'intt'"),
    ({"year": {"path": "date", "transforms": "date"}}, "field 'year': transform 'date' needs an argument"),
    ({"year": {"path": "date", "transforms": "trim:x"}}, "field 'year': transform 'trim' takes no argument"),
    ({"year": {"path": "date", "transforms": "regex:("}}, "field 'year': transform 'regex:('"),
    ({"year": {"path": "a[x]"}}, "field 'year': path 'a[x]'"),
    ({"year": {"path": "date", "requried": True}}, "field 'year': unknown key(s) requried"),
    ({"year": {"path": "date", "value": 1}}, "field 'year': give exactly one of path, value or zip"),
    ({"year": {"path": "d", "each": {"x": {"path": "y", "transforms": "bogus"}}}}, "field 'year.x': unknown"),
])
def test_bad_mapping_files_fail_at_load_naming_file_and_field(tmp_path: Path, fields: dict, message: str) -> None:
    import yaml

    path = tmp_path / "bad_mapping.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "kind": "case", "source": "s", "id": "id", "fields": fields}))
    with pytest.raises(MappingError) as raised:
        load_mapping(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nkind: image\nsource: s\nid: id\nfields: {a: b}\n", "'image' is not one of article, report, case"),
    ("name: x\nkind: case\nsource: s\nfields: {a: b}\n", "missing key 'id'"),
    ("name: x\nkind: case\nsource: '{site}'\nid: id\nfields: {a: b}\n", "only {folder} and {stem}"),
    ("name: x\nkind: case\nsource: s\nid: id\nfields: {a: b}\nreader: {recrd: X}\n", "unknown key(s) recrd"),
    ("name: [unclosed\n", "cannot read the mapping file"),
])
def test_bad_top_level_is_reported_at_load(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as raised:
        load_mapping(path)
    assert message in str(raised.value) and "top.yaml" in str(raised.value)


def test_json_mapping_files_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"name": "j", "kind": "article", "source": "s", "id": "pmid", "fields": {"title": "t"}}')
    assert load_mapping(path).apply({"pmid": 1, "t": "T"}, "r").fields == {"title": "T"}
    with pytest.raises(MappingError, match="no built-in mapping of that name"):
        load_mapping("no_such_mapping")


def test_every_builtin_mapping_loads_by_name() -> None:
    names = builtin_names()
    assert {"pubmed_medline", "pubtator", "pubmedqa", "iu_openi_xml", "iu_reports_csv", "covid_metadata",
            "case_notes", "hospital_reports_example"} <= set(names)
    for name in names:
        assert load_mapping(name).name


def test_depth_and_weights_grow_with_path_specificity() -> None:
    medline = load_mapping("pubmed_medline")
    assert medline.depth("mesh") == 4  # MedlineCitation.MeshHeadingList.MeshHeading[*].DescriptorName(.#text)
    assert medline.depth("journal") == 4
    assert medline.depth("year") == 6
    assert medline.depth("sections") == 5  # MedlineCitation.Article.Abstract.AbstractText + @Label
    weights = medline.weights()
    assert weights["mesh"] == pytest.approx(1 + 0.25 * 3)
    assert weights["year"] > weights["mesh"]
    csv = load_mapping("iu_reports_csv")
    assert csv.depth("findings") == 1 and csv.weights()["findings"] == 1.0
    covid = load_mapping("covid_metadata")
    assert covid.depth("body_part") == 0 and covid.weights()["body_part"] == 1.0
    with pytest.raises(KeyError):
        covid.depth("nope")


def test_hospital_example_mapping_end_to_end() -> None:
    items = list(load_reports([DATA / "hospital_reports_example.csv"], mapping="hospital_reports_example"))
    records = {item.source_id: item for item in items if isinstance(item, SourceRecord)}
    problems = [item for item in items if isinstance(item, Problem)]
    assert set(records) == {"ACC-1001", "ACC-1002"}
    first = records["ACC-1001"]
    assert first.source == "hospital-example" and first.kind == "report"
    assert first.fields == {
        "indication": "Cough and fever for 3 days.",
        "comparison": None,  # "None" in the export: null_if
        "findings": "Patchy consolidation in the right lower lobe. No pleural effusion.",
        "impression": "Right lower lobe pneumonia.",
        "mesh": ["Pneumonia", "Consolidation/lung/base/right"],
        "image_ids": ["1.2.826.0.1.3680043.10.1.1", "1.2.826.0.1.3680043.10.1.2"],
        "year": 2021,
    }
    assert records["ACC-1002"].fields["indication"] is None and records["ACC-1002"].fields["year"] == 2021
    assert [(problem.field, problem.origin.rsplit(",", 1)[-1].strip()) for problem in problems] == [
        ("findings or impression", "line 4 (id ACC-1003)"),  # an empty report
        ("year", "line 5 (id ACC-1004)"),  # "not a date"
        ("id", "line 6"),  # no accession number
    ]


def test_nested_json_export_mapped_without_code() -> None:
    items = list(load_reports([DATA / "hospital_reports_nested.jsonl"], mapping=DATA / "hospital_reports_nested.yaml"))
    records = [item for item in items if isinstance(item, SourceRecord)]
    assert [record.source_id for record in records] == ["R-88", "R-89"]
    assert records[0].fields == {
        "indication": "Fever.",
        "findings": "Left basilar opacity.",
        "impression": "Left lower lobe pneumonia.",
        "mesh": ["Pneumonia"],
        "image_ids": ["img-1", "img-2"],
        "year": 2023,
    }
    assert records[1].fields["image_ids"] == ["img-3"]  # one image: a dict, not a list
    problems = [item for item in items if isinstance(item, Problem)]
    assert [(problem.field, "line 3" in problem.origin) for problem in problems] == [("impression", True)]
