"""Grounding check: every sentence of an answer must be supported by an evidence sentence it cites.

Two judges of support, one rule they share. The rule: every number in the claim (doses, percentages, p-values)
must appear in the cited sentence, since a changed number is the classic way a fluent answer goes wrong, and a
sentence that speaks to an AI model never supports anything. The judges:

- ``ReaderSupport`` (the default): the reader is asked whether the sentence supports the claim and answers Yes or
  No; support is its probability of Yes. It reads the words, so a negated or reversed claim fails. No NLI or
  cross-encoder weights ship in any package, so the answer's own language model is the entailment model.
- ``CosineSupport``: the cosine between claim and sentence in the text encoder's space (0.6 from issue 7's
  calibration: restatements above, unrelated sentences below). Fast, but blind to "not" and to direction.

``medrag eval support`` measures both on real evidence sentences and their negated, reversed and
number-changed variants.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from medrag.config import AnswerConfig
from medrag.generate.evidence import EvidenceSentence
from medrag.lm.base import LanguageModel
from medrag.text.sentences import split_sentences
from medrag.types import Claim

MIN_SUPPORT = AnswerConfig().min_support
MIN_ENTAILMENT = AnswerConfig().min_entailment
SHORTLIST = 2
"""Evidence sentences the reader judges for a claim that cites none: the closest by cosine."""
ENTAILMENT_SYSTEM = (
    "You check citations in medical answers. Given one evidence sentence and one claim, answer Yes only if the "
    "evidence sentence states the claim or directly implies it. Answer No if the evidence does not mention it, "
    "says the opposite (a negation, or an effect in the other direction), or gives other numbers."
)
_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;\u2013-]\s*\d+)*)\s*\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_INSUFFICIENT = re.compile(
    r"\b(insufficient|not enough|no) (evidence|information)\b|\bcannot be (determined|answered)\b", re.IGNORECASE)
_BARE_DECISION = re.compile(r"^\W*(yes|no|maybe)\b\W*$", re.IGNORECASE)


@dataclasses.dataclass
class Grounding:
    claims: list[Claim]
    """Supported sentences, in the order written."""
    dropped: list[Claim]
    """Sentences removed because no evidence sentence supports them."""
    insufficient: bool
    """The writer itself said the evidence does not answer the question."""
    citations: int
    """(sentence, cited evidence) pairs as written."""
    supported_citations: int
    """Of those, pairs where the cited sentence supports the sentence (citation precision = this / citations)."""
    written: int
    """Sentences written (bare yes/no and "insufficient evidence" statements not counted)."""
    supported_as_written: int
    """Sentences supported by one of their own citations."""

    def counts(self) -> dict[str, int]:
        """The counts behind citation precision and the supported share (``Answer.grounding``)."""
        return {"citations": self.citations, "supported_citations": self.supported_citations,
                "sentences": self.written, "supported_sentences": self.supported_as_written}


def claims_with_citations(text: str) -> list[tuple[str, list[int]]]:
    """Split an answer into (sentence without citation marks, cited numbers); a citation standing alone after
    a full stop ("... effusion. [2]") belongs to the sentence before it."""
    claims: list[tuple[str, list[int]]] = []
    for sentence in split_sentences(text):
        numbers = [int(n) for group in _CITATION.findall(sentence) for n in _expand(group)]
        bare = " ".join(_CITATION.sub(" ", sentence).split())
        bare = re.sub(r"\s+([.,;:])", r"\1", bare)
        if not re.search(r"\w", bare) and claims:
            claims[-1][1].extend(numbers)
        elif re.search(r"\w", bare):
            claims.append((bare, numbers))
    return claims


def _expand(group: str) -> list[str]:
    numbers: list[str] = []
    for part in re.split(r"\s*[,;]\s*", group):
        bounds = re.split(r"\s*[\u2013-]\s*", part)
        if len(bounds) == 2 and int(bounds[0]) <= int(bounds[1]) <= int(bounds[0]) + 20:
            numbers += [str(n) for n in range(int(bounds[0]), int(bounds[1]) + 1)]
        else:
            numbers += bounds
    return numbers


def numbers_match(claim: str, sentence: EvidenceSentence) -> bool:
    """Every number of the claim appears in the sentence, and the sentence is evidence, not an instruction."""
    return not sentence.addresses_model and set(_NUMBER.findall(claim)) <= set(_NUMBER.findall(sentence.text))


class SupportJudge(Protocol):
    name: str
    threshold: float
    """Scores at or above it support."""

    def scores(self, claim: str, sentences: Sequence[EvidenceSentence]) -> list[float]:
        """How well each sentence supports the claim (0 when the shared rule fails)."""
        ...

    def shortlist(self, claim: str, evidence: Sequence[EvidenceSentence]) -> list[EvidenceSentence]:
        """The sentences worth judging for a claim that cites none."""
        ...


class CosineSupport:
    """Support is the claim-sentence cosine in the text encoder's space."""

    name = "cosine"

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], threshold: float = MIN_SUPPORT) -> None:
        self.encode = encode
        self.threshold = threshold

    def scores(self, claim: str, sentences: Sequence[EvidenceSentence]) -> list[float]:
        vector = self.encode([claim])[0]
        return [float(vector @ s.vector) if numbers_match(claim, s) else 0.0 for s in sentences]

    def shortlist(self, claim: str, evidence: Sequence[EvidenceSentence]) -> list[EvidenceSentence]:
        return list(evidence)


class ReaderSupport:
    """Support is the reader's probability of "Yes" to "does this sentence support the claim?"."""

    name = "reader entailment"

    def __init__(self, model: LanguageModel, encode: Callable[[Sequence[str]], np.ndarray],
                 threshold: float = MIN_ENTAILMENT) -> None:
        self.model = model
        self.encode = encode
        self.threshold = threshold

    def prompt(self, claim: str, sentence: str) -> str:
        # The sentence comes first: claims citing the same sentence share the evaluated prefix.
        clean = self.model.sanitize
        return self.model.prompt(ENTAILMENT_SYSTEM, f"Evidence: {clean(sentence)}\nClaim: {clean(claim)}\n"
                                                    "Does the evidence support the claim? Answer Yes or No.")

    def scores(self, claim: str, sentences: Sequence[EvidenceSentence]) -> list[float]:
        return [self.model.option_probabilities(self.prompt(claim, s.text), ["Yes", "No"])[0]
                if numbers_match(claim, s) else 0.0 for s in sentences]

    def shortlist(self, claim: str, evidence: Sequence[EvidenceSentence]) -> list[EvidenceSentence]:
        if not evidence:
            return []
        closeness = np.stack([s.vector for s in evidence]) @ self.encode([claim])[0]
        return [evidence[i] for i in np.argsort(-closeness)[:SHORTLIST]]


def check(text: str, evidence: Sequence[EvidenceSentence], judge: SupportJudge) -> Grounding:
    """Keep the sentences of ``text`` that evidence supports; an uncited supported sentence gets the citation of
    its best-supporting evidence sentence (noted), an unsupported one is dropped."""
    by_number = {sentence.number: sentence for sentence in evidence}
    parsed = claims_with_citations(text)
    insufficient = any(_INSUFFICIENT.search(claim) for claim, _ in parsed)
    parsed = [(claim, cited) for claim, cited in parsed
              if not _INSUFFICIENT.search(claim) and not _BARE_DECISION.match(claim)]
    kept: list[Claim] = []
    dropped: list[Claim] = []
    citations = supported_citations = supported_as_written = 0
    for claim, cited in parsed:
        known = [n for n in dict.fromkeys(cited) if n in by_number]
        scores = dict.fromkeys(cited, 0.0) | dict(zip(known, judge.scores(claim, [by_number[n] for n in known]),
                                                      strict=True))
        good = [n for n, score in scores.items() if score >= judge.threshold]
        citations += len(scores)
        supported_citations += len(good)
        supported_as_written += bool(good)
        if good:
            kept.append(Claim(claim, good, max(scores[n] for n in good), True))
            continue
        candidates = judge.shortlist(claim, evidence)
        overall = dict(zip((s.number for s in candidates), judge.scores(claim, candidates), strict=True))
        best = max(overall, key=overall.__getitem__, default=None)
        if best is not None and overall[best] >= judge.threshold:
            kept.append(Claim(claim, [best], overall[best], True, note=f"citation [{best}] added by the check"))
        else:
            reason = "no citation" if not scores else "the cited evidence does not support it"
            dropped.append(Claim(claim, list(scores), max(scores.values(), default=0.0), False, note=reason))
    return Grounding(kept, dropped, insufficient, citations, supported_citations, len(parsed), supported_as_written)
