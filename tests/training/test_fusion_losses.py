"""Fusion losses: label smoothing, multi-relevant targets, R6 attention supervision, the bottleneck term, and
an overfitting sanity check on real PubMedQA questions and abstracts embedded with MiniLM."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from small_fusion import SMALL

from medrag.fuse import CrossAttentionFusion, FusionConfig, FusionExample, collate
from training.fusion_losses import (
    FusionLossConfig,
    attention_supervision_loss,
    fusion_loss,
    make_targets,
    rerank_loss,
    sentence_loss,
)

NEG = -math.inf


def _example(seed: int, sentences: tuple[int, ...]) -> FusionExample:
    rng = np.random.default_rng(seed)
    return FusionExample(candidates=[[(rng.normal(size=12), "PubmedArticle") for _ in range(n)] for n in sentences],
                         text=rng.normal(size=(2, 12)), image=rng.normal(size=(16, 3, 3)))


def test_label_smoothing_raises_the_loss_of_a_confident_right_ranking_and_lowers_a_wrong_one():
    right, wrong = torch.tensor([[8.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.0, 8.0, 0.0, 0.0]])
    relevant = torch.tensor([[True, False, False, False]])
    assert rerank_loss(right, relevant, 0.1) > rerank_loss(right, relevant, 0.0) + 0.1
    assert rerank_loss(wrong, relevant, 0.1) < rerank_loss(wrong, relevant, 0.0) - 0.1
    uniform = torch.zeros(1, 4)
    for smoothing in (0.0, 0.1):
        torch.testing.assert_close(rerank_loss(uniform, relevant, smoothing), torch.tensor(math.log(4)))


def test_several_relevant_candidates_share_the_target_and_padding_is_ignored():
    scores = torch.tensor([[6.0, 6.0, -6.0, -6.0, NEG, NEG]])
    relevant = torch.tensor([[True, True, False, False, False, False]])
    torch.testing.assert_close(rerank_loss(scores, relevant, 0.0), torch.tensor(math.log(2)), atol=1e-4, rtol=0)
    for smoothing in (0.0, 0.2):
        torch.testing.assert_close(rerank_loss(scores, relevant, smoothing),
                                   rerank_loss(scores[:, :4], relevant[:, :4], smoothing))


def test_queries_without_labels_are_left_out_of_the_mean():
    scores = torch.tensor([[3.0, 0.0, 1.0], [0.0, 5.0, NEG]])
    relevant = torch.tensor([[False, False, True], [False, False, False]])
    torch.testing.assert_close(rerank_loss(scores, relevant, 0.1), rerank_loss(scores[:1], relevant[:1], 0.1))
    assert attention_supervision_loss(torch.full((2, 3), 1 / 3), torch.zeros(2, 3, dtype=torch.bool)) == 0


def test_attention_supervision_is_lower_when_attention_is_on_the_relevant_sentences():
    relevant = torch.tensor([[True, False, False, False]])
    on_relevant = torch.tensor([[0.7, 0.1, 0.1, 0.1]])
    on_negatives = torch.tensor([[0.1, 0.3, 0.3, 0.3]])
    low, high = (attention_supervision_loss(attention, relevant) for attention in (on_relevant, on_negatives))
    assert low < high
    torch.testing.assert_close(low, torch.tensor(-math.log(0.7)))


def test_sentence_selection_rewards_the_right_sign_and_ignores_padding():
    relevant = torch.tensor([[True, False, False]])
    right, wrong = torch.tensor([[4.0, -4.0, NEG]]), torch.tensor([[-4.0, 4.0, NEG]])
    assert sentence_loss(right, relevant, 0.0) < 0.05 < 4 < sentence_loss(wrong, relevant, 0.0)
    torch.testing.assert_close(sentence_loss(right, relevant, 0.0), sentence_loss(right[:, :2], relevant[:, :2], 0.0))


def test_make_targets_follows_the_evidence_layout_of_collate():
    batch = collate([_example(1, (2, 3)), _example(2, (1,))], SMALL)
    targets = make_targets(batch, [{1}, {0}], [{(1, 2), (0, 0)}, set()])
    assert targets.relevant_candidates.tolist() == [[False, True], [True, False]]
    assert targets.relevant_sentences.tolist() == [[True, False, False, False, True], [False] * 5]


def test_bottleneck_term_is_zero_without_beta_and_in_the_total_with_one():
    batch = collate([_example(3, (2, 2, 1))], SMALL)
    targets = make_targets(batch, [{2}], [{(2, 0)}])
    config = FusionLossConfig()
    for beta in (0.0, 0.5):
        torch.manual_seed(0)
        model = CrossAttentionFusion(dataclasses.replace(SMALL, ib_beta={"image/PubmedArticle": beta})).eval()
        terms = fusion_loss(model(batch), targets, config)
        assert terms["ib"].item() > 0 if beta else terms["ib"].item() == 0
        expected = (config.rerank_weight * terms["rerank"] + config.attention_weight * terms["attention"]
                    + config.sentence_weight * terms["sentence"] + terms["ib"])
        torch.testing.assert_close(terms["total"], expected)


FIT_CONFIG = FusionConfig(d_model=64, image_dim=8, grid=(1, 1))
"""Text-only queries here, so a one-patch image stream keeps each step cheap."""


@pytest.fixture(scope="module")
def pubmedqa_problem(pubmedqa, text_encoder):
    """16 real PubMedQA questions, each with 5 candidate abstracts (its own and 4 others, in shuffled order).

    Each abstract section (CONTEXTS, up to 3) is one evidence sentence; the relevant candidate is the
    question's own abstract and its relevant sentence the section closest to the question in MiniLM space.
    """
    records = list(pubmedqa.values())[:16]
    questions = text_encoder.encode([record["QUESTION"] for record in records])
    sections = [record["CONTEXTS"][:3] for record in records]
    vectors = iter(text_encoder.encode([section for chosen in sections for section in chosen]))
    contexts = [np.stack([next(vectors) for _ in chosen]) for chosen in sections]
    rng = np.random.default_rng(0)
    examples, relevant, sentences = [], [], []
    for index, question in enumerate(questions):
        others = rng.choice([i for i in range(len(records)) if i != index], size=4, replace=False)
        order = rng.permutation([index, *others])
        position = int(np.flatnonzero(order == index)[0])
        candidates = [[(vector, "PubmedArticle") for vector in contexts[i]] for i in order]
        examples.append(FusionExample(candidates=candidates, text=question))
        relevant.append({position})
        sentences.append({(position, int(np.argmax(contexts[index] @ question)))})
    batch = collate(examples, FIT_CONFIG)
    return batch, make_targets(batch, relevant, sentences)


def test_a_few_hundred_adam_steps_fit_real_pubmedqa_reranking(pubmedqa_problem):
    batch, targets = pubmedqa_problem
    torch.manual_seed(0)
    model = CrossAttentionFusion(FIT_CONFIG)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    config = FusionLossConfig()
    history = []
    for _ in range(300):
        terms = fusion_loss(model(batch), targets, config)
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
        history.append({name: value.item() for name, value in terms.items()})
    out = model.eval()(batch)
    rows = torch.arange(len(out.fused))
    top1 = targets.relevant_candidates[rows, out.candidate_scores.argmax(1)].float().mean()
    assert history[-1]["rerank"] < 0.5 * history[0]["rerank"], history[::30]
    assert history[-1]["attention"] < history[0]["attention"]
    assert top1 == 1.0
    assert targets.relevant_sentences[rows, out.sentence_scores.argmax(1)].float().mean() > 0.8

