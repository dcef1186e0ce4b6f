"""Declarative field mapping: a YAML (or JSON) file says how one raw record becomes a ``SourceRecord``.

A hospital maps its own export by writing a mapping file, not code; the built-in loaders use the
very same mechanism with the files in ``knowledge_sources/mappings/`` (format: its README.md).

    name: covid-metadata
    kind: case                      # article | report | case
    source: covid                   # may use {folder} or {stem} of the input file
    id: {path: filename, transforms: trim}
    image: {path: filename, folder: {path: folder}}
    fields:
      year: {path: date, transforms: "date:%Y | int"}
      mesh: {path: "MeshHeadingList.MeshHeading[*].DescriptorName.#text", default: []}

Mistakes in the file (unknown transform, bad path, unknown key) raise ``MappingError`` when it is
loaded, naming the file and the field. Mistakes in the data (a required value missing, a transform
failing) give a ``Problem`` for that record only.

R3, hierarchical alignment: the depth of a target's source path (its number of components, a final
``#text`` not counted) says how specific the source is; ``Mapping.weights()`` turns depth into a
matching weight, ``1 + 0.25 * (depth - 1)``, so a deeper, more specific path weighs more.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from dateutil import parser as dateparser

from knowledge_sources.readers import ReaderOptions, detect_format, read, walk
from knowledge_sources.records import Kind, Problem, SourceRecord
from medrag.config import LimitsConfig

MAPPINGS_DIR = Path(__file__).parent / "mappings"
KINDS: tuple[Kind, ...] = ("article", "report", "case")
DEPTH_WEIGHT_STEP = 0.25
"""R3: each path component below the first adds this much to a target's matching weight."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""No value: the path found nothing, or only empty values (blank strings, null, [], {})."""


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the field."""


class RecordError(Exception):
    """One record cannot be mapped; becomes a ``Problem`` for that record."""

    def __init__(self, field: str, reason: str, fix: str):
        super().__init__(reason)
        self.field, self.reason, self.fix = field, reason, fix


class MissingValue(RecordError):
    """A required value is missing."""


def _is_empty(value: Any) -> bool:
    """No value: nothing found, null, a blank string, an empty list or object."""
    if isinstance(value, str):
        return not value.strip()
    return value is MISSING or value is None or value == [] or value == {}


def _describe(value: Any) -> str:
    """What a failing value looks like (type and size), without its content."""
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(value)} items" if isinstance(
        value, list | dict) else "one value"
    return f"{type(value).__name__}, {size}"


def _as_list(value: Any) -> list[Any]:
    """Lists as they are; one dict or value as a one-item list (xmltodict gives a dict for a single child)."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _flatten(values: Iterable[Any]) -> list[Any]:
    """One level of nesting removed; empty values dropped."""
    return [item for value in values for item in _as_list(value) if not _is_empty(item)]


# --- paths -----------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Key:
    name: str


@dataclasses.dataclass(frozen=True)
class _Every:
    """``[*]``: every item."""


@dataclasses.dataclass(frozen=True)
class _Index:
    index: int


@dataclasses.dataclass(frozen=True)
class _Where:
    """``[key=value]``: the items whose ``key`` equals ``value`` (``[@Label=FINDINGS]``)."""

    key: str
    value: str


_Step = _Key | _Every | _Index | _Where
_SEGMENT = re.compile(r"^(?P<name>[^\[\]]*)(?P<selectors>(?:\[[^\[\]]*\])*)$")
_SELECTOR = re.compile(r"\[([^\[\]]*)\]")


def _selector(text: str) -> _Step:
    if text == "*":
        return _Every()
    if re.fullmatch(r"-?\d+", text):
        return _Index(int(text))
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise ValueError(f"selector [{text}] is not [*], [N] or [key=value]")
    return _Where(key, value)


@dataclasses.dataclass(frozen=True)
class FieldPath:
    """A path into a raw record: ``a.b[0].c``, ``list[*].x``, ``AbstractText[@Label=FINDINGS].#text``.

    A key applied to a list applies to each item; a selector applied to a single value treats it
    as a one-item list. ``#text`` on a plain string is the string (xmltodict's text-only elements).
    A literal dot in a key is written ``\\.``.
    """

    text: str
    steps: tuple[_Step, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"path {text!r} is not a non-empty string")
        steps: list[_Step] = []
        for segment in re.split(r"(?<!\\)\.", text.strip()):
            match = _SEGMENT.match(segment)
            if match is None or not (match["name"] or match["selectors"]):
                raise ValueError(f"path {text!r}: cannot read the part {segment!r}")
            if match["name"]:
                steps.append(_Key(match["name"].replace("\\.", ".")))
            try:
                steps.extend(_selector(selector) for selector in _SELECTOR.findall(match["selectors"]))
            except ValueError as error:
                raise ValueError(f"path {text!r}: {error}") from None
        return cls(text, tuple(steps))

    @property
    def depth(self) -> int:
        """Number of key components, a final ``#text`` (the element itself) not counted."""
        keys = [step.name for step in self.steps if isinstance(step, _Key)]
        return len(keys) - (keys[-1:] == ["#text"])

    @property
    def first_key(self) -> str | None:
        return self.steps[0].name if self.steps and isinstance(self.steps[0], _Key) else None

    def resolve(self, data: Any) -> Any:
        """The value at this path: one value, a list (after a fan-out or a list value), or ``MISSING``."""
        values, many = [data], False
        for step in self.steps:
            if isinstance(step, _Key):
                many = many or any(isinstance(value, list) for value in values)
                values = [found for value in values for item in _as_list(value)
                          if (found := _child(item, step.name)) is not MISSING]
            elif isinstance(step, _Every):
                many = True
                values = [item for value in values for item in _as_list(value)]
            elif isinstance(step, _Index):
                values = [items[step.index] for value in values
                          if -len(items := _as_list(value)) <= step.index < len(items)]
            else:
                values = [item for value in values for item in _as_list(value)
                          if isinstance(item, dict) and str(item.get(step.key)) == step.value]
        if many:
            return _flatten(values) or MISSING
        values = [value for value in values if not _is_empty(value)]
        if not values:
            return MISSING
        return values[0] if len(values) == 1 else values


def _child(item: Any, name: str) -> Any:
    if isinstance(item, dict):
        return item.get(name, MISSING)
    if name == "#text" and isinstance(item, str | int | float):
        return item
    return MISSING


# --- transforms ------------------------------------------------------------------------------------------------------

ArgMode = Literal["none", "required", "optional"]


@dataclasses.dataclass(frozen=True)
class Transform:
    """One named transform: ``func(value, arg)``; ``prepare(arg, mapping_dir)`` checks the argument at load."""

    func: Callable[[Any, Any], Any]
    arg: ArgMode = "none"
    elementwise: bool = True
    """Applied to each item of a list (``trim``), or to the whole value (``join``, ``first``)."""
    prepare: Callable[[str | None, Path], Any] | None = None


TRANSFORMS: dict[str, Transform] = {}
"""The transform registry: a new transform is one decorated function."""


def transform(name: str, *, arg: ArgMode = "none", elementwise: bool = True,
              prepare: Callable[[str | None, Path], Any] | None = None) -> Callable[[Callable], Callable]:
    """Register ``func(value, arg)`` as the transform ``name``."""
    def register(func: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        TRANSFORMS[name] = Transform(func, arg, elementwise, prepare)
        return func
    return register


def _on_text(func: Callable[[str], Any]) -> Callable[[Any, Any], Any]:
    """A string transform that leaves numbers and other values as they are."""
    return lambda value, _arg: func(value) if isinstance(value, str) else value


transform("trim")(_on_text(str.strip))
transform("lower")(_on_text(str.lower))
transform("upper")(_on_text(str.upper))
transform("collapse_ws")(_on_text(lambda text: " ".join(text.split())))


@transform("int")
def _int(value: Any, _arg: None) -> int:
    """``"45"`` and ``"45.0"`` give 45; ``"45.5"`` is an error, not a silent truncation."""
    try:
        return int(str(value).strip())
    except ValueError:
        number = float(str(value).strip())
        if not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number") from None
        return int(number)


@transform("float")
def _float(value: Any, _arg: None) -> float:
    return float(str(value).strip())


def _check_date_format(arg: str | None, _base: Path) -> str:
    if "%" not in (arg or ""):
        raise ValueError(f"date format {arg!r} has no strftime directive such as %Y")
    return arg or ""


_DATE_DEFAULTS = datetime(2000, 1, 1)
"""Fills what a partial date lacks (``March 2003``), instead of today's month and day."""


@transform("date", arg="required", prepare=_check_date_format)
def _date(value: Any, date_format: str) -> str:
    """Any date python-dateutil understands (``Mar 3, 2020``, ``3/3/2020``, ``2020``), formatted by strftime."""
    return dateparser.parse(str(value), default=_DATE_DEFAULTS).strftime(date_format)


@transform("split", arg="optional")
def _split(value: Any, separator: str | None) -> Any:
    return value.split(separator or None) if isinstance(value, str) else value


@transform("join", arg="optional", elementwise=False)
def _join(value: Any, separator: str | None) -> Any:
    return (separator or " ").join(str(item) for item in value) if isinstance(value, list) else value


@transform("first", elementwise=False)
def _first(value: Any, _arg: None) -> Any:
    return (value[0] if value else None) if isinstance(value, list) else value


@transform("null_if", arg="required")
def _null_if(value: Any, marker: str) -> Any:
    """No value where the source writes a placeholder (``todo``, ``N/A``); compared without case."""
    return None if str(value).strip().casefold() == marker.strip().casefold() else value


@transform("strip_prefix", arg="required")
def _strip_prefix(value: Any, prefix: str) -> Any:
    return value[len(prefix):] if isinstance(value, str) and value.startswith(prefix) else value


@transform("prefix", arg="required")
def _prefix(value: Any, prefix: str) -> str:
    return f"{prefix}{value}"


@transform("regex", arg="required", prepare=lambda arg, _base: re.compile(arg or ""))
def _regex(value: Any, pattern: re.Pattern[str]) -> str | None:
    """The first match (its first group, if the pattern has one), or no value."""
    match = pattern.search(str(value))
    if match is None:
        return None
    return match[1] if pattern.groups else match[0]


def _load_table(arg: str | None, base: Path) -> dict[str, Any]:
    """``map:`` a table inline (``F=female,M=male``) or in a YAML/JSON file beside the mapping file."""
    arg = arg or ""
    if arg.lower().endswith((".yaml", ".yml", ".json")):
        table = yaml.safe_load((base / arg).read_text(encoding="utf-8"))
        if not isinstance(table, dict):
            raise ValueError(f"{arg} does not hold a key: value table")
        return {str(key): value for key, value in table.items()}
    pairs = [item.partition("=") for item in arg.split(",") if item.strip()]
    if not pairs or any(not equals for _, equals, _ in pairs):
        raise ValueError(f"map:{arg} is neither a file nor KEY=VALUE,KEY=VALUE")
    return {key.strip(): value.strip() for key, _, value in pairs}


@transform("map", arg="required", prepare=_load_table)
def _map(value: Any, table: dict[str, Any]) -> Any:
    """Values found in the table are replaced; others are kept as they are."""
    return table.get(str(value), value)


@dataclasses.dataclass(frozen=True)
class Step:
    """One transform of a chain, with its argument prepared."""

    text: str
    transform: Transform
    arg: Any

    def __call__(self, value: Any) -> Any:
        if self.transform.elementwise and isinstance(value, list):
            return _flatten(self.transform.func(item, self.arg) for item in value)
        return self.transform.func(value, self.arg)


# --- field specs -----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """How one target field is filled from a raw record."""

    target: str
    """The key in ``SourceRecord.fields`` (or in each item, for ``each``/``zip``)."""
    label: str
    """The dotted name used in messages: ``sections.text``."""
    paths: tuple[FieldPath, ...] = ()
    """Alternatives: the first path that finds a value is used."""
    value: Any = MISSING
    transforms: tuple[Step, ...] = ()
    default: Any = None
    required: bool = False
    each: tuple[FieldSpec, ...] = ()
    """Build a list of dicts: one per item at the path, the sub-fields read relative to the item."""
    zip: tuple[FieldSpec, ...] = ()
    """Build a list of dicts from parallel lists (single values repeat)."""

    @property
    def depth(self) -> int:
        own = self.paths[0].depth if self.paths else 0
        return own + max((spec.depth for spec in self.each or self.zip), default=0)

    def describe(self) -> str:
        return " or ".join(repr(path.text) for path in self.paths) or "(computed)"

    def evaluate(self, data: Any) -> Any:
        """The field's value in one raw record: found, transformed, else the default; raises ``RecordError``."""
        value = self._extract(data)
        for step in self.transforms:
            if _is_empty(value):
                break
            try:
                value = step(value)
            except (ValueError, TypeError, OverflowError, KeyError) as error:
                # The value itself is never echoed: in notes and reports it may be patient data.
                raise RecordError(self.label, f"transform {step.text!r} failed on the value ({_describe(value)}, "
                                  f"{type(error).__name__})",
                                  f"correct the value in the source, or the transforms of {self.label!r}") from None
        if isinstance(value, list):
            value = _flatten(value)
        if not _is_empty(value) or (self.value is not MISSING and not self.transforms):
            return value  # a constant is used as given, even "" (an unlabelled section)
        if self.required:
            alternative = "; every record needs an id" if self.target == "id" else f", or give {self.label!r} a default"
            raise MissingValue(self.label, f"required value missing (path {self.describe()})",
                               f"fill {self.describe()} in the source{alternative}")
        return list(self.default) if isinstance(self.default, list) else self.default

    def _extract(self, data: Any) -> Any:
        if self.zip:
            return self._zipped(data)
        if self.value is not MISSING:
            return self.value
        found = next((value for path in self.paths if (value := path.resolve(data)) is not MISSING), MISSING)
        if self.each and found is not MISSING:
            return self._items(found)
        return found

    def _items(self, found: Any) -> list[dict[str, Any]]:
        """``each``: one dict per item; an item without a required sub-field is left out."""
        items = []
        for item in _as_list(found):
            try:
                items.append({spec.target: spec.evaluate(item) for spec in self.each})
            except MissingValue:
                continue
        return items

    def _zipped(self, data: Any) -> Any:
        try:
            columns = {spec.target: spec.evaluate(data) for spec in self.zip}
        except MissingValue:
            return MISSING
        lengths = {name: len(value) for name, value in columns.items() if isinstance(value, list)}
        if len(set(lengths.values())) > 1:
            raise RecordError(self.label, f"parallel lists of different lengths: {lengths}",
                              "repair the record so the lists pair up")
        count = next(iter(lengths.values()), 1)
        return [{name: value[index] if isinstance(value, list) else value for name, value in columns.items()}
                for index in range(count)]


@dataclasses.dataclass(frozen=True)
class SkipRule:
    """Leave a record out (a skipped ``Problem``) when a value is, or is not, in a list."""

    spec: FieldSpec
    values: frozenset[str]
    skip_if_in: bool
    reason: str
    """May use ``{value}``."""

    def check(self, raw: dict[str, Any]) -> str | None:
        value = self.spec.evaluate(raw)
        if _is_empty(value):
            return None
        if (str(value).casefold() in self.values) == self.skip_if_in:
            return self.reason.format(value=value)
        return None


# --- the mapping -----------------------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclasses.dataclass(frozen=True)
class Mapping:
    """A loaded mapping file: how records of one source layout become ``SourceRecord``s."""

    name: str
    kind: Kind
    source: str
    """The dataset or feed name; may use ``{folder}`` or ``{stem}`` of the input file."""
    origin: str
    """The mapping file, for messages."""
    id: FieldSpec
    fields: tuple[FieldSpec, ...]
    image: FieldSpec | None = None
    image_folder: FieldSpec | None = None
    skip: tuple[SkipRule, ...] = ()
    require_any: tuple[str, ...] = ()
    """At least one of these fields must have a value (a report with neither findings nor impression is empty)."""
    reader: ReaderOptions = dataclasses.field(default_factory=ReaderOptions)

    def depth(self, target: str) -> int:
        """R3: the number of components of the target's source path (0 for a constant)."""
        for spec in self.fields:
            if spec.target == target:
                return spec.depth
        raise KeyError(f"{self.origin}: no field {target!r}")

    def weights(self) -> dict[str, float]:
        """R3: a matching weight per target, ``1 + 0.25 * (depth - 1)``: deeper, more specific paths weigh more."""
        return {spec.target: 1 + DEPTH_WEIGHT_STEP * max(spec.depth - 1, 0) for spec in self.fields}

    def source_for(self, path: Path) -> str:
        return self.source.format(folder=_slug(path.parent.name), stem=_slug(path.name.split(".")[0]))

    def read(self, path: Path, source: str | None = None,
             limits: LimitsConfig | None = None) -> Iterator[SourceRecord | Problem]:
        """Every record of one file, mapped; images are resolved relative to the file's folder."""
        source = source or self.source_for(path)
        for item in read(path, self.reader, limits):
            if isinstance(item, Problem):
                yield item
            else:
                yield self.apply(item[1], item[0], base_dir=path.parent, source=source)

    def apply(self, raw: dict[str, Any], origin: str, base_dir: Path | None = None,
              source: str | None = None) -> SourceRecord | Problem:
        """One raw record mapped, or the ``Problem`` that stops it (naming file, record, field and fix)."""
        try:
            source_id = self._source_id(raw)
            origin = f"{origin} (id {source_id})"
            reason = next((reason for rule in self.skip if (reason := rule.check(raw))), None)
            if reason is not None:
                return Problem(origin, reason, skipped=True)
            fields = {spec.target: spec.evaluate(raw) for spec in self.fields}
            self._check_any(fields)
            image = self._image_path(raw, base_dir)
        except RecordError as error:
            return Problem(origin, error.reason, field=error.field, fix=f"{error.fix} (mapping {self.origin})")
        return SourceRecord(kind=self.kind, source_id=source_id, source=source or self.source, fields=fields,
                            origin=origin, image_path=image)

    def _source_id(self, raw: dict[str, Any]) -> str:
        value = self.id.evaluate(raw)
        if isinstance(value, list):
            if len(value) != 1:
                raise RecordError("id", f"the id path gives {len(value)} values", "make the id path select one")
            value = value[0]
        return str(value)

    def _check_any(self, fields: dict[str, Any]) -> None:
        if self.require_any and all(_is_empty(fields.get(name)) for name in self.require_any):
            names = " or ".join(self.require_any)
            raise MissingValue(names, f"empty record: no {names}", f"the source record has no {names}; fill one")

    def _image_path(self, raw: dict[str, Any], base_dir: Path | None) -> Path | None:
        if self.image is None:
            return None
        image = Path(str(self.image.evaluate(raw)))
        if self.image_folder is not None and not _is_empty(folder := self.image_folder.evaluate(raw)):
            image = Path(str(folder)) / image
        return image if image.is_absolute() or base_dir is None else base_dir / image


# --- loading mapping files -------------------------------------------------------------------------------------------

_TOP_KEYS = {"name", "kind", "source", "description", "reader", "id", "image", "fields", "skip", "require_any"}
_SPEC_KEYS = {"path", "value", "transforms", "default", "required", "each", "zip"}
_SKIP_KEYS = _SPEC_KEYS | {"in", "not_in", "reason"}
_IMAGE_KEYS = _SPEC_KEYS | {"folder"}
_READER_KEYS = {field.name for field in dataclasses.fields(ReaderOptions)} - {"columns"}
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class _Context:
    """Where a mapping is being loaded from, to name it in errors and to find ``map:`` files."""

    origin: str
    base: Path

    def error(self, where: str, message: str) -> MappingError:
        return MappingError(f"{self.origin}, {where}: {message}")


def _transform_steps(chain: Any, ctx: _Context, label: str) -> tuple[Step, ...]:
    """``"trim | date:%Y | int"``, or a YAML list when an argument holds ``|``."""
    if chain is None:
        return ()
    if isinstance(chain, str):
        parts = [part.strip() for part in chain.split("|") if part.strip()]
    elif isinstance(chain, list) and all(isinstance(part, str) for part in chain):
        parts = chain
    else:
        raise ctx.error(f"field {label!r}", "transforms must be a string 'a | b:arg' or a list of strings")
    steps = []
    for part in parts:
        name, colon, arg = part.partition(":")
        name = name.strip()
        known = TRANSFORMS.get(name)
        if known is None:
            raise ctx.error(f"field {label!r}", f"unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})")
        if known.arg == "none" and colon:
            raise ctx.error(f"field {label!r}", f"transform {name!r} takes no argument")
        if known.arg == "required" and not arg:
            raise ctx.error(f"field {label!r}", f"transform {name!r} needs an argument: {name}:...")
        try:
            prepared = known.prepare(arg or None, ctx.base) if known.prepare else (arg or None)
        except (ValueError, OSError, re.error, yaml.YAMLError) as error:
            raise ctx.error(f"field {label!r}", f"transform {part!r}: {error}") from None
        steps.append(Step(part, known, prepared))
    return tuple(steps)


def _check_keys(spec: dict[str, Any], allowed: set[str], ctx: _Context, where: str) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise ctx.error(where, f"unknown key(s) {', '.join(sorted(unknown))} (expected {', '.join(sorted(allowed))})")


def _sub_specs(specs: Any, ctx: _Context, label: str, what: str) -> tuple[FieldSpec, ...]:
    if not isinstance(specs, dict) or not specs:
        raise ctx.error(f"field {label!r}", f"{what} must map sub-field names to specs")
    return tuple(_field_spec(name, spec, ctx, f"{label}.{name}") for name, spec in specs.items())


def _field_spec(target: str, spec: Any, ctx: _Context, label: str | None = None) -> FieldSpec:
    """A field spec from YAML: a dict, or a plain string as shorthand for ``{path: ...}``."""
    label = label or target
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict):
        raise ctx.error(f"field {label!r}", "expected a path or a mapping with path/value/zip")
    if not _TARGET.match(str(target)):
        raise ctx.error(f"field {label!r}", "field names are letters, digits and underscores")
    _check_keys(spec, _SPEC_KEYS, ctx, f"field {label!r}")
    sources = [key for key in ("path", "value", "zip") if key in spec]
    if len(sources) != 1:
        raise ctx.error(f"field {label!r}", "give exactly one of path, value or zip")
    if ("each" in spec and "path" not in spec) or (("each" in spec or "zip" in spec) and "transforms" in spec):
        raise ctx.error(f"field {label!r}", "each needs a path; each and zip take no transforms")
    paths = spec.get("path", [])
    try:
        parsed = tuple(FieldPath.parse(path) for path in ([paths] if isinstance(paths, str) else paths))
    except (ValueError, TypeError) as error:
        raise ctx.error(f"field {label!r}", str(error)) from None
    return FieldSpec(
        target=str(target),
        label=label,
        paths=parsed,
        value=spec.get("value", MISSING),
        transforms=_transform_steps(spec.get("transforms"), ctx, label),
        default=spec.get("default"),
        required=bool(spec.get("required", False)),
        each=_sub_specs(spec["each"], ctx, label, "each") if "each" in spec else (),
        zip=_sub_specs(spec["zip"], ctx, label, "zip") if "zip" in spec else (),
    )


def _skip_rule(spec: Any, ctx: _Context, index: int) -> SkipRule:
    where = f"skip rule {index}"
    if not isinstance(spec, dict) or ("in" in spec) == ("not_in" in spec) or "reason" not in spec:
        raise ctx.error(where, "a skip rule needs a path, exactly one of in/not_in, and a reason")
    _check_keys(spec, _SKIP_KEYS, ctx, where)
    listed = spec.get("in", spec.get("not_in"))
    if not isinstance(listed, list):
        raise ctx.error(where, "in/not_in must be a list")
    field = {key: value for key, value in spec.items() if key in _SPEC_KEYS}
    return SkipRule(_field_spec(f"skip_{index}", field, ctx, where), frozenset(str(v).casefold() for v in listed),
                    "in" in spec, str(spec["reason"]))


def _names(value: Any) -> bool:
    """A list of non-empty strings (element or field names)."""
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _reader_options(spec: Any, ctx: _Context) -> ReaderOptions:
    """The ``reader:`` section, every value checked here: a wrong type or an unknown encoding would otherwise
    surface only when a file is read, as an exception from inside the csv, codecs or XML modules."""
    if spec is None:
        return ReaderOptions()
    if not isinstance(spec, dict):
        raise ctx.error("reader", "expected a mapping of reader settings")
    _check_keys(spec, _READER_KEYS, ctx, "reader")
    options = dict(spec)
    skip = options.get("skip", {})
    if not _names(options.get("text", [])) or not isinstance(skip, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in skip.items()):
        raise ctx.error("reader", "text must be a list of element names; skip must map element names to reasons")
    for key in ("record", "root", "key", "delimiter", "encoding"):
        if key in options and not (isinstance(options[key], str) and options[key]):
            raise ctx.error(f"reader.{key}", f"expected a non-empty string, found {options[key]!r}")
    if len(options.get("delimiter", ",")) != 1:
        raise ctx.error("reader.delimiter", f"{options['delimiter']!r} is not one character")
    try:
        codecs.lookup(options.get("encoding", "utf-8"))
    except LookupError:
        raise ctx.error("reader.encoding", f"unknown encoding {options['encoding']!r} (e.g. utf-8, latin-1, "
                        "cp1252, utf-16)") from None
    options["text"] = frozenset(options.get("text", ()))
    return ReaderOptions(**options)


def _image_specs(spec: Any, ctx: _Context) -> tuple[FieldSpec | None, FieldSpec | None]:
    """``image: {path: filename, folder: {path: folder}}``: the image file, and the folder it lies in."""
    if spec is None:
        return None, None
    spec = {"path": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict):
        raise ctx.error("image", "expected a path or a mapping with path (and folder)")
    _check_keys(spec, _IMAGE_KEYS, ctx, "image")
    image = _field_spec("image", {key: value for key, value in spec.items() if key != "folder"}, ctx)
    folder = _field_spec("image_folder", spec["folder"], ctx) if "folder" in spec else None
    return dataclasses.replace(image, required=True), folder


def _first_keys(specs: Iterable[FieldSpec]) -> frozenset[str]:
    return frozenset(key for spec in specs for path in spec.paths if (key := path.first_key))


def _required_columns(required: Iterable[FieldSpec | None], any_of: Iterable[FieldSpec]) -> tuple[frozenset[str], ...]:
    """For CSV: a header must hold a column of every required spec, and one of the ``require_any`` specs."""
    groups = [_first_keys([spec]) for spec in required if spec is not None and spec.required]
    return tuple(group for group in (*groups, _first_keys(any_of)) if group)


def parse_mapping(data: Any, origin: str, base: Path = MAPPINGS_DIR) -> Mapping:
    """A ``Mapping`` from the parsed YAML/JSON of a mapping file; ``MappingError`` names what is wrong."""
    ctx = _Context(origin, base)
    if not isinstance(data, dict):
        raise ctx.error("top level", "expected a mapping with name, kind, source, id and fields")
    _check_keys(data, _TOP_KEYS, ctx, "top level")
    for key in ("name", "kind", "source", "id", "fields"):
        if key not in data:
            raise ctx.error("top level", f"missing key {key!r}")
    if data["kind"] not in KINDS:
        raise ctx.error("kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}")
    try:
        str(data["source"]).format(folder="f", stem="s")
    except (KeyError, IndexError, ValueError) as error:
        raise ctx.error("source", f"only {{folder}} and {{stem}} may be used: {error}") from None
    if not isinstance(data["fields"], dict) or not data["fields"]:
        raise ctx.error("fields", "expected a mapping of target field names to specs")
    identity = dataclasses.replace(_field_spec("id", data["id"], ctx), required=True)
    fields = tuple(_field_spec(target, spec, ctx) for target, spec in data["fields"].items())
    image, folder = _image_specs(data.get("image"), ctx)
    if not _names(data.get("require_any") or []):
        raise ctx.error("require_any", "expected a list of field names")
    require_any = tuple(data.get("require_any") or ())
    unknown = [name for name in require_any if name not in data["fields"]]
    if unknown:
        raise ctx.error("require_any", f"no field named {', '.join(unknown)}")
    rules = data.get("skip") or []
    if not isinstance(rules, list):
        raise ctx.error("skip", "expected a list of skip rules")
    reader = dataclasses.replace(_reader_options(data.get("reader"), ctx),
                                 columns=_required_columns([identity, image, *fields],
                                                           [spec for spec in fields if spec.target in require_any]))
    return Mapping(
        name=str(data["name"]), kind=data["kind"], source=str(data["source"]), origin=origin, id=identity,
        fields=fields, image=image, image_folder=folder,
        skip=tuple(_skip_rule(rule, ctx, index) for index, rule in enumerate(rules, 1)),
        require_any=require_any, reader=reader,
    )


def builtin_names() -> list[str]:
    return sorted(path.stem for path in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(path_or_name: str | Path) -> Mapping:
    """A mapping from a YAML/JSON file, or the built-in mapping of that name (``covid_metadata``)."""
    path = Path(path_or_name)
    if not path.is_file():
        builtin = MAPPINGS_DIR / f"{path_or_name}.yaml"
        if isinstance(path_or_name, Path) or not builtin.is_file():
            raise MappingError(f"{path_or_name}: no such mapping file, and no built-in mapping of that name "
                               f"(built-in: {', '.join(builtin_names())})")
        return builtin_mapping(str(path_or_name))
    return _load_file(path)


@functools.cache
def builtin_mapping(name: str) -> Mapping:
    """A built-in mapping, loaded once."""
    return _load_file(MAPPINGS_DIR / f"{name}.yaml", origin=f"{name}.yaml")


def _load_file(path: Path, origin: str | None = None) -> Mapping:
    origin = origin or str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise MappingError(f"{origin}: cannot read the mapping file: {error}") from None
    return parse_mapping(data, origin, path.parent)


def map_files(paths: Iterable[Path | str], builtins: dict[str, str], mapping: str | Path | None = None,
              source: str | None = None, accept: Callable[[Path], bool] | None = None,
              limits: LimitsConfig | None = None) -> Iterator[SourceRecord | Problem]:
    """Read and map every file: with the caller's mapping, or the built-in one for the file's format.

    ``builtins`` maps a reader format (``xml``, ``csv``...) to a built-in mapping name. The mapping
    is loaded now, so a bad mapping file fails at the call; the records come lazily, each file read
    within ``limits`` (default: ``LimitsConfig()``).
    """
    chosen = load_mapping(mapping) if mapping is not None else None
    accept = accept or (lambda path: detect_format(path.name) in builtins)
    return _mapped(paths, builtins, chosen, source, accept, limits)


def _mapped(paths: Iterable[Path | str], builtins: dict[str, str], chosen: Mapping | None, source: str | None,
            accept: Callable[[Path], bool], limits: LimitsConfig | None) -> Iterator[SourceRecord | Problem]:
    for path in walk(paths, accept):
        if isinstance(path, Problem):
            yield path
            continue
        fmt = detect_format(path.name)
        if chosen is None and fmt not in builtins:
            yield Problem(str(path), f"no built-in mapping for this file type ({fmt or 'unknown'})",
                          fix=f"use one of {', '.join(sorted(builtins))}, or pass a mapping file (mapping=...)")
            continue
        yield from (chosen or builtin_mapping(builtins[fmt])).read(path, source=source, limits=limits)
