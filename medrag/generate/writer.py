"""Write the answer to one searched request: extractive (quote the best evidence sentences) or generative
(the language model writes from the numbered evidence and the grounding check keeps what is supported).

Both paths cite the same numbered evidence, both say "insufficient evidence" when no evidence sentence is
relevant enough, and neither lets text inside the evidence act as an instruction or as support.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from medrag.config import Config
from medrag.generate.answer import INSUFFICIENT, Answer, Citation
from medrag.generate.decision import Decision, DecisionModel, decision_features, decision_from, is_yes_no_question
from medrag.generate.evidence import Encode, EvidenceSentence, gather_evidence
from medrag.generate.grounding import Claim, Grounding, check
from medrag.generate.lm import GenerationSettings, LanguageModel
from medrag.generate.prompt import build_prompt

if TYPE_CHECKING:
    from medrag.assistant import SearchResult

MODES = ("auto", "extractive", "generative")
EXTRACTIVE_SENTENCES = 3
"""Evidence sentences an extractive answer quotes."""
_NEAR_DUPLICATE = 0.9


def resolve_mode(mode: str, generator: str | None) -> str:
    """``auto`` follows the routing table's ``generator`` for the intent (``lm`` = generative)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    return "generative" if generator == "lm" else "extractive"


def extractive_claims(relevant: Sequence[EvidenceSentence], most: int = EXTRACTIVE_SENTENCES) -> list[Claim]:
    """The first distinct sentences (fusion's order), grouped by source and in text order within a source."""
    chosen: list[EvidenceSentence] = []
    for sentence in relevant:
        if len(chosen) < most and all(float(sentence.vector @ c.vector) < _NEAR_DUPLICATE for c in chosen):
            chosen.append(sentence)
    sources = list(dict.fromkeys(s.source_id for s in chosen))
    chosen.sort(key=lambda s: (sources.index(s.source_id), s.sentence_index))
    return [Claim(s.text, [s.number], 1.0, True) for s in chosen]


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

    @functools.cached_property
    def language_model(self) -> LanguageModel:
        return LanguageModel.load(self.config.generator_model, self.config.cache_dir)

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

    def __call__(self, result: SearchResult, mode: str, on_token: Callable[[str], None] | None = None) -> Answer:
        query = result.query
        started = time.perf_counter()
        timings: dict[str, float] = {}
        mode = resolve_mode(mode, result.route.models.get("generator"))
        evidence, relevant = self.evidence(result)
        warnings = [f"evidence [{s.number}] ({s.collection} {s.source_id}) reads as an instruction to an AI "
                    "model; it was treated as data and not used as support" for s in evidence if s.addresses_model]
        tokens = 0
        if mode == "generative" and relevant:
            models = {"generator": self.language_model.name}
            grounding, tokens = self._generate(query.question, query.note, relevant, on_token, timings)
        else:  # extractive, or nothing relevant to write from: the language model is not asked to guess
            models = {"generator": "extractive (quoted evidence sentences)" if relevant or mode == "extractive"
                      else "none: no evidence relevant enough to write from"}
            claims = extractive_claims([s for s in relevant if not s.addresses_model])
            grounding = Grounding(claims, [], not claims, len(claims), len(claims), len(claims), len(claims))
        stamp = time.perf_counter()
        decision = self.decide(query.question, mode, evidence, relevant, models) if grounding.claims else None
        timings["decide"] = (time.perf_counter() - stamp) * 1000
        answer = _assemble(grounding, evidence, mode, decision, result, models, warnings)
        timings["answer"] = (time.perf_counter() - started) * 1000 - sum(timings.values())
        answer.timings_ms = {**result.timings_ms, **timings}
        answer.tokens = tokens
        return answer

    def _generate(self, question: str, note: str, relevant: Sequence[EvidenceSentence],
                  on_token: Callable[[str], None] | None, timings: dict[str, float]) -> tuple[Grounding, int]:
        model = self.language_model
        prompt, shown = build_prompt(model, question, note, relevant, self.settings.max_new_tokens)
        generated = model.generate(prompt, self.settings, on_token=on_token)
        timings["generate"] = generated.seconds * 1000
        stamp = time.perf_counter()
        grounding = check(generated.text, shown, self.encode)
        timings["ground"] = (time.perf_counter() - stamp) * 1000
        return grounding, generated.tokens

    def decide(self, question: str, mode: str, evidence: Sequence[EvidenceSentence],
                relevant: Sequence[EvidenceSentence], models: dict[str, str]) -> Decision | None:
        """Yes / no / maybe for a yes/no question: the language model's own in generative mode, else the trained
        decision model's (None without one). Records the decider in ``models``."""
        if not question or not is_yes_no_question(question):
            return None
        if mode == "generative":
            model = self.language_model
            prompt, _ = build_prompt(model, question, "", relevant, 1, decide=True)
            models["decision"] = f"{model.name} (probabilities of yes / no / maybe)"
            return decision_from(model.option_probabilities(prompt, ["Yes", "No", "Maybe"]), models["decision"],
                                 "zero-shot; measure it with `medrag eval answers`")
        if self.decision_model is None:
            return None
        models["decision"] = self.decision_model.name
        return self.decision_model(decision_features(self.encode([question])[0], evidence))


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
                          by_number[old].sentence_index, by_number[old].relevance, support[old])
                 for old, new in renumber.items()]
    insufficient = not claims
    text = INSUFFICIENT if insufficient else " ".join(
        f"{_without_stop(c.text)} [{', '.join(map(str, c.cited))}]." for c in claims)
    counts = {"citations": grounding.citations, "supported_citations": grounding.supported_citations,
              "sentences": grounding.written, "supported_sentences": grounding.supported_as_written}
    return Answer(text, mode, insufficient, claims, citations, None if insufficient else decision, result, {},
                  models, grounding.dropped, counts, warnings)


def _without_stop(sentence: str) -> str:
    return sentence.rstrip().rstrip(".").rstrip()

