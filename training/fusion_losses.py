"""Training losses of the fusion module: rerank, attention supervision (R6), sentence selection, bottleneck.

``fusion_loss`` returns every term and their weighted total:

- rerank: listwise cross-entropy of the candidate scores against the relevant candidates, the target
  spread evenly over them when there are several, with label smoothing (R7) over the real candidates;
- attention (R6): -log of the attention mass the query as a whole (``FusionOutput.evidence_attention``)
  puts on the sentences known to be relevant. Every other real sentence is a negative: since that
  attention sums to 1, this is -log(relevant mass / (relevant mass + negative mass)), an InfoNCE over the
  attention logits with the relevant sentences as a positive set and the model's own temperature;
- sentence: binary cross-entropy of the sentence-selection scores, targets smoothed to eps/2 and 1 - eps/2;
- ib: the beta-weighted KL of the information bottleneck (the module computes it; 0 when it is off).

A query without any relevant candidate (or sentence) counts as unlabelled for that term and is left out
of its mean. Padding is read from the outputs: padded candidates and sentences score -inf.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from medrag.fuse.model import FusionBatch, FusionOutput


@dataclasses.dataclass(frozen=True)
class FusionLossConfig:
    label_smoothing: float = 0.1
    """R7: share of the rerank target spread over all real candidates (and the smoothing of sentence labels)."""
    rerank_weight: float = 1.0
    attention_weight: float = 0.5
    """R6: weight of the attention-supervision term; 0 turns it off."""
    sentence_weight: float = 0.5


@dataclasses.dataclass
class FusionTargets:
    relevant_candidates: Tensor
    """(B, C) bool."""
    relevant_sentences: Tensor
    """(B, E) bool, in the evidence layout of the batch (``make_targets`` builds it)."""


def make_targets(batch: FusionBatch, relevant_candidates: Sequence[Collection[int]],
                 relevant_sentences: Sequence[Collection[tuple[int, int]]] | None = None) -> FusionTargets:
    """Targets per query from candidate indices and (candidate, sentence) pairs; no sentences = unlabelled."""
    candidates = torch.zeros_like(batch.candidate_mask)
    for row, indices in enumerate(relevant_candidates):
        candidates[row, list(indices)] = True
    sentences = torch.zeros_like(batch.evidence_mask)
    for row, pairs in enumerate(relevant_sentences or []):
        for candidate, order in pairs:
            sentences[row] |= ((batch.evidence_candidate[row] == candidate) & (batch.evidence_order[row] == order)
                               & batch.evidence_mask[row])
    return FusionTargets(candidates & batch.candidate_mask, sentences)


def _mean_over(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``values`` where ``keep``; 0 (still in the graph) when nothing is kept."""
    return (values * keep).sum() / keep.sum().clamp_min(1)


def rerank_loss(scores: Tensor, relevant: Tensor, smoothing: float) -> Tensor:
    """Listwise cross-entropy over the real candidates of each query, multi-relevant and smoothed."""
    real = scores != -torch.inf
    relevant = relevant & real
    target = relevant / relevant.sum(1, keepdim=True).clamp_min(1)
    target = (1 - smoothing) * target + smoothing * real / real.sum(1, keepdim=True).clamp_min(1)
    log_probs = scores.log_softmax(dim=-1).masked_fill(~real, 0.0)
    return _mean_over(-(target * log_probs).sum(1), relevant.any(1))


def attention_supervision_loss(evidence_attention: Tensor, relevant: Tensor) -> Tensor:
    """R6: -log of the attention mass on the relevant sentences, over the queries that have any."""
    mass = (evidence_attention * relevant).sum(1)
    return _mean_over(-mass.clamp_min(1e-8).log(), relevant.any(1))


def sentence_loss(scores: Tensor, relevant: Tensor, smoothing: float) -> Tensor:
    """Binary cross-entropy per real sentence, over the queries that have a relevant sentence."""
    real = scores != -torch.inf
    labels = relevant.float() * (1 - smoothing) + smoothing / 2
    per_sentence = F.binary_cross_entropy_with_logits(scores.masked_fill(~real, 0.0), labels, reduction="none")
    return _mean_over(per_sentence, real & relevant.any(1, keepdim=True))


def fusion_loss(output: FusionOutput, targets: FusionTargets, config: FusionLossConfig) -> dict[str, Tensor]:
    """Each term of the fusion loss and ``total`` = their weighted sum (the ib term is weighted by its betas)."""
    terms = {
        "rerank": rerank_loss(output.candidate_scores, targets.relevant_candidates, config.label_smoothing),
        "attention": attention_supervision_loss(output.evidence_attention, targets.relevant_sentences),
        "sentence": sentence_loss(output.sentence_scores, targets.relevant_sentences, config.label_smoothing),
        "ib": output.ib_kl if output.ib_kl is not None else output.fused.new_zeros(()),
    }
    terms["total"] = (config.rerank_weight * terms["rerank"] + config.attention_weight * terms["attention"]
                      + config.sentence_weight * terms["sentence"] + terms["ib"])
    return terms
