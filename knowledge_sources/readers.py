"""Readers: turn source files into plain dicts, one per record, without holding a whole file in memory.

Every reader yields ``(origin, raw)`` pairs, where ``origin`` names the file and the record and
``raw`` is a plain dict (a CSV row, a JSON object, an XML record converted by xmltodict, a PubTator
block), or a ``Problem`` for what could not be read; the rest of the file goes on where the format
allows. The field mapping (``mapping.py``) then turns each raw dict into a ``SourceRecord``.

Gzip (``.gz``) is read transparently; tar archives (``.tar``, ``.tgz``, ``.tar.gz``) member by
member as a stream, without extracting to disk; folders are walked recursively in sorted order.

Files come from outside (issue 18, hostile input), so reading is bounded by ``medrag.config.LimitsConfig``: the
bytes of a file after decompression, the characters of one text value, the nesting of XML; XML is parsed with
defusedxml, which refuses entity declarations (billion laughs) and external entities. Each refusal is a
``Problem`` naming the file and the setting to raise, and the next file is read.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import json
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import xmltodict
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from knowledge_sources.records import Problem
from medrag.config import LimitsConfig

Raw = tuple[str, dict[str, Any]]
"""One record as read: where it came from, and its content as a plain dict."""

_FORMATS_BY_SUFFIX = {
    ".xml": "xml",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "pubtator",
    ".pubtator": "pubtator",
}
_TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz")
_UNREADABLE = (OSError, EOFError, zlib.error, UnicodeDecodeError, tarfile.TarError)
"""Errors that end the reading of a file (truncated gzip, bad encoding, broken archive)."""


class FileTooLarge(Exception):
    """A file's bytes, after decompression, passed ``LimitsConfig.max_file_mb``; ends the reading of that file."""


class _Capped(io.RawIOBase):
    """A byte stream that raises ``FileTooLarge`` past ``limit`` bytes: a gzip bomb or a runaway export stops at
    the limit instead of filling memory or taking hours (counted after decompression, where the size is real)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__()
        self._stream, self._limit, self._read = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._limit + 1 - self._read))
        self._read += len(data)
        if self._read > self._limit:
            raise FileTooLarge(self._limit)
        buffer[:len(data)] = data
        return len(data)


def _too_large(name: str, limits: LimitsConfig) -> Problem:
    return Problem(name, f"the file is larger than {limits.max_file_mb} MB (after decompression); "
                   "the records before this point were read, the rest was not",
                   fix=f"split the file, or raise MEDRAG_LIMITS_MAX_FILE_MB (now {limits.max_file_mb}) "
                   "if the file is genuine")


def _long_value(raw: Any, limit: int) -> tuple[str, int] | None:
    """The path and length of the first text value (or key) longer than ``limit`` characters in a raw record.

    Walked with a stack, not recursion, so a deeply nested JSON record cannot exhaust the interpreter's stack."""
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and len(value) > limit:
            return path or "(the record)", len(value)
        if isinstance(value, dict):
            for key, item in value.items():
                if len(str(key)) > limit:
                    return f"{path}.(a key)".lstrip("."), len(str(key))
                stack.append((f"{path}.{key}".lstrip("."), item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def _checked(items: Iterator[Raw | Problem], limits: LimitsConfig) -> Iterator[Raw | Problem]:
    """Each record, or a ``Problem`` when one of its text values is longer than ``max_field_chars``."""
    for item in items:
        if isinstance(item, Problem) or (found := _long_value(item[1], limits.max_field_chars)) is None:
            yield item
            continue
        field, length = found
        yield Problem(item[0], f"a text value of {length} characters, over the limit of {limits.max_field_chars}",
                      field=field[:200], fix="check the record (a runaway or hostile value), or raise "
                      f"MEDRAG_LIMITS_MAX_FIELD_CHARS (now {limits.max_field_chars}) if the value is genuine")


@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """How to cut a file into records: set in the ``reader:`` section of a mapping file."""

    record: str | None = None
    """XML: the element that is one record (``PubmedArticle``, ``eCitation``)."""
    root: str | None = None
    """XML: the root element a file must have; another root is reported instead of silently read."""
    skip: dict[str, str] = dataclasses.field(default_factory=dict)
    """XML: elements reported as skipped records, with why (``{text}`` is their text content)."""
    text: frozenset[str] = frozenset()
    """XML: elements whose inline markup (``<i>``, ``<sup>``) is flattened into their text."""
    key: str = "_key"
    """JSON object keyed by id: the name under which each record gets its key."""
    delimiter: str | None = None
    """CSV: the delimiter; default ``,`` (tab for ``.tsv``)."""
    encoding: str = "utf-8"
    columns: tuple[frozenset[str], ...] = ()
    """CSV: column groups of which at least one must be in the header (derived from required fields)."""


def detect_format(name: str) -> str | None:
    """The reader for a file name: ``xml``, ``json``, ``jsonl``, ``csv``, ``pubtator``, ``tar`` or None."""
    lowered = name.lower()
    if lowered.endswith(_TAR_SUFFIXES):
        return "tar"
    return _FORMATS_BY_SUFFIX.get(Path(lowered.removesuffix(".gz")).suffix)


def open_maybe_gzip(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when its name ends in ``.gz``."""
    return gzip.open(path) if path.name.lower().endswith(".gz") else path.open("rb")


def _hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts)


def walk(paths: Iterable[Path | str], accept: Callable[[Path], bool]) -> Iterator[Path | Problem]:
    """Files to read: those given, and those under given folders (sorted, recursive) that ``accept`` takes."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = [file for file in sorted(path.rglob("*"))
                     if file.is_file() and not _hidden(file.relative_to(path)) and accept(file)]
            if not found:
                yield Problem(str(path), "no file this loader reads was found in the folder",
                              fix="check the folder, or name the files directly")
            yield from found
        elif path.is_file():
            yield path
        else:
            yield Problem(str(path), "no such file or folder", fix="check the path")


def read(path: Path, options: ReaderOptions | None = None,
         limits: LimitsConfig | None = None) -> Iterator[Raw | Problem]:
    """Every record of one file (or archive), by the reader its name calls for, within ``limits``."""
    options = options or ReaderOptions()
    limits = limits or LimitsConfig()
    yielded = False
    try:
        with path.open("rb") as stream:
            for item in _read_stream(stream, str(path), options, limits):
                yielded = True
                yield item
    except OSError as error:
        yielded = True
        yield Problem(str(path), f"cannot open the file: {error}", fix="check the path and its permissions")
    if not yielded:
        yield Problem(str(path), "no records found", fix="check that the file and the mapping's reader settings match")


def _read_stream(stream: IO[bytes], name: str, options: ReaderOptions,
                 limits: LimitsConfig) -> Iterator[Raw | Problem]:
    fmt = detect_format(name)
    if fmt is None:
        yield Problem(name, "unknown file type", fix="use .xml, .json, .jsonl, .csv, .tsv, .txt (PubTator), "
                      ".tgz or .tar, optionally gzipped (.gz)")
        return
    if fmt == "tar":
        yield from _read_tar(stream, name, options, limits)
        return
    if name.lower().endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream)
    capped = io.BufferedReader(_Capped(stream, limits.max_file_mb * 1024 * 1024))
    try:
        yield from _checked(_READERS[fmt](capped, name, options, limits), limits)
    except FileTooLarge:
        yield _too_large(name, limits)
    except _UNREADABLE as error:
        yield Problem(name, f"the file could not be read to the end: {error}",
                      fix="re-download or re-export the file; the records before this point were read")


def _read_tar(stream: IO[bytes], name: str, options: ReaderOptions,
              limits: LimitsConfig) -> Iterator[Raw | Problem]:
    """Members in archive order, as a stream: nothing is extracted to disk or listed up front; each member
    is capped on its own, and the archive file by the same limit."""
    try:
        capped = io.BufferedReader(_Capped(stream, limits.max_file_mb * 1024 * 1024))
        with tarfile.open(fileobj=capped, mode="r|*") as archive:
            for member in archive:
                if not member.isfile() or _hidden(Path(member.name)) or detect_format(member.name) in (None, "tar"):
                    continue
                content = archive.extractfile(member)
                if content is not None:
                    yield from _read_stream(content, f"{name}:{member.name}", options, limits)
    except FileTooLarge:
        yield _too_large(name, limits)
    except _UNREADABLE as error:
        yield Problem(name, f"the archive could not be read to the end: {error}",
                      fix="re-download the archive; the members before this point were read")


@contextlib.contextmanager
def _text(stream: IO[bytes], options: ReaderOptions, **kwargs: Any) -> Iterator[io.TextIOWrapper]:
    """A text view of the byte stream, detached on exit: the stream's owner closes it, also when a
    reader generator is abandoned half-way."""
    encoding = "utf-8-sig" if options.encoding.lower().replace("_", "-") == "utf-8" else options.encoding
    wrapper = io.TextIOWrapper(stream, encoding=encoding, **kwargs)
    try:
        yield wrapper
    finally:
        wrapper.detach()


# --- XML -------------------------------------------------------------------------------------------------------------

def _local(tag: str) -> str:
    """A tag without its namespace: ``{http://...}Record`` -> ``Record``."""
    return tag.rpartition("}")[2]


def _xml_to_dict(element: ET.Element, text_tags: frozenset[str]) -> dict[str, Any]:
    """One record element as xmltodict gives it (``@attr``, ``#text``), namespaces dropped, markup flattened."""
    flatten = [node for node in element.iter() if _local(node.tag) in text_tags and len(node)]
    for node in flatten:
        node.text = "".join(node.itertext())
        for child in list(node):
            node.remove(child)
    for node in element.iter():
        node.tag = _local(node.tag)
    content = xmltodict.parse(ET.tostring(element, encoding="unicode"))[element.tag]
    if isinstance(content, dict):
        return content
    return {} if content is None else {"#text": content}


def _read_xml(stream: IO[bytes], name: str, options: ReaderOptions,
              limits: LimitsConfig) -> Iterator[Raw | Problem]:
    """Record elements streamed with defusedxml's iterparse; each is dropped from the tree once converted.

    A DOCTYPE is allowed (MEDLINE files name their DTD), entity declarations and external entities are not."""
    if not options.record:
        yield Problem(name, "no XML record element configured", fix="set reader.record in the mapping file")
        return
    open_elements: list[ET.Element] = []
    count = 0
    try:
        for event, element in iterparse(stream, events=("start", "end")):
            tag = _local(element.tag)
            if event == "start":
                if not open_elements and options.root and tag != options.root:
                    yield Problem(name, f"root element is <{tag}>, expected <{options.root}>",
                                  fix="pass a mapping for this XML layout (mapping=...)")
                    return
                if len(open_elements) >= limits.max_xml_depth:
                    yield Problem(f"{name}, record {count + 1}",
                                  f"elements nest deeper than {limits.max_xml_depth} levels (at <{tag[:100]}>)",
                                  fix=f"check the file; the {count} records before this point were read, the rest "
                                  f"was not; raise MEDRAG_LIMITS_MAX_XML_DEPTH (now {limits.max_xml_depth}) if genuine")
                    return
                open_elements.append(element)
                continue
            open_elements.pop()
            if tag != options.record and tag not in options.skip:
                continue
            count += 1
            origin = f"{name}, record {count}"
            if tag in options.skip:
                text = " ".join(" ".join(element.itertext()).split())
                yield Problem(origin, options.skip[tag].format(text=text[:200]), skipped=True)
            else:
                yield origin, _xml_to_dict(element, options.text)
            if open_elements:
                open_elements[-1].remove(element)
            element.clear()
    except ET.ParseError as error:
        line, column = error.position
        yield Problem(f"{name}, line {line}, column {column}", f"malformed XML: {error}",
                      fix=f"repair the file; the {count} records before this point were read, the rest was not")
    except DefusedXmlException as error:
        yield Problem(name, f"the XML declares entities or refers to external ones ({error}); medrag refuses them: "
                      "entity expansion (billion laughs) can exhaust memory and external entities can read local "
                      "files or the network",
                      fix=f"remove the <!ENTITY> declarations (the internal DTD subset) from the file; the {count} "
                      "records before this point were read, the rest was not")


# --- JSON ------------------------------------------------------------------------------------------------------------

def _json_records(data: Any, key: str) -> Iterator[Any]:
    """A list of records, an object of records keyed by id (the key is kept under ``key``), or one record."""
    if isinstance(data, list):
        yield from data
    elif isinstance(data, dict) and data and all(isinstance(value, dict) for value in data.values()):
        for record_key, value in data.items():
            yield {key: record_key, **value}
    else:
        yield data


def _json_record(origin: str, item: Any) -> Raw | Problem:
    if isinstance(item, dict):
        return origin, item
    return Problem(origin, f"expected a JSON object, found {type(item).__name__}", fix="each record must be an object")


def _json_refusal(error: ValueError | RecursionError) -> str:
    """Why well-formed-looking JSON was refused: nesting too deep for the parser, or an integer with more digits
    than Python converts (its guard against quadratic-time conversion)."""
    if isinstance(error, RecursionError):
        return "arrays or objects nested too deep to parse"
    return str(error)


def _read_json(stream: IO[bytes], name: str, options: ReaderOptions,
               limits: LimitsConfig) -> Iterator[Raw | Problem]:
    """A whole JSON document (the json module cannot stream); use JSON Lines for large exports."""
    try:
        with _text(stream, options) as text:
            data = json.load(text)
    except json.JSONDecodeError as error:
        yield Problem(f"{name}, line {error.lineno}, column {error.colno}", f"malformed JSON: {error.msg}",
                      fix="repair the file; no record of it was read")
        return
    except (ValueError, RecursionError) as error:
        yield Problem(name, f"unreadable JSON: {_json_refusal(error)}", fix="repair the file; no record of it was read")
        return
    for count, item in enumerate(_json_records(data, options.key), 1):
        yield _json_record(f"{name}, record {count}", item)


def _read_jsonl(stream: IO[bytes], name: str, options: ReaderOptions,
                limits: LimitsConfig) -> Iterator[Raw | Problem]:
    with _text(stream, options) as text:
        for line_number, line in enumerate(text, 1):
            if not line.strip():
                continue
            origin = f"{name}, line {line_number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                yield Problem(origin, f"malformed JSON: {error.msg} at column {error.colno}", fix="repair this line")
                continue
            except (ValueError, RecursionError) as error:
                yield Problem(origin, f"unreadable JSON: {_json_refusal(error)}", fix="repair this line")
                continue
            yield _json_record(origin, item)


# --- CSV -------------------------------------------------------------------------------------------------------------

def _undecodable(row: dict[str, Any]) -> str | None:
    """The first column whose value held bytes the encoding could not decode (kept as surrogates)."""
    for column, value in row.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return column
    return None


def _csv_error(error: csv.Error, limits: LimitsConfig) -> str:
    """The csv module's message, with the setting to raise when it is the field limit."""
    if "field limit" in str(error):
        return (f"a value is longer than {limits.max_field_chars} characters (check the quoting; raise "
                f"MEDRAG_LIMITS_MAX_FIELD_CHARS, now {limits.max_field_chars}, if the value is genuine)")
    return str(error)


def _read_csv(stream: IO[bytes], name: str, options: ReaderOptions,
              limits: LimitsConfig) -> Iterator[Raw | Problem]:
    """Rows as dicts keyed by the header; a bad row is reported and the next one read.

    The csv module's field limit is process-wide state; it is set to ``max_field_chars`` on every read, so a cell
    over the limit is one row's ``Problem``, whoever set it last."""
    delimiter = options.delimiter or ("\t" if name.lower().removesuffix(".gz").endswith(".tsv") else ",")
    csv.field_size_limit(limits.max_field_chars)
    with _text(stream, options, errors="surrogateescape", newline="") as text:
        rows = csv.DictReader(text, delimiter=delimiter)
        try:
            header = set(rows.fieldnames or ())
        except csv.Error as error:
            yield Problem(f"{name}, line 1", f"malformed CSV header: {_csv_error(error, limits)}",
                          fix="repair the header; no row of the file was read")
            return
        absent = [" or ".join(sorted(group)) for group in options.columns if not group & header]
        if absent:
            yield Problem(name, f"the header has no column {', '.join(absent)}",
                          fix="pass a mapping for this CSV layout (mapping=...) or rename the columns")
            return
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as error:
                yield Problem(f"{name}, after line {rows.line_num}", f"malformed CSV: {_csv_error(error, limits)}",
                              fix="repair this row")
                continue
            origin = f"{name}, line {rows.line_num}"
            if None in row:
                yield Problem(origin, f"{len(header) + len(row[None])} values for {len(header)} columns",
                              fix="quote values that contain the delimiter")
            elif column := _undecodable(row):
                yield Problem(origin, f"not valid {options.encoding} text", field=column,
                              fix="re-export the file as UTF-8, or set reader.encoding in the mapping file")
            else:
                yield origin, row


# --- PubTator --------------------------------------------------------------------------------------------------------
# PubTator has no maintained Python parser, so it is read by hand: records are blocks of lines,
# ``PMID|t|title`` and ``PMID|a|abstract``, then tab-separated annotations
# ``PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>id`` or relations ``PMID<TAB>CID<TAB>id<TAB>id``.

_TEXT_LINE = re.compile(r"^(\d+)\|([ta])\|(.*)$")


def _pubtator_blocks(lines: Iterable[str]) -> Iterator[list[tuple[int, str]]]:
    """Blocks of numbered lines: a blank line or a new title line ends a record."""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        starts_record = (match := _TEXT_LINE.match(line)) is not None and match[2] == "t"
        if block and (not line.strip() or starts_record):
            yield block
            block = []
        if line.strip():
            block.append((number, line))
    if block:
        yield block


def _pubtator_line(record: dict[str, Any], line: str) -> str | None:
    """Add one line to the record; an error message when the line is not PubTator."""
    if match := _TEXT_LINE.match(line):
        pmid, kind, text = match.groups()
        record["title" if kind == "t" else "abstract"] = text
    else:
        parts = [part.strip() for part in line.split("\t")]
        pmid = parts[0]
        if len(parts) >= 6 and parts[1].isdigit() and parts[2].isdigit():
            record["annotations"].append({"start": int(parts[1]), "end": int(parts[2]), "mention": parts[3],
                                          "type": parts[4], "id": parts[5]})
        elif len(parts) == 4 and not parts[1].isdigit():
            record["relations"].append({"type": parts[1], "ids": parts[2:]})
        else:
            return "not a PubTator title, abstract, annotation or relation line"
    if pmid != record["pmid"]:
        return f"PMID {pmid} inside the record of PMID {record['pmid']}"
    return None


def _read_pubtator(stream: IO[bytes], name: str, options: ReaderOptions,
                   limits: LimitsConfig) -> Iterator[Raw | Problem]:
    with _text(stream, options) as text:
        for count, block in enumerate(_pubtator_blocks(text), 1):
            first_number, first_line = block[0]
            if count == 1 and not _TEXT_LINE.match(first_line):
                yield Problem(f"{name}, line {first_number}",
                              "not a PubTator file: it does not start with PMID|t|title",
                              fix="check the file; PubTator records start with a PMID|t|title line")
                return
            origin = f"{name}, record {count}"
            record: dict[str, Any] = {"annotations": [], "relations": []}
            record["pmid"] = first_line.partition("|")[0].partition("\t")[0]
            errors = [(number, error) for number, line in block if (error := _pubtator_line(record, line))]
            if errors:
                number, error = errors[0]
                yield Problem(f"{origin} (line {number})", error, fix="repair the record; it was not read")
            else:
                yield origin, record


def looks_like_pubtator(path: Path) -> bool:
    """Whether the file's first non-blank line is a PubTator title line (``PMID|t|...``)."""
    try:
        with open_maybe_gzip(path) as stream:
            head = stream.read(4096).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return False
    first = next((line for line in head.splitlines() if line.strip()), "")
    return bool(_TEXT_LINE.match(first))


_READERS: dict[str, Callable[[IO[bytes], str, ReaderOptions, LimitsConfig], Iterator[Raw | Problem]]] = {
    "xml": _read_xml,
    "json": _read_json,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "pubtator": _read_pubtator,
}
