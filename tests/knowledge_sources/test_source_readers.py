"""Readers on bad and unusual input: each problem is reported with its file and record, the rest goes on."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.readers import ReaderOptions, detect_format, read, walk
from knowledge_sources.records import Problem, SourceRecord
from knowledge_sources.reports import load_reports

DATA = Path(__file__).parent / "data"
PUBTATOR = "1|t|First title.\n1|a|First abstract.\n1\t0\t5\tFirst\tDisease\tD000001\n\n" \
           "2|t|Second title.\n2|a|Second abstract.\n"


def _kinds(items: list) -> list[str]:
    return [type(item).__name__ for item in items]


def test_detect_format_by_name() -> None:
    assert detect_format("a.XML") == "xml"
    assert detect_format("pubmed25n0001.xml.gz") == "xml"
    assert detect_format("NLMCXR_reports.tgz") == "tar"
    assert detect_format("x.tar.gz") == "tar"
    assert detect_format("rows.tsv.gz") == "csv"
    assert detect_format("CDR_TestSet.PubTator.txt") == "pubtator"
    assert detect_format("image.png") is None


def test_truncated_gzip_yields_the_records_before_and_a_problem(tmp_path: Path, data_dir: Path) -> None:
    whole = gzip.compress((data_dir / "pubmed" / "bc5cdr" / "CDR_TestSet.PubTator.txt").read_bytes())
    cut = tmp_path / "bc5cdr" / "CDR_TestSet.PubTator.txt.gz"
    cut.parent.mkdir()
    cut.write_bytes(whole[: len(whole) // 2])
    items = list(load_pubmed([cut]))
    records = [item for item in items if isinstance(item, SourceRecord)]
    assert 100 < len(records) < 500  # the first half of the 500 abstracts, then the problem
    assert records[0].source_id == "8701013" and records[0].source == "pubtator-bc5cdr"
    assert _kinds(items[len(records):]) == ["Problem"]
    assert items[-1].origin == str(cut) and "could not be read to the end" in items[-1].reason


def test_malformed_json_is_reported_and_the_next_file_is_read(tmp_path: Path) -> None:
    bad = tmp_path / "a_bad.json"
    bad.write_text('{"1": {"CONTEXTS": ["x"], "LABELS": ["A"]},\n "2": {oops}}')
    good = tmp_path / "b_good.json"
    good.write_text('{"3": {"CONTEXTS": ["Text."], "LABELS": ["RESULTS"], "MESHES": [], "YEAR": "2001"}}')
    items = list(load_pubmed([tmp_path]))
    assert _kinds(items) == ["Problem", "SourceRecord"]
    assert items[0].origin == f"{bad}, line 2, column 8" and "malformed JSON" in items[0].reason
    assert items[1].source_id == "3" and items[1].fields["year"] == 2001


def test_json_lines_bad_line_reported_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1}\nnot json\n\n[1, 2]\n{"id": 4}\n')
    items = list(read(path))
    assert _kinds(items) == ["tuple", "Problem", "Problem", "tuple"]
    assert items[1].origin == f"{path}, line 2"
    assert items[2].reason == "expected a JSON object, found list"
    assert items[3] == (f"{path}, line 5", {"id": 4})


def test_csv_bad_rows_reported_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(b"uid,MeSH,findings,impression\n"
                     b"1,normal,Clear lungs.,Normal.\n"
                     b"2,normal,Caf\xe9 lungs.,Normal.\n"  # a latin-1 byte in a UTF-8 file
                     b"3,normal,Too,many,values\n"
                     b"4,normal,,\n"  # no findings, no impression: empty report
                     b",normal,Clear.,Fine.\n"  # no id
                     b"6,normal,Clear.,Fine.\n")
    items = list(load_reports([path]))
    assert [item.source_id for item in items if isinstance(item, SourceRecord)] == ["CXR1", "CXR6"]
    problems = [item for item in items if isinstance(item, Problem)]
    assert [(problem.origin.removeprefix(f"{path}, "), problem.field) for problem in problems] == [
        ("line 3", "findings"),
        ("line 4", None),
        ("line 5 (id CXR4)", "findings or impression"),
        ("line 6", "id"),
    ]
    assert "not valid utf-8 text" in problems[0].reason and "UTF-8" in problems[0].fix
    assert "5 values for 4 columns" in problems[1].reason


def test_csv_without_the_required_columns_is_one_problem(data_dir: Path) -> None:
    projections = data_dir / "reports" / "iu-openi" / "indiana_projections.csv"
    items = list(load_reports([projections]))
    assert len(items) == 1 and isinstance(items[0], Problem)
    assert items[0].reason == "the header has no column findings or impression"
    assert "mapping=" in items[0].fix


def test_malformed_xml_keeps_the_records_before(tmp_path: Path) -> None:
    text = (DATA / "pubmed_sample.xml").read_text()
    cut = text.index("<PMID Version=\"1\">20011163")
    path = tmp_path / "broken.xml"
    path.write_text(text[:cut] + "<PMID>unclosed</PMD>" + text[cut:])
    items = list(load_pubmed([path]))
    assert [item.source_id for item in items if isinstance(item, SourceRecord)] == ["19504993", "27928673"]
    assert isinstance(items[-1], Problem) and "malformed XML" in items[-1].reason
    assert items[-1].origin.startswith(f"{path}, line ")


def test_xml_with_another_root_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "other.xml"
    path.write_text("<eCitation><uId id='CXR1'/></eCitation>")
    items = list(load_pubmed([path]))
    assert len(items) == 1 and items[0].reason == "root element is <eCitation>, expected <PubmedArticleSet>"


def test_xml_inline_markup_is_flattened_and_namespaces_dropped(tmp_path: Path) -> None:
    path = tmp_path / "efetch.xml"
    path.write_text(
        '<PubmedArticleSet xmlns:m="http://example.org/m"><PubmedArticle><MedlineCitation>'
        '<PMID Version="1">42</PMID><Article><ArticleTitle>Effect of <i>Drug X</i> on H<sub>2</sub>O</ArticleTitle>'
        '<Abstract><AbstractText>Improvement <b>not</b> observed (p<sup>2</sup>).</AbstractText></Abstract>'
        "</Article><m:Extra>kept</m:Extra></MedlineCitation></PubmedArticle>"
        "<PubmedBookArticle><BookDocument><PMID>7</PMID></BookDocument></PubmedBookArticle></PubmedArticleSet>")
    article, book = load_pubmed([path])
    assert article.fields["title"] == "Effect of Drug X on H2O"
    assert article.fields["sections"] == [{"label": "", "text": "Improvement not observed (p2)."}]
    assert article.fields["mesh"] == [] and article.fields["year"] is None
    assert book.skipped and "PubmedBookArticle" in book.reason and book.origin == f"{path}, record 2"
    raw = next(read(path, ReaderOptions(record="MedlineCitation")))[1]
    assert raw["Extra"] == "kept"


def test_pubtator_bad_record_reported_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text(PUBTATOR.replace("1\t0\t5\tFirst", "1\tzero\t5\tFirst") + "\n3|t|Third.\n3|a|Third abstract.\n")
    items = list(load_pubmed([path]))
    assert _kinds(items) == ["Problem", "SourceRecord", "SourceRecord"]
    assert items[0].origin == f"{path}, record 1 (line 3)"
    assert items[1].source == "pubtator-" + tmp_path.name.lower().replace("_", "-")
    raw = list(read(tmp_path / "corpus.txt"))[1][1]
    assert raw == {"pmid": "2", "title": "Second title.", "abstract": "Second abstract.", "annotations": [],
                   "relations": []}


def test_pubtator_annotations_and_relations_are_kept_in_the_raw_record(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(PUBTATOR.replace("\n\n2|", "\n1\tCID\tD000001\tD000002\n\n2|"))
    raw = next(read(path))[1]
    assert raw["annotations"] == [{"start": 0, "end": 5, "mention": "First", "type": "Disease", "id": "D000001"}]
    assert raw["relations"] == [{"type": "CID", "ids": ["D000001", "D000002"]}]


def test_text_files_that_are_not_pubtator(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("About this corpus.\n")
    (tmp_path / "corpus.txt").write_text(PUBTATOR)
    walked = list(load_pubmed([tmp_path]))
    assert [item.source_id for item in walked] == ["1", "2"]  # README.txt is not read from a folder
    given = list(load_pubmed([tmp_path / "README.txt"]))  # named directly, it is reported
    assert len(given) == 1 and given[0].reason.startswith("not a PubTator file")


def test_missing_paths_unknown_types_and_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.docx").write_bytes(b"PK")
    items = list(load_reports([tmp_path / "nope.xml", tmp_path / "empty", tmp_path / "notes.docx"]))
    assert [item.reason for item in items] == [
        "no such file or folder",
        "no file this loader reads was found in the folder",
        "no built-in mapping for this file type (unknown)",
    ]


def test_walk_is_recursive_sorted_and_skips_hidden_files(tmp_path: Path) -> None:
    for name in ("b/2.xml", "a/1.xml", "a/.hidden.xml", ".git/x.xml", "c.xml", "a/z.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<x/>")
    found = [path.relative_to(tmp_path).as_posix() for path in walk([tmp_path], lambda p: p.suffix == ".xml")]
    assert found == ["a/1.xml", "b/2.xml", "c.xml"]


def test_tar_members_are_read_as_a_stream(tmp_path: Path) -> None:
    archive = tmp_path / "reports.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in (("r/2.xml", "<eCitation><uId id='CXR2'/>" + _sections("Clear.") + "</eCitation>"),
                           ("r/notes.docx", "ignored"),
                           ("r/1.xml.gz", gzip.compress(("<eCitation><uId id='CXR1'/>" + _sections("Normal.")
                                                         + "</eCitation>").encode()))):
            payload = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    items = list(load_reports([archive]))
    assert [(item.source_id, item.fields["impression"]) for item in items] == [("CXR2", "Clear."), ("CXR1", "Normal.")]
    assert items[1].origin == f"{archive}:r/1.xml.gz, record 1 (id CXR1)"


def _sections(impression: str) -> str:
    return ("<MedlineCitation><Article><Abstract><AbstractText Label='IMPRESSION'>"
            f"{impression}</AbstractText></Abstract></Article></MedlineCitation>")
