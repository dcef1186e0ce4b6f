"""A rule labeller for the 14 CheXpert observations, built on the CheXpert labeler's own phrase and pattern files.

The report-generation suite needs finding-level scores (did the draft impression name the effusion the radiologist
named, and not negate it?). The CheXpert labeler is the reference for that, but it runs NegBio: a constituency
parser (BLLIP with the GENIA+PubMed model), a conversion to dependency graphs and Semgrex matching over them, none of
which ships offline here. This module keeps everything of the labeler that is lexical and approximates the rest:

- mentions: every phrase of ``phrases/mention/<observation>.txt`` found in the cleaned text (as regular expressions,
  ``_`` standing for a space, as the labeler reads them), unless it overlaps a phrase of
  ``phrases/unmention/<observation>.txt`` or one of the positional unmentions the labeler adds for the heart
  ("over the heart", "in the left cardiac silhouette", ...). ``no_finding.txt`` lists the other findings that rule
  out "No Finding" without being labelled themselves, as in the labeler.
- negation and uncertainty: each Semgrex pattern of ``patterns/pre_negation_uncertainty.txt``, ``negation.txt`` and
  ``post_negation_uncertainty.txt`` is reduced to its lexical cues, the lemmas its nodes require (``{lemma:/no/}``;
  a node constrained only by its edge gets the words of that edge: ``neg`` -> no / not, ``conj:or`` -> or). A
  pattern fires on a mention when every cue occurs in the mention's clause within a few words, on the side of the
  mention that the edge implies in English: determiners, negators and other dependents of a noun come before it
  (``no effusion``), a subject comes before its predicate (``heart size is normal``), an object or a prepositional
  complement comes after its head (``history of fracture``); nested nodes may sit on either side. A dependency
  edge never leaves its sentence and rarely crosses "but" or ";", hence the clause window. Coordinated mentions
  ("no effusion, consolidation or pneumothorax") share the cues before the first one, and a coordinated subject
  shares its predicate ("heart size and mediastinal contours are within normal limits"), as NegBio's propagation
  through ``conj`` edges does; a cue two edges or more away may be further ("no opacity to suggest pneumonia").
  The three files are tried in the labeler's order: pre-negation uncertainty, then negation, then post-negation
  uncertainty; the first that fires labels the mention.
- aggregation: exactly the labeler's rules: per observation, negative + uncertain -> uncertain, negative + positive ->
  positive, uncertain + positive -> positive; "chf" / "heart failure" mentioned positively or uncertainly also make
  Cardiomegaly uncertain; "No Finding" is positive when no mention other than a support device is positive or
  uncertain, and otherwise not mentioned (the labeler never labels it negative).

What a parse catches and a window does not (long-range scope, attachment across commas) is measured, not assumed:
:func:`agreement` scores the labeller against a CheXpert-labelled CSV such as the labeler's ``labeled_reports.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from medrag.config import load_config

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
Label = int | None
"""1 positive, 0 negative, -1 uncertain, None not mentioned (blank in the labeler's CSV)."""

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
CARDIOMEGALY = "Cardiomegaly"
ENLARGED_CARDIOMEDIASTINUM = "Enlarged Cardiomediastinum"
CHEXPERT_ORDER = (NO_FINDING, ENLARGED_CARDIOMEDIASTINUM, CARDIOMEGALY, "Lung Lesion", "Lung Opacity", "Edema",
                  "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                  "Fracture", SUPPORT_DEVICES)
"""The labeler's column order; observations found in other phrase files follow, alphabetically."""

PATTERN_FILES = {"pre_negation_uncertainty": UNCERTAIN, "negation": NEGATIVE, "post_negation_uncertainty": UNCERTAIN}
"""The pattern files in the order the labeler tries them, with the label each gives."""

WINDOW = 5
"""At most this many words between a mention and each of its cue words. Five covers "no evidence of focal
consolidation" and "heart size is within normal limits"; longer lists are reached through coordination."""
NESTED_WINDOW = 8
"""For a cue two or more edges away from the mention ("no" in "no focal opacity to suggest pneumonia")."""
CONJUNCT_WINDOW = 2
"""Words between a mention and a coordinating cue ("or", "versus"): the conjunction joins its neighbours only."""

DEPENDENCY_WORDS = {"neg": r"no|not|never|cannot|\w+n't", "conj:or": "or", "conj:versus": "versus|vs",
                    "conj:and.or": "or", "conj:negcc": "rather|instead", "conj:no": "no",
                    "nmod:without": "without", "cc": "and|or"}
"""Words that stand for an edge whose node has no lemma (``{} >{dependency:/neg/} {}``). Edges with no word of
their own (``case``, ``compound``, an empty ``{}``) add no cue."""
_CONJUNCTIONS = frozenset({"conj:or", "conj:versus", "conj:and.or", "conj:negcc", "conj:no", "cc"})

CLAUSE_BREAKS = frozenset({";", ":", "but", "however", "although", "though", "whereas", "which", "except",
                           "aside", "apart"})
"""Tokens that end a clause: a cue never reaches a mention across them."""
_COORDINATORS = frozenset({",", "and", "or", "nor"})
_NOT_IN_A_LIST = frozenset({"is", "are", "was", "were", "be", "been", "there", "with", "without", "of", "in", "to",
                            "for", "no", "not", "may", "could", "which"})
_PREDICATE_STARTS = frozenset({"is", "are", "was", "were", "appear", "appears", "remain", "remains", "seem",
                               "seems", "demonstrate", "demonstrates", "show", "shows"})
SUBJECT_SPAN = 10
"""At most this many tokens from a mention to the verb of the coordinated subject it opens."""
_IRREGULAR = {"is": "be", "are": "be", "was": "be", "were": "be", "been": "be", "being": "be", "am": "be",
              "seen": "see", "saw": "see", "has": "have", "had": "have", "shown": "show", "larger": "large"}
_AFTER_STOPS = frozenset({"with", "without", "otherwise"})
"""A cue after the mention never reaches back across these: in "cardiomegaly with normal vascularity" the "normal"
belongs to what follows "with", in "scarring, otherwise unremarkable" to the rest of the lungs."""
_FUNCTION_WORDS = frozenset({"no", "not", "or", "be", "may", "can"})
"""Never the lemma of a longer word ("notes" is not "not")."""
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")

Side = Literal["before", "after", "either"]


@dataclasses.dataclass(frozen=True)
class Cue:
    """One word a pattern requires near the mention: a lemma regex, the side of the mention it must be on, and how
    many words away it may be."""

    lemma: re.Pattern[str]
    side: Side
    window: int


@dataclasses.dataclass(frozen=True)
class Rule:
    """The lexical content of one Semgrex pattern: an optional lemma the mention must carry, and its cues."""

    target: re.Pattern[str] | None
    cues: tuple[Cue, ...]
    source: str
    """``file:line`` of the pattern, so a surprising label can be traced to the rule that made it."""


@dataclasses.dataclass(frozen=True)
class Mention:
    """One phrase match: the observation it names, the phrase (regex) and the text it matched."""

    observation: str
    phrase: str
    text: str
    tokens: tuple[int, ...]
    """Indices of the clause tokens the phrase covers."""


@dataclasses.dataclass(frozen=True)
class Labeller:
    """Phrase lists and lexicalised patterns of one labeler folder; call :meth:`label` on report text."""

    observations: tuple[str, ...]
    mentions: Mapping[str, tuple[re.Pattern[str], ...]]
    unmentions: Mapping[str, tuple[re.Pattern[str], ...]]
    rules: tuple[tuple[int, tuple[Rule, ...]], ...]
    """(label, rules) per pattern file, in the order they are tried."""
    skipped_patterns: tuple[str, ...]
    """Patterns with no lexical content (``{} < {dependency:/compound/} ({} > {dependency:/neg/} {})`` keeps its
    ``neg``; ``{} <{dependency:/conj:foo/} {}`` keeps nothing): recorded, never applied to every mention."""

    def label(self, text: str) -> dict[str, Label]:
        """Observation -> 1 / 0 / -1 / None for one report (the labeler reads the impression)."""
        found: dict[str, list[int]] = {}
        no_finding = True
        for mention, label, _ in self.mention_labels(text):
            observation = mention.observation
            if observation != SUPPORT_DEVICES and label != NEGATIVE:
                no_finding = False
            if observation == NO_FINDING:
                continue
            if label != NEGATIVE and mention.text in ("chf", "heart failure"):
                found.setdefault(CARDIOMEGALY, []).append(UNCERTAIN)
            found.setdefault(observation, []).append(label)
        if no_finding:
            found[NO_FINDING] = [POSITIVE]
        return {observation: _aggregate(found.get(observation, [])) for observation in self.observations}

    def mention_labels(self, text: str) -> list[tuple[Mention, int, str | None]]:
        """Every mention of the text with its own label and the ``file:line`` of the pattern that gave it (None:
        positive, no pattern fired), before aggregation: for tracing a report's labels."""
        labelled = []
        for sentence in _sentences(clean(text)):
            for clause in _clauses(sentence):
                mentions = self._mentions(clause)
                anchors = _coordination_anchors(clause, mentions)
                labelled += [(mention, *self._mention_label(clause, mention, anchors[mention]))
                             for mention in mentions]
        return labelled

    def _mentions(self, clause: list[tuple[str, int, int]]) -> list[Mention]:
        """Phrase matches in the clause, less those overlapping an unmention of the same observation."""
        text = " ".join(token for token, _, _ in clause)
        offsets = []
        position = 0
        for token, _, _ in clause:
            offsets.append((position, position + len(token)))
            position += len(token) + 1
        found = []
        for observation, phrases in self.mentions.items():
            blocked = [match.span() for pattern in self.unmentions.get(observation, ())
                       for match in pattern.finditer(text)]
            for pattern in phrases:
                for match in pattern.finditer(text):
                    start, end = match.span()
                    if start == end or any(start < b_end and end > b_start for b_start, b_end in blocked):
                        continue
                    tokens = tuple(i for i, (t_start, t_end) in enumerate(offsets) if t_start < end and t_end > start)
                    if tokens:
                        found.append(Mention(observation, pattern.pattern, match.group(0).strip(), tokens))
        return sorted(found, key=lambda mention: mention.tokens)

    def _mention_label(self, clause: list[tuple[str, int, int]], mention: Mention,
                       anchor: int) -> tuple[int, str | None]:
        """The label of the first pattern file with a rule that fires, as NegBio's detector tries them."""
        words = [token for token, _, _ in clause]
        positions = [position for _, position, _ in clause]
        for label, rules in self.rules:
            for rule in rules:
                target = _target_token(words, mention, rule.target)
                if target is not None and all(_cue_present(words, positions, target, anchor,
                                                           _shared_predicate_origin(words, target), cue)
                                              for cue in rule.cues):
                    return label, rule.source
        return POSITIVE, None


def _aggregate(labels: Sequence[int]) -> Label:
    """The labeler's conflict rules: uncertain beats negative, positive beats both."""
    if not labels:
        return None
    if POSITIVE in labels:
        return POSITIVE
    return UNCERTAIN if UNCERTAIN in labels else NEGATIVE


def clean(text: str) -> str:
    """The labeler's cleaning: lower case, "and/or" and "x/y" -> "or", a space after every period and comma."""
    text = re.sub("and/or", "or", text.lower())
    text = re.sub(r"(?<=[a-z])/(?=[a-z])", " or ", text)
    text = text.replace("..", ".").replace(".", ". ").replace(",", ", ")
    text = " ".join(text.split())
    return re.sub(r"\.\s+\.", ".", text)


def _sentences(text: str) -> list[str]:
    """Sentences of cleaned text: a dependency edge never crosses one, so neither does a cue."""
    return [part for part in re.split(r"(?<=[.?!])\s+", text) if part.strip(" .")]


def _clauses(sentence: str) -> list[list[tuple[str, int, int]]]:
    """Tokens of each clause as (token, word position, 1 if a word else 0); punctuation shares the position of the
    word before it, so distances count words."""
    clauses: list[list[tuple[str, int, int]]] = [[]]
    position = 0
    for match in _TOKEN.finditer(sentence):
        token = match.group(0)
        if token in CLAUSE_BREAKS:
            clauses.append([])
            continue
        is_word = int(token[0].isalnum())
        position += is_word
        clauses[-1].append((token, position, is_word))
    return [clause for clause in clauses if clause]


def _lemmas(word: str) -> set[str]:
    """The word and its plausible lemmas (suffixes off, an ``e`` put back), enough to meet a pattern's lemma."""
    forms = {word, _IRREGULAR.get(word, word)}
    for suffix in ("ies", "es", "s", "ed", "d", "ing", "ly"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            forms |= {stem, stem + "e", stem + "y" if suffix == "ies" else stem} - _FUNCTION_WORDS
    return forms


def _matches(lemma: re.Pattern[str], word: str) -> bool:
    """Whether the word, or one of its lemmas, is what a pattern's ``{lemma:/.../}`` asks for (whole-word match)."""
    return any(lemma.fullmatch(form) for form in _lemmas(word))


def _target_token(words: Sequence[str], mention: Mention, target: re.Pattern[str] | None) -> int | None:
    """The mention's token a pattern's first node stands on: the one carrying the required lemma, else the last (the
    head of an English noun phrase)."""
    if target is None:
        return mention.tokens[-1]
    return next((i for i in mention.tokens if _matches(target, words[i]) or target.search(words[i])), None)


def _cue_present(words: Sequence[str], positions: Sequence[int], target: int, anchor: int, subject_end: int,
                 cue: Cue) -> bool:
    """Whether a word matching the cue lies on its side of the mention, within its window. Cues before the mention
    may also be reached from the first member of its coordination (``anchor``), cues after it from the last word of
    the coordinated subject it belongs to (``subject_end``)."""
    for i, word in enumerate(words):
        if i == target or not word[0].isalnum() or not _matches(cue.lemma, word):
            continue
        before = [positions[origin] - positions[i] for origin in {target, anchor} if i < origin]
        after = [positions[i] - positions[origin] for origin in {target, subject_end}
                 if i > origin and not _AFTER_STOPS & set(words[target:i])]
        if cue.side in ("before", "either") and any(0 < gap <= cue.window for gap in before):
            return True
        if cue.side in ("after", "either") and any(0 < gap <= cue.window for gap in after):
            return True
    return False


def _shared_predicate_origin(words: Sequence[str], target: int) -> int:
    """The last word before the verb when the mention opens a coordinated subject ("heart size and mediastinal
    contours are within normal limits"): the conjuncts share the predicate, as NegBio's propagation lets them.
    Otherwise the mention itself."""
    for i in range(target + 1, min(len(words), target + SUBJECT_SPAN + 1)):
        if words[i] in _PREDICATE_STARTS:
            between = set(words[target + 1:i])
            return i - 1 if between & _COORDINATORS and not between & (_AFTER_STOPS | {"no", "not"}) else target
    return target


def _coordination_anchors(clause: list[tuple[str, int, int]], mentions: Sequence[Mention]) -> dict[Mention, int]:
    """Each mention's first conjunct: mentions joined only by commas, "and", "or" and up to two modifiers
    ("effusion, focal consolidation or pneumothorax") share the cues before the first of them."""
    anchors: dict[Mention, int] = {}
    previous: Mention | None = None
    for mention in mentions:
        anchor = mention.tokens[-1]
        if previous is not None and mention.tokens[0] > previous.tokens[-1]:
            between = [clause[i][0] for i in range(previous.tokens[-1] + 1, mention.tokens[0])]
            linkers = [word for word in between if word in _COORDINATORS]
            others = [word for word in between if word not in _COORDINATORS]
            if linkers and len(others) <= 2 and not _NOT_IN_A_LIST & set(others):
                anchor = anchors[previous]
        elif previous is not None and mention.tokens[0] <= previous.tokens[-1]:
            anchor = anchors[previous]  # overlapping phrases ("cardiac silhouette", "the heart") share their anchor
        anchors[mention] = anchor
        previous = mention
    return anchors


# --- reading the labeler's files --------------------------------------------------------------------------------------

_SEMGREX_TOKEN = re.compile(r"\{[^{}]*\}|[()&<>]|=\w+|\S")


@dataclasses.dataclass
class _Node:
    """A parsed Semgrex node: its attribute dict and its edges (operator, edge attributes, node)."""

    attributes: dict[str, str]
    edges: list[tuple[str, dict[str, str], _Node]] = dataclasses.field(default_factory=list)


def _attributes(braces: str) -> dict[str, str]:
    """``{lemma:/no/,tag:/VBN/}`` -> {"lemma": "no", "tag": "VBN"}."""
    return dict(re.findall(r"(\w+):/([^/]*)/", braces))


def _parse_semgrex(pattern: str) -> _Node:
    """A small recursive-descent reader of the NegBio Semgrex subset: nodes ``{...}``, edges ``<``/``>`` followed
    by the edge's attributes and a node or a parenthesised group, ``&`` (all edges are conjunctive), ``=name``."""
    tokens = [token for token in _SEMGREX_TOKEN.findall(pattern) if token != "&" and not token.startswith("=")]
    position = 0

    def node() -> _Node:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":
            head = node()
            if tokens[position] != ")":
                raise ValueError(f"expected ')' at token {position}")
            position += 1
        elif token.startswith("{"):
            head = _Node(_attributes(token))
        else:
            raise ValueError(f"expected a node or '(' at token {position - 1}, found {token!r}")
        while position < len(tokens) and tokens[position] in "<>":
            operator = tokens[position]
            edge = tokens[position + 1]
            if not edge.startswith("{"):
                raise ValueError(f"expected the edge's {{...}} after {operator!r}, found {edge!r}")
            position += 2
            head.edges.append((operator, _attributes(edge), node()))
        return head

    root = node()
    if position != len(tokens):
        raise ValueError(f"unexpected {tokens[position]!r} at token {position}")
    return root


def _side(operator: str, relations: str) -> Side:
    """Where the cue sits relative to the mention, from the edge between them (see the module docstring)."""
    sides = set()
    for relation in relations.split("|") if relations else [""]:
        if operator == ">":  # the cue depends on the mention
            sides.add("after" if relation.startswith(("nmod", "acl")) else
                      "either" if relation.startswith(("conj", "cc", "dep")) else "before")
        else:  # the mention depends on the cue
            sides.add("after" if relation in ("nsubj", "nsubjpass", "amod", "compound") else
                      "before" if relation.startswith(("dobj", "nmod")) else "either")
    return sides.pop() if len(sides) == 1 else "either"


def _cues(node: _Node, depth: int) -> list[Cue]:
    """The cue words of the nodes under ``node``: lemmas, or the words of their edge when a node has none."""
    cues = []
    for operator, edge, child in node.edges:
        relation = edge.get("dependency", "")
        side: Side = _side(operator, relation) if depth == 0 else "either"
        window = CONJUNCT_WINDOW if relation in _CONJUNCTIONS else WINDOW if depth == 0 else NESTED_WINDOW
        if "lemma" in child.attributes:
            cues.append(Cue(re.compile(child.attributes["lemma"]), side, window))
        elif relation in DEPENDENCY_WORDS:
            cues.append(Cue(re.compile(DEPENDENCY_WORDS[relation]), side, window))
        cues += _cues(child, depth + 1)
    return cues


def read_rules(path: Path) -> tuple[list[Rule], list[str]]:
    """The lexicalised rules of one pattern file, and the patterns that had no lexical content."""
    rules, skipped = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        pattern = line.strip()
        if not pattern or pattern.startswith("#") or pattern.startswith("'"):
            continue
        try:
            root = _parse_semgrex(pattern)
            target = re.compile(root.attributes["lemma"]) if "lemma" in root.attributes else None
            cues = tuple(_cues(root, 0))
        except (ValueError, IndexError, re.error) as error:
            raise ValueError(f"{path}:{number}: cannot read the Semgrex pattern {pattern!r} ({error}); fix the line "
                             "or comment it out with '#'") from error
        if target is None and not cues:
            skipped.append(f"{path.name}:{number}: {pattern}")
            continue
        rules.append(Rule(target, cues, f"{path.name}:{number}"))
    return rules, skipped


def _read_phrases(folder: Path) -> dict[str, tuple[re.Pattern[str], ...]]:
    """Observation (from the file name, as the labeler titles it) -> its phrases, compiled as the labeler uses them."""
    phrases: dict[str, tuple[re.Pattern[str], ...]] = {}
    for path in sorted(folder.glob("*.txt")):
        observation = path.stem.replace("_", " ").title()
        compiled = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                compiled.append(re.compile(line.strip().replace("_", " ")))
            except re.error as error:
                raise ValueError(f"{path}:{number}: the phrase {line.strip()!r} is not a valid regular expression "
                                 f"({error}); escape it") from error
        phrases[observation] = tuple(compiled)
    return phrases


def _heart_unmentions(mentions: Mapping[str, tuple[re.Pattern[str], ...]]) -> dict[str, tuple[re.Pattern[str], ...]]:
    """The positional unmentions the labeler adds in code: "over the heart", "in the left cardiac silhouette"...
    name a place, not a finding."""
    places = [f"{where}{side}" for where in ("over the", "overly the", "in the")
              for side in ("", " superior", " left", " right")]
    heart = [phrase.pattern for phrase in mentions.get(CARDIOMEGALY, ())
             if phrase.pattern not in ("cardiomegaly", "cardiac enlargement")]
    mediastinum = [phrase.pattern for phrase in mentions.get(ENLARGED_CARDIOMEDIASTINUM, ())]
    return {CARDIOMEGALY: tuple(re.compile(f"{place} {phrase.replace('the ', '')}") for place in places
                                for phrase in heart),
            ENLARGED_CARDIOMEDIASTINUM: tuple(re.compile(f"{place} {phrase}") for place in places
                                              for phrase in mediastinum)}


def default_labeller_dir() -> Path:
    """``chexpert-labeler`` in the configured data dir (``MEDRAG_DATA_DIR``, default ``../shared/data``)."""
    return Path(load_config().data_dir) / "chexpert-labeler"


def load_labeller(folder: Path | None = None) -> Labeller:
    """The labeller of a CheXpert-labeler folder: ``phrases/mention/*.txt``, ``phrases/unmention/*.txt`` and the
    three ``patterns/*.txt`` files (any content in those formats); by default the one in the data dir."""
    return _load_labeller(Path(folder) if folder else default_labeller_dir())


@functools.cache
def _load_labeller(folder: Path) -> Labeller:
    """Read once per folder: the suite labels thousands of texts with one labeller."""
    mention_dir, unmention_dir = folder / "phrases" / "mention", folder / "phrases" / "unmention"
    if not mention_dir.is_dir() or not any(mention_dir.glob("*.txt")):
        raise FileNotFoundError(f"{mention_dir} has no <observation>.txt phrase lists; pass the chexpert-labeler "
                                "folder (the one holding phrases/ and patterns/)")
    mentions = _read_phrases(mention_dir)
    unmentions = _read_phrases(unmention_dir) if unmention_dir.is_dir() else {}
    for observation, extra in _heart_unmentions(mentions).items():
        unmentions[observation] = unmentions.get(observation, ()) + extra
    rules, skipped = [], []
    for stem, label in PATTERN_FILES.items():
        path = folder / "patterns" / f"{stem}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the labeller needs the three CheXpert pattern files "
                                    f"({', '.join(f'{name}.txt' for name in PATTERN_FILES)}) in {folder / 'patterns'}")
        file_rules, file_skipped = read_rules(path)
        rules.append((label, tuple(file_rules)))
        skipped += file_skipped
    known = [name for name in CHEXPERT_ORDER if name in mentions or name == NO_FINDING]
    observations = tuple(known + sorted(set(mentions) - set(known)))
    return Labeller(observations, mentions, unmentions, tuple(rules), tuple(skipped))


# --- agreement with a labelled CSV -----------------------------------------------------------------------------------

def read_labelled_reports(path: Path) -> tuple[list[str], list[dict[str, Label]]]:
    """Reports and gold labels of a CSV in the labeler's output format: a ``Reports`` column, then one column per
    observation holding 1.0 / 0.0 / -1.0 or blank."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "Reports" not in rows[0]:
        raise ValueError(f"{path}: expected a header with a 'Reports' column and one column per observation, as in "
                         "the CheXpert labeler's labeled_reports.csv")
    texts, labels = [], []
    for number, row in enumerate(rows, start=2):
        texts.append(row.pop("Reports") or "")
        try:
            labels.append({name: None if not (value or "").strip() else int(float(value)) for name, value in
                           row.items()})
        except ValueError as error:
            raise ValueError(f"{path}: row {number}: labels must be 1.0, 0.0, -1.0 or blank ({error})") from error
    return texts, labels


def positive_f1(truth: Iterable[Label], predicted: Iterable[Label]) -> dict[str, float | int | None]:
    """Precision, recall and F1 of "positive" (label 1) with the counts behind them; None where undefined."""
    pairs = list(zip(truth, predicted, strict=True))
    true_positive = sum(t == POSITIVE and p == POSITIVE for t, p in pairs)
    predicted_positive = sum(p == POSITIVE for _, p in pairs)
    actual_positive = sum(t == POSITIVE for t, _ in pairs)
    precision = true_positive / predicted_positive if predicted_positive else None
    recall = true_positive / actual_positive if actual_positive else None
    f1 = (2 * true_positive / (predicted_positive + actual_positive)) if predicted_positive + actual_positive else None
    return {"precision": precision, "recall": recall, "f1": f1, "true_positive": true_positive,
            "predicted_positive": predicted_positive, "actual_positive": actual_positive}


def agreement(labeller: Labeller, labelled_csv: Path) -> dict[str, Any]:
    """Per observation: accuracy over the four classes (1, 0, -1, blank) and positive F1 against the gold CSV, and
    both pooled over all observations; with every disagreement, for reading."""
    texts, gold = read_labelled_reports(labelled_csv)
    predicted = [labeller.label(text) for text in texts]
    missing = [name for name in labeller.observations if name not in gold[0]] if gold else []
    if missing:
        raise ValueError(f"{labelled_csv}: no column for {', '.join(missing)}; the CSV must have one column per "
                         "observation of the phrase lists")
    per_observation = {}
    for name in labeller.observations:
        truth = [row[name] for row in gold]
        guess = [row[name] for row in predicted]
        per_observation[name] = {"accuracy": sum(t == p for t, p in zip(truth, guess, strict=True)) / len(truth),
                                 **positive_f1(truth, guess)}
    all_truth = [row[name] for row in gold for name in labeller.observations]
    all_guess = [row[name] for row in predicted for name in labeller.observations]
    disagreements = [{"report": text, "observation": name, "gold": truth[name], "labeller": guess[name]}
                     for text, truth, guess in zip(texts, gold, predicted, strict=True)
                     for name in labeller.observations if truth[name] != guess[name]]
    return {"file": str(labelled_csv), "reports": len(texts), "cells": len(all_truth),
            "accuracy": sum(t == p for t, p in zip(all_truth, all_guess, strict=True)) / max(len(all_truth), 1),
            "positive": positive_f1(all_truth, all_guess), "per_observation": per_observation,
            "disagreements": disagreements}


IU_MESH_TERMS = {
    NO_FINDING: ("normal",), CARDIOMEGALY: ("Cardiomegaly",), "Lung Lesion": ("Nodule", "Mass"),
    "Lung Opacity": ("Opacity", "Airspace Disease", "Infiltrate"), "Edema": ("Pulmonary Edema", "Edema"),
    "Consolidation": ("Consolidation",), "Pneumonia": ("Pneumonia",), "Atelectasis": ("Pulmonary Atelectasis",),
    "Pneumothorax": ("Pneumothorax",), "Pleural Effusion": ("Pleural Effusion",), "Fracture": ("Fractures, Bone",),
    SUPPORT_DEVICES: ("Catheters, Indwelling", "Implanted Medical Device", "Tube, Inserted", "Medical Device",
                      "Stents"),
}
"""IU coders' MeSH major headings (the part before the first "/") that name a CheXpert observation as present.
Enlarged Cardiomediastinum and Pleural Other have no clean heading and are left out."""


def mesh_agreement(labeller: Labeller, texts: Sequence[str], mesh: Sequence[Sequence[str]]) -> dict[str, Any]:
    """A silver check on many reports: the labeller's "present" (positive or uncertain) against the IU coders' MeSH
    headings for the same report. The coders read the whole report and code what is there, not what is negated, so
    agreement is bounded by how the two conventions differ (a hedged finding, a finding coded under another heading);
    it catches gross errors (a negation missed everywhere) that four gold reports cannot."""
    predicted = [labeller.label(text) for text in texts]
    headings = [{term.split("/")[0].strip() for term in terms} for terms in mesh]
    per_observation = {}
    for name, terms in IU_MESH_TERMS.items():
        if name not in labeller.observations:
            continue
        truth = [POSITIVE if set(terms) & coded else None for coded in headings]
        guess = [POSITIVE if row[name] in (POSITIVE, UNCERTAIN) else None for row in predicted]
        agreeing = sum(t == g for t, g in zip(truth, guess, strict=True))
        per_observation[name] = {"accuracy": agreeing / max(len(truth), 1), **positive_f1(truth, guess)}
    return {"reports": len(texts), "mesh_headings": {name: list(terms) for name, terms in IU_MESH_TERMS.items()},
            "per_observation": per_observation}

