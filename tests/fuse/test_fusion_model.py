"""The fusion module: shapes, padding, independence of candidate scores, gradients per rule, determinism, maps."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from small_fusion import SMALL

from medrag.fuse import CrossAttentionFusion, FusionConfig, FusionExample, collate
from medrag.fuse.model import EVIDENCE_MODALITIES
from training.fusion_losses import FusionLossConfig, fusion_loss, make_targets

PATCHES = 9


def example(seed: int, sentences: tuple[int, ...] = (2, 3, 1), image: bool = True, text: int = 2,
            config: FusionConfig = SMALL, modality: str | None = None) -> FusionExample:
    """A query with random features; candidate c has sentences[c] sentences, modalities in turn unless given."""
    rng = np.random.default_rng(seed)
    candidates = [[(rng.normal(size=config.evidence_dim), modality or EVIDENCE_MODALITIES[(c + s) % 3])
                   for s in range(count)] for c, count in enumerate(sentences)]
    return FusionExample(candidates=candidates,
                         text=rng.normal(size=(text, config.text_dim)) if text else None,
                         image=rng.normal(size=(config.image_dim, *config.grid)) if image else None)


def build(config: FusionConfig = SMALL, seed: int = 0) -> CrossAttentionFusion:
    torch.manual_seed(seed)
    return CrossAttentionFusion(config).eval()


def test_outputs_have_the_documented_shapes_with_and_without_image_and_text():
    examples = [example(1, (2, 3, 1)), example(2, (4, 1, 1, 2, 2), image=False, text=3), example(3, (1,), text=0)]
    batch = collate(examples, SMALL)
    out = build()(batch)
    b, q, e, c = 3, PATCHES + 3, 10, 5
    assert out.candidate_scores.shape == (b, c)
    assert out.sentence_scores.shape == out.evidence_attention.shape == (b, e)
    assert out.fused.shape == (b, SMALL.d_model)
    assert out.attention.shape == (b, SMALL.heads, q, e)
    assert out.attention_mean.shape == (b, q, e)
    assert out.image_attention.shape == (b, e, 3, 3)
    assert out.text_attention.shape == (b, 3, e)
    assert out.gate.shape == (b,) and out.ib_kl is None
    assert torch.isinf(out.candidate_scores[0, 3:]).all() and torch.isfinite(out.candidate_scores[1]).all()
    assert torch.isinf(out.sentence_scores[2, 1:]).all() and torch.isfinite(out.sentence_scores[1]).all()
    assert 0 < out.gate[0] < 1 and out.gate[1] == 0 and out.gate[2] == 1, "no image -> 0, no text -> 1"
    assert (out.image_attention[1] == 0).all(), "no image, no heatmap"
    assert (out.text_attention[2] == 0).all(), "no text, no text attention"


def test_default_config_reads_an_efficientnet_feature_map_and_minilm_vectors():
    config = FusionConfig()
    query = example(4, (10,) * 50, config=config)
    flat = dataclasses.replace(query, image=np.asarray(query.image).reshape(1280, 49).T)
    batch, batch_flat = collate([query], config), collate([flat], config)
    assert torch.equal(batch.image, batch_flat.image), "(1280, 7, 7) map == (49, 1280) patches, row-major"
    out = build(config)(batch)
    assert out.candidate_scores.shape == (1, 50) and out.attention.shape == (1, 4, 49 + 2, 500)
    assert out.image_attention.shape == (1, 500, 7, 7)


def test_padding_never_changes_the_real_outputs():
    """Query A alone, then batched with a bigger query: more text tokens, candidates and sentences of padding."""
    model = build(dataclasses.replace(SMALL, ib_beta={"text/PubmedArticle": 0.1}))
    a, bigger = example(5, (2, 3, 1)), example(6, (3, 3, 3, 2, 4), text=5)
    alone, padded = model(collate([a], SMALL)), model(collate([a, bigger], SMALL))
    e, q = 6, PATCHES + 2
    pairs = {
        "candidate_scores": (alone.candidate_scores, padded.candidate_scores[:1, :3]),
        "sentence_scores": (alone.sentence_scores, padded.sentence_scores[:1, :e]),
        "fused": (alone.fused, padded.fused[:1]),
        "attention": (alone.attention, padded.attention[:1, :, :q, :e]),
        "evidence_attention": (alone.evidence_attention, padded.evidence_attention[:1, :e]),
        "image_attention": (alone.image_attention, padded.image_attention[:1, :e]),
        "text_attention": (alone.text_attention, padded.text_attention[:1, :2, :e]),
        "gate": (alone.gate, padded.gate[:1]),
    }
    for name, (expected, got) in pairs.items():
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=name)
    assert (padded.attention[0, :, q:] == 0).all() and (padded.attention[0, :, :, e:] == 0).all()
    assert torch.isinf(padded.candidate_scores[0, 3:]).all() and torch.isinf(padded.sentence_scores[0, e:]).all()


def test_a_candidate_score_depends_only_on_its_own_sentences():
    """Editing candidate 1 or adding a candidate moves only that score; the fused vector reads everything."""
    model = build()
    query = example(7, (2, 3, 1, 2))
    edited = dataclasses.replace(query, candidates=[*query.candidates])
    edited.candidates[1] = [(np.asarray(vector) + 1.0, modality) for vector, modality in query.candidates[1]]
    added = dataclasses.replace(query, candidates=[*query.candidates, example(8, (3,)).candidates[0]])
    before, after, more = (model(collate([q], SMALL)) for q in (query, edited, added))
    changed = (before.candidate_scores - after.candidate_scores).abs()[0]
    assert changed[1] > 1e-3 and changed[[0, 2, 3]].max() < 1e-6
    torch.testing.assert_close(more.candidate_scores[:, :4], before.candidate_scores, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(before.fused, after.fused), "the fused vector has read candidate 1"
    assert not torch.allclose(before.sentence_scores[:, :2], after.sentence_scores[:, :2]), (
        "sentence scores go through the fused vector, so they depend on all the evidence (documented)")


@pytest.mark.parametrize(("positions", "equivariant"), [("none", True), ("sinusoidal+learned", False)])
def test_candidate_rank_counts_only_with_position_encodings(positions, equivariant):
    model = build(dataclasses.replace(SMALL, positions=positions))
    query = example(9, (2, 2, 2, 2))
    reversed_query = dataclasses.replace(query, candidates=query.candidates[::-1])
    scores = model(collate([query], SMALL)).candidate_scores[0]
    reversed_scores = model(collate([reversed_query], SMALL)).candidate_scores[0].flip(0)
    assert torch.allclose(scores, reversed_scores, atol=1e-5) is equivariant


RULE_CONFIGS = {
    "all rules on, bottleneck on": dataclasses.replace(
        SMALL, ib_beta={"image/RadiologyReport": 0.1, "text/ImagingCase": 0.2}),
    "R1 off": dataclasses.replace(SMALL, modality_bias=False),
    "R2 mean": dataclasses.replace(SMALL, pooling="mean"),
    "R4 none": dataclasses.replace(SMALL, positions="none"),
    "R4 sinusoidal only": dataclasses.replace(SMALL, positions="sinusoidal"),
    "R4 learned only": dataclasses.replace(SMALL, positions="learned"),
}


@pytest.mark.parametrize("name", list(RULE_CONFIGS))
def test_gradients_reach_every_parameter_and_each_switch_removes_its_parameters(name):
    config = RULE_CONFIGS[name]
    model = build(config).train()
    batch = collate([example(10, (2, 3, 1)), example(11, (1, 2), image=False), example(12, (3, 3), text=0)], config)
    targets = make_targets(batch, [{0}, {1}, {0, 1}], [{(0, 1)}, {(1, 0)}, {(0, 2)}])
    out = model(batch)
    assert (out.gate is None) is (config.pooling == "mean") and (out.ib_kl is None) is (not config.ib_beta)
    fusion_loss(out, targets, FusionLossConfig())["total"].backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"{parameter_name} gets no gradient"
    names = {parameter_name for parameter_name, _ in model.named_parameters()}
    assert any("modality_bias" in n for n in names) is config.modality_bias
    assert any(n.startswith("gate.") for n in names) is (config.pooling == "gate")
    assert any("positions" in n for n in names) is ("learned" in config.positions)
    assert "cross.log_temperature" in names


def test_same_seed_gives_identical_outputs_and_eval_has_no_dropout():
    batch = collate([example(13), example(14, (1, 4), image=False)], SMALL)
    first, second = build(seed=3), build(seed=3)
    for left, right in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(left, right)
    assert torch.equal(first(batch).candidate_scores, first(batch).candidate_scores), "eval twice, same result"
    trained = []
    for model in (first.train(), second.train()):
        torch.manual_seed(99)
        trained.append(model(batch))
    assert torch.equal(trained[0].fused, trained[1].fused) and torch.equal(trained[0].sentence_scores,
                                                                          trained[1].sentence_scores)
    assert not torch.allclose(trained[0].fused, first.eval()(batch).fused), "dropout is active in training only"


def test_attention_rows_sum_to_one_over_real_evidence_and_are_zero_elsewhere():
    batch = collate([example(15, (2, 3, 1), text=1), example(16, (4, 4), image=False, text=3)], SMALL)
    out = build()(batch)
    query_mask = torch.cat([batch.image_mask, batch.text_mask], dim=1)
    row_sums = out.attention.sum(-1)
    torch.testing.assert_close(row_sums, query_mask[:, None, :].float().expand_as(row_sums))
    assert (out.attention.permute(0, 3, 1, 2)[~batch.evidence_mask] == 0).all()
    torch.testing.assert_close(out.evidence_attention.sum(-1), torch.ones(2))
    torch.testing.assert_close(out.attention_mean, out.attention.mean(1))


def _entropy(attention: torch.Tensor) -> torch.Tensor:
    return -(attention * attention.clamp_min(1e-12).log()).sum(-1)


def test_a_lower_temperature_sharpens_every_attention_row():
    model = build()
    batch = collate([example(17, (3, 3, 3))], SMALL)
    warm = model(batch).attention
    with torch.no_grad():
        model.cross.log_temperature.fill_(math.log(0.25))
    cold = model(batch).attention
    assert (_entropy(cold) <= _entropy(warm) + 1e-6).all() and _entropy(cold).mean() < _entropy(warm).mean() - 0.1


def test_modality_bias_moves_text_attention_onto_one_evidence_modality_only():
    """R1: a bias on (text, RadiologyReport) shifts the text tokens' attention and leaves the patches' alone."""
    model = build()
    batch = collate([example(18, (3, 3, 3))], SMALL)
    before = model(batch)
    report = EVIDENCE_MODALITIES.index("RadiologyReport")
    with torch.no_grad():
        model.cross.modality_bias[:, SMALL.query_modalities.index("text"), report] = 3.0
    after = model(batch)
    reports = batch.evidence_modality[0] == report
    assert after.text_attention[0][:, reports].sum() > before.text_attention[0][:, reports].sum() + 0.5
    torch.testing.assert_close(after.attention[:, :, :PATCHES], before.attention[:, :, :PATCHES])


def test_bottleneck_is_charged_only_for_pairs_with_a_beta():
    batch = collate([example(19, (2, 2))], SMALL)
    assert build()(batch).ib_kl is None
    kl = {beta: build(dataclasses.replace(SMALL, ib_beta={"text/PubmedArticle": beta}))(batch).ib_kl
          for beta in (0.1, 0.2)}
    assert kl[0.1] > 0
    torch.testing.assert_close(kl[0.2], 2 * kl[0.1])
    only_articles = collate([example(20, (2, 3), modality="PubmedArticle")], SMALL)
    absent = build(dataclasses.replace(SMALL, ib_beta={"image/ImagingCase": 1.0}))(only_articles).ib_kl
    assert absent == 0, "no ImagingCase evidence, nothing sent through that bottleneck"


def test_bad_configs_and_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="pooling"):
        FusionConfig(pooling="max")
    with pytest.raises(ValueError, match="ib_beta"):
        FusionConfig(ib_beta={"audio/PubmedArticle": 0.1})
    with pytest.raises(ValueError, match="multiple"):
        FusionConfig(d_model=30, heads=4)
    good = example(21)
    bad_inputs = {
        "features per token": dataclasses.replace(good, text=np.zeros((2, 5))),
        "image must be": dataclasses.replace(good, image=np.zeros((16, 4, 4))),
        "not in": dataclasses.replace(good, candidates=[[(np.zeros(12), "Tweet")]]),
        "candidate 0 has 0 sentences": dataclasses.replace(good, candidates=[[]]),
        "needs an image, text": dataclasses.replace(good, image=None, text=None),
    }
    for reason, query in bad_inputs.items():
        with pytest.raises(ValueError, match=reason):
            collate([query], SMALL)



def test_raw_text_similarity_is_the_best_token_cosine_and_zero_without_text():
    from medrag.fuse.model import text_similarity

    examples = [example(1, (2, 3)), example(2, (1, 2), text=0)]
    batch = collate(examples, SMALL)
    similarity = text_similarity(batch)
    text = torch.nn.functional.normalize(batch.text[0, :2], dim=-1)
    evidence = torch.nn.functional.normalize(batch.evidence[0, :5], dim=-1)
    torch.testing.assert_close(similarity[0, :5], (evidence @ text.T).amax(1))
    assert torch.all(similarity[1] == 0)
    with pytest.raises(ValueError, match="text_dim == evidence_dim"):
        dataclasses.replace(SMALL, text_dim=7)
    plain = dataclasses.replace(SMALL, sentence_similarity=False)
    assert build(plain).similarity_scale is None and build().similarity_scale is not None
