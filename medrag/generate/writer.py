"""Write the answer to one searched request with an answer strategy: extractive (quote the best evidence
sentences), generative (the language model writes from the numbered evidence and the grounding check keeps what
is supported), or one registered with ``register_strategy``.

Every strategy cites the same numbered evidence, every answer says "insufficient evidence" when no evidence
sentence is relevant enough (the strategy is then not called), and no text inside the evidence acts as an
instruction or as support. The writer owns the models the strategies share (loaded on first use).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from medrag.config import Config
from medrag.generate.decision import (
    DecisionModel,
    decision_evidence,
    decision_from,
    is_yes_no_question,
    reader_scores,
)
from medrag.generate.evidence import Encode, EvidenceSentence, gather_evidence
from medrag.generate.grounding import CosineSupport, Grounding, ReaderSupport, SupportJudge, check
from medrag.generate.prompt import build_prompt
from medrag.lm.base import GenerationSettings, LanguageModel, renormalised
from medrag.lm.load import load_language_model
from medrag.sources import citation_label
from medrag.types import INSUFFICIENT, Answer, Citation, Claim, Decision, SearchResult


@dataclasses.dataclass
class AnswerTask:
    """One request for a strategy: the question and note as de-identified, and the evidence it may cite."""

    question: str
    note: str
    evidence: list[EvidenceSentence]
    """Every numbered evidence sentence (for the decision)."""
    relevant: list[EvidenceSentence]
    """Those an answer may use (never empty when a strategy writes)."""
    on_token: Callable[[str], None] | None
    timings: dict[str, float]
    """Milliseconds per step the strategy took (``generate``, ``ground``, ...), filled by the strategy."""


@dataclasses.dataclass
class Drafted:
    grounding: Grounding
    """The claims with their citations (numbers of ``AnswerTask.evidence``), and what was dropped."""
    generator: str
    """Shown as ``Answer.models["generator"]``."""
    tokens: int = 0
    """Tokens a language model generated."""
    written: str = ""
    """What a language model wrote, before the grounding check."""


class AnswerStrategy(Protocol):
    """How an answer is written. The yes / no / maybe decision is not the strategy's: the writer's decider reads
    the same evidence whichever strategy writes."""

    def write(self, task: AnswerTask) -> Drafted: ...


StrategyFactory = Callable[["AnswerWriter"], AnswerStrategy]
"""Builds a strategy from the writer, whose models (``language_model``, ``decision_model``) it may share."""
AUTO = "auto"
_STRATEGIES: dict[str, StrategyFactory] = {}
_GENERATOR_ALIASES = {"lm": "generative"}
"""Routing-table ``generator`` values that name a strategy differently."""


def register_strategy(name: str, factory: StrategyFactory, *, replace: bool = False) -> None:
    """Make ``mode=name`` (and a routing-table ``generator: name``) answer with ``factory(writer)``."""
    if name == AUTO or (name in _STRATEGIES and not replace):
        raise ValueError(f"answer strategy {name!r} is reserved or already registered; pass replace=True to "
                         "redefine a registered one")
    _STRATEGIES[name] = factory


def unregister_strategy(name: str) -> None:
    _STRATEGIES.pop(name, None)


def modes() -> tuple[str, ...]:
    """``auto`` and every registered strategy."""
    return (AUTO, *_STRATEGIES)


def resolve_mode(mode: str, generator: str | None) -> str:
    """``auto`` follows the routing table's ``generator`` for the intent (``lm`` = generative); an unknown table
    value falls back to extractive."""
    if mode not in modes():
        raise ValueError(f"mode {mode!r} is not one of {', '.join(modes())}")
    if mode != AUTO:
        return mode
    chosen = _GENERATOR_ALIASES.get(generator or "", generator)
    return chosen if chosen in _STRATEGIES else "extractive"


def extractive_claims(relevant: Sequence[EvidenceSentence], most: int = 3, near_duplicate: float = 0.9
                      ) -> list[Claim]:
    """The first distinct sentences (fusion's order), grouped by source and in text order within a source."""
    chosen: list[EvidenceSentence] = []
    for sentence in relevant:
        if len(chosen) < most and all(float(sentence.vector @ c.vector) < near_duplicate for c in chosen):
            chosen.append(sentence)
    sources = list(dict.fromkeys(s.source_id for s in chosen))
    chosen.sort(key=lambda s: (sources.index(s.source_id), s.sentence_index))
    return [Claim(s.text, [s.number], 1.0, True) for s in chosen]


class Extractive:
    """Quote the best distinct evidence sentences."""

    generator = "extractive (quoted evidence sentences)"

    def __init__(self, writer: AnswerWriter) -> None:
        self.writer = writer

    def write(self, task: AnswerTask) -> Drafted:
        settings = self.writer.config.answer
        claims = extractive_claims([s for s in task.relevant if not s.addresses_model],
                                   settings.extractive_sentences, settings.near_duplicate)
        return Drafted(Grounding(claims, [], not claims, *[len(claims)] * 4), self.generator)


class Generative:
    """The language model writes from the numbered evidence; the grounding check keeps what is supported."""

    def __init__(self, writer: AnswerWriter) -> None:
        self.writer = writer

    def write(self, task: AnswerTask) -> Drafted:
        model = self.writer.language_model
        settings = self.writer.settings
        prompt, shown = build_prompt(model, task.question, task.note, task.relevant, settings.max_new_tokens)
        generated = model.generate(prompt, settings, on_token=task.on_token)
        task.timings["generate"] = generated.seconds * 1000
        stamp = time.perf_counter()
        grounding = check(generated.text, shown, self.writer.support_judge)
        task.timings["ground"] = (time.perf_counter() - stamp) * 1000
        return Drafted(grounding, model.name, generated.tokens, generated.text)


register_strategy("extractive", Extractive)
register_strategy("generative", Generative)


class AnswerWriter:
    """Holds the language model (loaded on the first generative answer) and the decision model. One thread at a
    time: the Assistant serialises requests."""

    def __init__(self, config: Config, encode: Encode, dim: int,
                 settings: GenerationSettings | None = None) -> None:
        self.config = config
        self.encode = encode
        self.dim = dim
        self.settings = settings or GenerationSettings(max_new_tokens=config.max_new_tokens,
                                                       temperature=config.temperature)
        self._strategies: dict[str, AnswerStrategy] = {}

    @functools.cached_property
    def language_model(self) -> LanguageModel:
        return load_language_model(self.config.generator_model, self.config.cache_dir, self.config.generator_threads)

    @functools.cached_property
    def support_judge(self) -> SupportJudge:
        """The grounding check's judge of support (``answer.support_check``)."""
        settings = self.config.answer
        if settings.support_check == "reader":
            return ReaderSupport(self.language_model, self.encode, settings.min_entailment)
        if settings.support_check == "cosine":
            return CosineSupport(self.encode, settings.min_support)
        raise ValueError(f"answer.support_check is {settings.support_check!r}; set it to 'reader' or 'cosine' "
                         "(MEDRAG_ANSWER_SUPPORT_CHECK)")

    @functools.cached_property
    def decision_model(self) -> DecisionModel | None:
        try:
            return DecisionModel.load(self.config.decision_model)
        except FileNotFoundError:
            if self.config.decision_model is not None:
                raise
            return None

    def evidence(self, result: SearchResult) -> tuple[list[EvidenceSentence], list[EvidenceSentence]]:
        """The numbered evidence sentences of a searched request, and those an answer may use: all of them, or
        none when the request asks a question that no sentence addresses (``config.min_relevance``)."""
        query = result.query
        anchor = query.question or query.note  # relevance is to the question; without one, to the note
        query_vector = self.encode([anchor])[0] if anchor else None
        selected = result.fusion.selected if result.fusion else None
        evidence = gather_evidence(result.evidence, selected, query_vector, self.encode, self.dim,
                                   self.config.evidence_sentences)
        # A note or an image alone asks nothing that could be unanswerable: its answer is the closest evidence.
        answerable = not query.question or any(s.relevance >= self.config.min_relevance for s in evidence)
        return evidence, evidence if answerable else []

    def strategy(self, mode: str) -> AnswerStrategy:
        """The strategy registered as ``mode`` (not ``auto``), built once per writer."""
        if mode not in self._strategies:
            if mode not in _STRATEGIES:
                raise ValueError(f"mode {mode!r} is not one of {', '.join(modes())}")
            self._strategies[mode] = _STRATEGIES[mode](self)
        return self._strategies[mode]

    def __call__(self, result: SearchResult, mode: str, on_token: Callable[[str], None] | None = None) -> Answer:
        query = result.query
        started = time.perf_counter()
        timings: dict[str, float] = {}
        mode = resolve_mode(mode, result.route.models.get("generator"))
        strategy = self.strategy(mode)
        evidence, relevant = self.evidence(result)
        warnings = [f"evidence [{s.number}] ({s.collection} {s.source_id}) reads as an instruction to an AI "
                    "model; it was treated as data and not used as support" for s in evidence if s.addresses_model]
        task = AnswerTask(query.question, query.note, evidence, relevant, on_token, timings)
        if relevant:
            drafted = strategy.write(task)
        else:  # nothing relevant to write from: no strategy (and no language model) is asked to guess
            drafted = Drafted(Grounding([], [], True, 0, 0, 0, 0), "none: no evidence relevant enough to write from")
        models = {"generator": drafted.generator}
        stamp = time.perf_counter()
        decision = self.decide(result, models) if drafted.grounding.claims else None
        timings["decide"] = (time.perf_counter() - stamp) * 1000
        answer = _assemble(drafted.grounding, evidence, mode, decision, result, models, warnings)
        timings["answer"] = (time.perf_counter() - started) * 1000 - sum(timings.values())
        answer.timings_ms = {**result.timings_ms, **timings}
        answer.tokens = drafted.tokens
        answer.written = drafted.written
        return answer


    def decide(self, result: SearchResult, models: dict[str, str]) -> Decision | None:
        """Yes / no / maybe for a yes/no question (None for any other question), read from the top-ranked source:
        the reader's scores through the trained decision model when it was trained on this reader, else the
        reader's own probabilities, marked as not measured. The decider is recorded in ``models``."""
        question = result.query.question
        if not question or not is_yes_no_question(question):
            return None
        reader = self.language_model
        scores = reader_scores(reader, question, decision_evidence(result))
        decider = self.decision_model
        if decider is not None and decider.fits(reader.name):
            models["decision"] = decider.name
            decision = decider(scores)
        else:
            models["decision"] = f"{reader.name} (zero-shot probabilities of yes / no / maybe)"
            reliability = ("not measured: the decision model was not trained on this reader's scores; run "
                           "`medrag train decision`" if decider
                           else "not measured; train one with `medrag train decision`")
            decision = decision_from(renormalised(scores), models["decision"], reliability)
        return dataclasses.replace(decision, reader_scores=tuple(float(score) for score in scores))


def _assemble(grounding: Grounding, evidence: Sequence[EvidenceSentence], mode: str, decision: Decision | None,
              result: SearchResult, models: dict[str, str], warnings: list[str]) -> Answer:
    """Renumber the citations in the order the answer first uses them and write the answer text."""
    by_number = {s.number: s for s in evidence}
    renumber: dict[int, int] = {}
    support: dict[int, float] = {}
    for claim in grounding.claims:
        for number in claim.cited:
            renumber.setdefault(number, len(renumber) + 1)
            support[number] = max(support.get(number, 0.0), claim.support)
    claims = [Claim(c.text, [renumber[n] for n in c.cited], c.support, c.supported, c.note) for c in grounding.claims]
    citations = [Citation(new, by_number[old].collection, by_number[old].source_id, by_number[old].text,
                          by_number[old].sentence_index, by_number[old].relevance, support[old],
                          citation_label(by_number[old].collection, by_number[old].source_id))
                 for old, new in renumber.items()]
    insufficient = not claims
    text = INSUFFICIENT if insufficient else " ".join(
        f"{_without_stop(c.text)} [{', '.join(map(str, c.cited))}]." for c in claims)
    return Answer(text, mode, insufficient, claims, citations, None if insufficient else decision, result, {},
                  models, grounding.dropped, grounding.counts(), warnings)


def _without_stop(sentence: str) -> str:
    return sentence.rstrip().rstrip(".").rstrip()

