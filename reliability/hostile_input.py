"""Hostile and malformed input, per parser (issue 18): property-based fuzzing of everything that reads outside text.

Each parser gets a hypothesis strategy of hostile inputs and a check that feeds one input through the public entry
point: MEDLINE XML through ``load_pubmed``, report CSVs through ``load_reports``, mapping files through
``parse_mapping`` / ``load_mapping`` (and a mapping that loads is then used on sample files), questions and notes
through ``QueryPreparer``. The property is the same everywhere: the input gives records or a clear error (a
``Problem`` naming the file, a ``MappingError`` or ``ValueError`` naming the input), never another exception and
never a hang (hypothesis's ``deadline``). ``run`` counts the cases tried per parser and the crashes left; the tests
in ``tests/knowledge_sources/test_hostile_input.py`` and ``tests/pipeline/test_request_limits.py`` run the same
checks on fewer cases.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gzip
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowledge_sources.mapping import MAPPINGS_DIR, MappingError, load_mapping, parse_mapping
from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.records import Problem, SourceRecord
from knowledge_sources.reports import load_reports
from medrag.config import Config, LimitsConfig
from medrag.deid.dicom import DicomDeidentifier
from medrag.pipeline.prepare import QueryPreparer, RequestRejected
from reliability import register_suite

FUZZ_LIMITS = LimitsConfig(max_file_mb=1, max_field_chars=20_000, max_xml_depth=64, max_query_chars=20_000)
"""Small limits, so that generated bombs and huge values reach them in milliseconds, not minutes."""
DEADLINE_MS = 5_000
"""Longest one case may take; past it hypothesis reports the case as a hang."""
QUICK_EXAMPLES = 30
FULL_EXAMPLES = 2_000

MEDLINE = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" \
"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">
<PubmedArticleSet>
  <PubmedArticle>
    <MedlineCitation Status="MEDLINE" Owner="NLM">
      <PMID Version="1">19504993</PMID>
      <Article PubModel="Print">
        <Journal><JournalIssue><PubDate><Year>2009</Year></PubDate></JournalIssue><Title>J</Title></Journal>
        <ArticleTitle>Is <i>Fournier's</i> gangrene still dangerous?</ArticleTitle>
        <Abstract>
          <AbstractText Label="RESULTS" NlmCategory="RESULTS">Of the 14 patients, 5 died and 9 survived.</AbstractText>
        </Abstract>
      </Article>
      <MeshHeadingList><MeshHeading><DescriptorName UI="D000328">Adult</DescriptorName></MeshHeading></MeshHeadingList>
    </MedlineCitation>
  </PubmedArticle>
  <PubmedArticle>
    <MedlineCitation><PMID Version="1">2</PMID><Article><ArticleTitle>Second.</ArticleTitle></Article>
    </MedlineCitation>
  </PubmedArticle>
</PubmedArticleSet>
"""
"""A valid MEDLINE file of two articles, the seed that truncations and splices start from."""

REPORTS_CSV = "uid,MeSH,indication,findings,impression\n1,Cardiomegaly;Effusion,cough,Heart is large.,Cardiomegaly.\n"
"""A valid IU reports CSV (the ``iu_reports_csv`` mapping), the seed of the CSV cases."""

MARKUP = "<>/&;!?[]\"'=#% \n\tabcPMID"
"""The characters that break XML when spliced in."""


# --- strategies ------------------------------------------------------------------------------------------------------

def entity_bomb(depth: int, width: int) -> bytes:
    """The billion-laughs document: each entity expands to ``width`` copies of the one before."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{level} "{f"&lol{level - 1};" * width}">' for level in range(1, depth + 1)]
    return (f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [{"".join(entities)}]>'
            f"<PubmedArticleSet><PubmedArticle>&lol{depth};</PubmedArticle></PubmedArticleSet>").encode()


_EXTERNAL = [
    b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<PubmedArticleSet><PubmedArticle>&xxe;</PubmedArticle></PubmedArticleSet>",
    b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>'
    b"<PubmedArticleSet/>",
    b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet SYSTEM "http://127.0.0.1:9/evil.dtd">'
    b"<PubmedArticleSet><PubmedArticle>&undeclared;</PubmedArticle></PubmedArticleSet>",
    b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY e SYSTEM "x" NDATA png>]><PubmedArticleSet/>',
]
"""External general and parameter entities, an external DTD, an unparsed entity."""


@st.composite
def _splice(draw: st.DrawFn, seed: bytes, alphabet: str) -> bytes:
    """The seed with one slice replaced by a random run of characters that matter to its syntax."""
    start = draw(st.integers(0, len(seed)))
    end = draw(st.integers(start, min(len(seed), start + 40)))
    return seed[:start] + draw(st.text(alphabet, max_size=20)).encode() + seed[end:]


def in_a_record(body: bytes) -> bytes:
    """``body`` inside one PubmedArticle of a PubmedArticleSet: where the bombs of size and depth go off."""
    return b'<?xml version="1.0"?><PubmedArticleSet><PubmedArticle>' + body + b"</PubmedArticle></PubmedArticleSet>"


xml_files = st.tuples(st.one_of(
    st.binary(max_size=3_000),
    st.integers(0, len(MEDLINE)).map(lambda cut: MEDLINE[:cut]),
    _splice(MEDLINE, MARKUP),
    st.builds(entity_bomb, st.integers(1, 9), st.integers(1, 10)),
    st.sampled_from(_EXTERNAL),
    st.integers(0, 3 * FUZZ_LIMITS.max_field_chars).map(lambda size: in_a_record(b'<MedlineCitation a="' + b"x" * size
                                                                              + b'"/>')),
    st.integers(1, 3 * FUZZ_LIMITS.max_xml_depth).map(lambda depth: in_a_record(b"<a>" * depth + b"</a>" * depth)),
    st.integers(1, 3).map(lambda megabytes: in_a_record(b"<MedlineCitation>" + b" " * megabytes * 1024 * 1024
                                                     + b"</MedlineCitation>")),
), st.booleans())
"""(content, gzipped): random bytes, truncated and spliced MEDLINE, entity bombs, external entities, huge
attributes, deep nesting, and files over the size limit (gzipped: a decompression bomb)."""

_CELL = st.one_of(
    st.text(max_size=30),
    st.text("\x00\r\n\",;\t", max_size=10),
    st.integers(0, 3 * FUZZ_LIMITS.max_field_chars).map(lambda size: "y" * size),
    st.integers(0, 3 * FUZZ_LIMITS.max_field_chars).map(lambda size: '"' + "z" * size),
)
_COLUMNS = st.lists(st.sampled_from(["uid", "MeSH", "findings", "impression", "indication", "extra"]) | _CELL,
                    min_size=0, max_size=6)


@st.composite
def _table(draw: st.DrawFn) -> bytes:
    """A CSV of random columns and cells, in a random encoding (utf-16 and latin-1 where utf-8 is expected)."""
    columns = draw(_COLUMNS)
    rows = draw(st.lists(st.lists(_CELL, min_size=0, max_size=len(columns) + 2), max_size=5))
    text = "\n".join(",".join(row) for row in [columns, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-32"]))
    return text.encode(encoding, errors="replace")


csv_files = st.tuples(st.one_of(
    _table(),
    st.binary(max_size=2_000),
    st.binary(min_size=1, max_size=50).map(lambda junk: REPORTS_CSV.encode() + junk),
    _splice(REPORTS_CSV.encode(), "\x00\r\n\",;\txé\ud800".encode("utf-8", "surrogatepass").decode("latin-1")),
), st.booleans())
"""(content, gzipped): random tables in wrong encodings, missing columns, long fields, NUL bytes, invalid UTF-8."""

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@functools.cache
def _builtin_mappings() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(MAPPINGS_DIR.glob("*.yaml")))


_KEYS = ("name", "kind", "source", "reader", "id", "image", "fields", "skip", "require_any", "record", "root",
         "text", "key", "delimiter", "encoding", "path", "value", "transforms", "default", "required", "each", "zip",
         "folder", "in", "not_in", "reason")
"""Every key a mapping file may hold, at any level: a mutation may add one where the built-ins have none."""
_VALUES = _JSONISH | st.sampled_from(["", "{folder", "{0}", "x[", "a|b:", "map:F=", "map:x.yaml", "date:", "regex:(",
                                     "no-such-codec", "utf-16", ";;", "\t", "int", "a.b[*].c", "[@x=1]"])


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    """A built-in mapping with one value, at any depth, replaced or added as a random structure: close enough to
    valid that the mistake is found deep in the loader (or when the mapping reads a file), not at the first check."""
    data = copy.deepcopy(draw(st.sampled_from(_builtin_mappings())))
    node = data
    while isinstance(node, dict):
        key = draw(st.sampled_from(sorted(node, key=str)) | st.sampled_from(_KEYS)) if node else draw(
            st.sampled_from(_KEYS))
        if not isinstance(node.get(key), dict) or draw(st.booleans()):
            node[key] = draw(_VALUES)
            break
        node = node[key]
    return data


_YAML = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["a: &a [*a]\n", "a: &a {b: *a}\nname: *a\nkind: report\nsource: x\nid: *a\nfields: *a\n",
                     "!!python/object/apply:os.system ['true']\n", "- " * 500 + "x\n", "{" * 500]),
)
mappings = st.one_of(_JSONISH, _mutated(), _YAML)
"""Parsed structures (random, or a built-in mapping mutated) and YAML texts (anchors, recursion, tags, nesting)."""

_SCRIPTS = st.sampled_from(["مرحبا بالعالم", "שלום", "肺炎の所見", "胸部X光片", "🫁🩻💉", "\u202e\u2066abc\u2069",
                            "e\u0301\u0301\u0301", "\ufeff\u200b\u00ad"])
_TEXT = st.one_of(
    st.none(),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=200),
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), max_size=50),
    st.lists(_SCRIPTS, max_size=10).map(" ".join),
    st.integers(0, 100_000).map(lambda size: "pneumonia " * (size // 10)),
)
requests = st.tuples(_TEXT, _TEXT)
"""(question, note): empty, None, 100k characters, control characters, RTL/CJK/emoji, lone surrogates."""


# --- checks ----------------------------------------------------------------------------------------------------------

class UnclearOutcome(AssertionError):
    """An input gave neither records nor a clear error: the finding the fuzzers look for."""


def _file(folder: Path, name: str, content: bytes, gzipped: bool) -> Path:
    path = folder / (f"{name}.gz" if gzipped else name)
    path.write_bytes(gzip.compress(content, compresslevel=1) if gzipped else content)
    return path


def _records_or_problems(items: Iterable[Any], path: Path) -> None:
    for item in items:
        if not isinstance(item, SourceRecord | Problem):
            raise UnclearOutcome(f"{path.name}: the loader yielded a {type(item).__name__}")
        if isinstance(item, Problem) and not item.origin.startswith(str(path)):
            raise UnclearOutcome(f"{path.name}: a problem that does not name the file: {item}")


def check_pubmed_xml(case: tuple[bytes, bool], folder: Path, limits: LimitsConfig = FUZZ_LIMITS) -> None:
    """One MEDLINE XML file through ``load_pubmed``: records and ``Problem``s naming the file, nothing raised."""
    content, gzipped = case
    path = _file(folder, "fuzz.xml", content, gzipped)
    _records_or_problems(load_pubmed([path], limits=limits), path)


def check_reports_csv(case: tuple[bytes, bool], folder: Path, limits: LimitsConfig = FUZZ_LIMITS) -> None:
    """One report CSV through ``load_reports``: records and ``Problem``s naming the file, nothing raised."""
    content, gzipped = case
    path = _file(folder, "fuzz.csv", content, gzipped)
    _records_or_problems(load_reports([path], limits=limits), path)


def check_mapping(data: Any, folder: Path, limits: LimitsConfig = FUZZ_LIMITS) -> None:
    """A mapping from a structure (or YAML text, through ``load_mapping``) loads or raises ``MappingError`` naming
    the file; one that loads then reads sample XML, CSV and JSON files into records and problems only."""
    origin = folder / "fuzz_mapping.yaml"
    try:
        if isinstance(data, str):
            origin.write_text(data, encoding="utf-8", errors="surrogatepass")
            mapping = load_mapping(origin)
        else:
            mapping = parse_mapping(data, str(origin), folder)
    except MappingError as error:
        if str(origin) not in str(error):
            raise UnclearOutcome(f"a MappingError that does not name the mapping file: {error}") from None
        return
    samples = {"sample.xml": MEDLINE, "sample.csv": REPORTS_CSV.encode(),
               "sample.json": b'[{"uid": "1", "findings": "Clear."}]', "sample.jsonl": b'{"uid": 1}\n[1]\n'}
    for name, content in samples.items():
        path = _file(folder, name, content, gzipped=False)
        _records_or_problems(mapping.read(path, limits=limits), path)


def check_request(case: tuple[str | None, str | None], prepare: QueryPreparer) -> None:
    """A question and a note through the request preparation: a ``QueryInput`` of valid text, or a
    ``ValueError`` naming the question, the note or the empty request."""
    question, note = case
    try:
        prepared = prepare(question=question, note=note)
    except RequestRejected as error:
        if error.field not in str(error):
            raise UnclearOutcome(f"a rejection that does not name the {error.field}: {error}") from None
        return
    except ValueError as error:
        if "empty query" not in str(error):
            raise UnclearOutcome(f"an unexplained ValueError: {error}") from None
        return
    for text in (prepared.question, prepared.note):
        text.encode("utf-8")  # a UnicodeEncodeError here: invalid text reached the pipeline


# --- the suite -------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Fuzzer:
    """One parser's hostile inputs and the check each must pass."""

    parser: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]


def fuzzers(folder: Path, prepare: QueryPreparer) -> list[Fuzzer]:
    """The parsers under test, writing their files in ``folder``."""
    return [
        Fuzzer("PubMed XML", xml_files, lambda case: check_pubmed_xml(case, folder)),
        Fuzzer("report CSV", csv_files, lambda case: check_reports_csv(case, folder)),
        Fuzzer("mapping file", mappings, lambda data: check_mapping(data, folder)),
        Fuzzer("question and note", requests, lambda case: check_request(case, prepare)),
    ]


def fuzz_settings(examples: int) -> settings:
    """``examples`` cases, each under ``DEADLINE_MS``; no example database (nothing written in the work tree)."""
    return settings(max_examples=examples, deadline=DEADLINE_MS, database=None,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=True)


def fuzz(fuzzer: Fuzzer, examples: int) -> tuple[int, list[str]]:
    """Cases tried and the crashes found (each the exception, then hypothesis's minimal falsifying example)."""
    tried = 0

    @fuzz_settings(examples)
    @given(fuzzer.strategy)
    def holds(case: Any) -> None:
        nonlocal tried
        tried += 1
        fuzzer.check(case)

    try:
        holds()
    except Exception as error:  # any exception is a finding to report, not to propagate
        found = list(error.exceptions) if isinstance(error, ExceptionGroup) else [error]
        return tried, [f"{type(crash).__name__}: {crash} | {' '.join(getattr(crash, '__notes__', []))[:500]}"
                       for crash in found]
    return tried, []


CRASHES_FIXED = [
    "PubMed XML: elements nested about 1,000 deep raised RecursionError out of the reader (ElementTree.tostring in "
    "the record converter); now a Problem past max_xml_depth (64)",
    "PubMed XML: entity declarations were expanded by expat up to its amplification guard (a 500-byte billion-laughs "
    "file gave 300,000 characters) and larger bombs were reported as 'malformed XML'; now defusedxml refuses every "
    "entity declaration and external entity with a Problem that says why",
    "JSON: an integer of more than 4,300 digits (ValueError) and arrays nested 100,000 deep (RecursionError) escaped "
    "the reader; now a Problem naming the file or line",
    "CSV: a header cell longer than the csv module's field limit raised csv.Error out of the reader; now a Problem, "
    "with the field limit set from max_field_chars",
    "mapping file: require_any as a number or a list holding null raised TypeError while loading; reader settings of "
    "the wrong type (an unknown encoding, a two-character delimiter, a number as the record element) failed only "
    "when a file was read (LookupError, TypeError); now each is a MappingError naming the file and the key",
    "all files: a gzip bomb or a huge file was read to the end (JSON whole into memory); now stopped at max_file_mb "
    "after decompression with a Problem",
    "question and note: no length limit (100,000 characters went to the scrubber and the encoders) and lone "
    "surrogates reached the pipeline as text no UTF-8 writer can encode; now RequestRejected naming the field",
]
"""What the fuzzers found in this code base, each fixed in the library (issue 18)."""


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Fuzz every parser (``QUICK_EXAMPLES`` cases each when quick, ``FULL_EXAMPLES`` otherwise)."""
    examples = QUICK_EXAMPLES if quick else FULL_EXAMPLES
    prepare = QueryPreparer(DicomDeidentifier(b"hostile-input-fuzz-key"), limits=config.limits)
    tried: dict[str, int] = {}
    crashes: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="medrag-fuzz-") as folder:
        for fuzzer in fuzzers(Path(folder), prepare):
            tried[fuzzer.parser], found = fuzz(fuzzer, examples)
            if found:
                crashes[fuzzer.parser] = found
    left = sum(len(found) for found in crashes.values())
    return {"headline": {"cases tried per parser": tried, "crashes left": left},
            "passed": left == 0, "crashes": crashes, "crashes_found_and_fixed": CRASHES_FIXED}


register_suite("hostile_input", run)
