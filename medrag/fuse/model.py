"""Position-aware cross-attention fusion of a query (image patches, note/question) with retrieved evidence.

Read top to bottom: the configuration, the padded batch a caller builds with ``collate``, the building
blocks (positions, attention), the module, and what it returns. The design rules (docs/DESIGN_RULES.md):

- R1 a learnable bias per (query modality, evidence modality) pair and head, added to the
  cross-attention scores before the softmax;
- R2 a sigmoid gate that decides per query how much the visual and how much the textual stream
  counts (or a plain mean of the two, for the ablation);
- R4 sinusoidal plus learned position encodings: the patch grid (row, column) for the image, token
  order for the text, (candidate rank, sentence order) for the evidence;
- a learnable temperature on the cross-attention softmax;
- R7 attention dropout and dropout (label smoothing is in ``training/fusion_losses.py``, like R6);
- an optional information bottleneck (beta per modality pair) on what each evidence modality sends to
  each query modality.

Tokens. Query tokens are the P image patches (in row-major grid order) followed by the T text tokens,
Q = P + T; a query without an image has its P patches masked, one without text its T tokens.
Evidence tokens are the E sentences of the C candidates, each with its candidate index (its rank in
retrieval), its order in the candidate and its modality (the collection it came from).

Scoring. One set of cross-attention logits l[h, q, e] (R1 bias and temperature included) feeds all
outputs. With w_q the R2 weights of the query tokens (the gate g spread over the image tokens, 1 - g
over the text tokens):
- candidate score c = sum_q w_q mean_h logsumexp_{e in c} l[h, q, e]. That is the log of the attention
  mass the query puts on candidate c, less the log of the softmax normaliser, a constant per query that
  changes neither the ranking nor a softmax over candidates. Dropping it makes the score depend on the
  candidate's own sentences and rank only: adding, removing or editing another candidate never changes
  it. The gate therefore reads the query before the evidence (after the self-attention).
- the fused query vector: the query tokens after the cross-attention over all the evidence (and an MLP),
  pooled with the same w;
- sentence score e = <W fused, evidence e> / sqrt(d): it depends on all the evidence through the fused
  vector (the query has read everything before it picks sentences); plus, with ``sentence_similarity``,
  a learned scale times the raw cosine of the sentence with its closest query text token.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

ArrayLike = np.ndarray | Tensor | Sequence[float] | Sequence[Sequence[float]]
EVIDENCE_MODALITIES = ("PubmedArticle", "RadiologyReport", "ImagingCase")
POSITION_KINDS = ("sinusoidal+learned", "sinusoidal", "learned", "none")
POOLINGS = ("gate", "mean")


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    """Everything that defines a fusion module, as data; each design rule has a switch for the ablations."""

    d_model: int = 128
    heads: int = 4
    layers: int = 1
    """Self-attention blocks over the query tokens before the cross-attention."""
    image_dim: int = 1280
    """Channels of the image feature map (EfficientNet-Lite0's last one: 1280 x 7 x 7 at 224 px)."""
    text_dim: int = 384
    evidence_dim: int = 384
    grid: tuple[int, int] = (7, 7)
    """Rows and columns of the image feature map: P = rows * columns patch tokens."""
    max_text_tokens: int = 32
    max_candidates: int = 128
    max_sentences: int = 64
    """Sentences per candidate: the size of the learned table of sentence order."""
    query_modalities: tuple[str, ...] = ("image", "text")
    evidence_modalities: tuple[str, ...] = EVIDENCE_MODALITIES
    modality_bias: bool = True
    """R1: a learnable bias per (query modality, evidence modality) pair and head on the cross-attention scores."""
    pooling: Literal["gate", "mean"] = "gate"
    """R2: "gate" mixes the visual and textual streams by a sigmoid gate per query, "mean" by halves."""
    positions: Literal["sinusoidal+learned", "sinusoidal", "learned", "none"] = "sinusoidal+learned"
    """R4: position encodings of both streams and of the evidence."""
    temperature: float = 1.0
    """Initial temperature of the cross-attention softmax; it is learned (as a log-temperature)."""
    attention_dropout: float = 0.1
    dropout: float = 0.1
    sentence_similarity: bool = True
    """Add the raw cosine between the query's text tokens and each sentence (the best token), times a learned
    scale, to the sentence scores: the module starts from what retrieval already knows and learns the rest.
    Needs text_dim == evidence_dim (one text encoder on both sides)."""
    ib_beta: dict[str, float] = dataclasses.field(default_factory=dict)
    """Information-bottleneck weight per "query modality/evidence modality" pair, e.g.
    ``{"image/PubmedArticle": 1e-3}``; pairs left out, or 0, have no bottleneck."""

    def __post_init__(self) -> None:
        if self.d_model % self.heads or self.d_model % 4:
            raise ValueError(f"d_model {self.d_model} must be a multiple of 4 and of heads ({self.heads})")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} is not one of {POOLINGS}")
        if self.positions not in POSITION_KINDS:
            raise ValueError(f"positions {self.positions!r} is not one of {POSITION_KINDS}")
        if not {"image", "text"} <= set(self.query_modalities):
            raise ValueError(f"query_modalities {self.query_modalities} must include 'image' and 'text'")
        if self.sentence_similarity and self.text_dim != self.evidence_dim:
            raise ValueError(f"sentence_similarity needs text_dim == evidence_dim, not {self.text_dim} and "
                             f"{self.evidence_dim}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")
        pairs = {f"{q}/{e}" for q in self.query_modalities for e in self.evidence_modalities}
        unknown = sorted(set(self.ib_beta) - pairs)
        if unknown:
            raise ValueError(f"ib_beta pairs {unknown} are not 'query modality/evidence modality' of {sorted(pairs)}")

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def beta_table(self) -> Tensor:
        """(query modalities, evidence modalities) information-bottleneck weights."""
        return torch.tensor([[float(self.ib_beta.get(f"{q}/{e}", 0.0)) for e in self.evidence_modalities]
                             for q in self.query_modalities])


# ---------------------------------------------------------------------------------------------------
# The batch: padded tensors, built from python lists by ``collate``.

Sentence = tuple[ArrayLike, str]
"""One evidence sentence: its vector (evidence_dim,) and its modality (a name in evidence_modalities)."""


@dataclasses.dataclass
class FusionExample:
    """One query and its retrieved candidates, in retrieval order; each candidate is a list of sentences."""

    candidates: Sequence[Sequence[Sentence]]
    text: ArrayLike | None = None
    """(T, text_dim) question/note vectors, or one (text_dim,) vector."""
    image: ArrayLike | None = None
    """(image_dim, rows, cols) feature map, or (P, image_dim) patches in row-major order."""


@dataclasses.dataclass
class FusionBatch:
    """B queries padded to a common size; every ``*_mask`` is True on real entries."""

    image: Tensor
    """(B, P, image_dim) patch features in row-major grid order, zeros where a query has no image."""
    image_mask: Tensor
    """(B, P) bool."""
    text: Tensor
    """(B, T, text_dim)."""
    text_mask: Tensor
    """(B, T) bool."""
    evidence: Tensor
    """(B, E, evidence_dim) sentence vectors, candidate after candidate."""
    evidence_mask: Tensor
    """(B, E) bool."""
    evidence_candidate: Tensor
    """(B, E) long: the candidate (0 .. C-1, its retrieval rank) each sentence belongs to."""
    evidence_order: Tensor
    """(B, E) long: the sentence's position within its candidate."""
    evidence_modality: Tensor
    """(B, E) long: index into ``FusionConfig.evidence_modalities``."""
    candidate_mask: Tensor
    """(B, C) bool."""


def _matrix(value: ArrayLike, dim: int, what: str) -> Tensor:
    """(N, dim) float32 from one vector, a matrix or a sequence of vectors (numpy, torch or lists)."""
    if isinstance(value, list | tuple):
        value = [np.asarray(row, dtype=np.float32) for row in value] or np.zeros((0, dim))
    array = np.atleast_2d(np.asarray(value, dtype=np.float32))
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"{what} must have {dim} features per token, got shape {np.shape(value)}")
    return torch.from_numpy(array)


def _patches(image: ArrayLike, config: FusionConfig) -> Tensor:
    """(P, image_dim) from a (image_dim, rows, cols) feature map or from patches already flattened."""
    array = np.asarray(image, dtype=np.float32)
    if array.shape == (config.image_dim, *config.grid):
        array = array.reshape(config.image_dim, -1).T
    if array.shape != (config.patches, config.image_dim):
        raise ValueError(f"image must be ({config.image_dim}, {config.grid[0]}, {config.grid[1]}) or "
                         f"({config.patches}, {config.image_dim}), got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _check_example(example: FusionExample, text: Tensor, config: FusionConfig) -> None:
    if example.image is None and not len(text):
        raise ValueError("a query needs an image, text, or both")
    if len(text) > config.max_text_tokens:
        raise ValueError(f"{len(text)} text tokens, more than max_text_tokens={config.max_text_tokens}")
    if not 0 < len(example.candidates) <= config.max_candidates:
        raise ValueError(f"{len(example.candidates)} candidates: need 1 to max_candidates={config.max_candidates}")
    for index, candidate in enumerate(example.candidates):
        if not 0 < len(candidate) <= config.max_sentences:
            raise ValueError(f"candidate {index} has {len(candidate)} sentences: "
                             f"need 1 to max_sentences={config.max_sentences}")


def collate(examples: Sequence[FusionExample], config: FusionConfig) -> FusionBatch:
    """Pad a list of queries with their candidates into one ``FusionBatch`` (float32, CPU)."""
    if not examples:
        raise ValueError("collate needs at least one example")
    texts = [_matrix(ex.text, config.text_dim, "text") if ex.text is not None else torch.zeros(0, config.text_dim)
             for ex in examples]
    for example, text in zip(examples, texts, strict=True):
        _check_example(example, text, config)
    size, width = len(examples), max(1, *(len(text) for text in texts))
    sentences = max(sum(len(candidate) for candidate in ex.candidates) for ex in examples)
    batch = FusionBatch(
        image=torch.zeros(size, config.patches, config.image_dim),
        image_mask=torch.zeros(size, config.patches, dtype=torch.bool),
        text=torch.zeros(size, width, config.text_dim),
        text_mask=torch.zeros(size, width, dtype=torch.bool),
        evidence=torch.zeros(size, sentences, config.evidence_dim),
        evidence_mask=torch.zeros(size, sentences, dtype=torch.bool),
        evidence_candidate=torch.zeros(size, sentences, dtype=torch.long),
        evidence_order=torch.zeros(size, sentences, dtype=torch.long),
        evidence_modality=torch.zeros(size, sentences, dtype=torch.long),
        candidate_mask=torch.zeros(size, max(len(ex.candidates) for ex in examples), dtype=torch.bool),
    )
    for row, (example, text) in enumerate(zip(examples, texts, strict=True)):
        if example.image is not None:
            batch.image[row], batch.image_mask[row] = _patches(example.image, config), True
        batch.text[row, : len(text)], batch.text_mask[row, : len(text)] = text, True
        batch.candidate_mask[row, : len(example.candidates)] = True
        _fill_evidence(batch, row, example.candidates, config)
    return batch


def _fill_evidence(batch: FusionBatch, row: int, candidates: Sequence[Sequence[Sentence]],
                   config: FusionConfig) -> None:
    modality_ids = {name: index for index, name in enumerate(config.evidence_modalities)}
    flat = [(c, s, vector, modality) for c, candidate in enumerate(candidates)
            for s, (vector, modality) in enumerate(candidate)]
    unknown = {modality for *_, modality in flat} - set(modality_ids)
    if unknown:
        raise ValueError(f"evidence modalities {sorted(unknown)} are not in {config.evidence_modalities}")
    count = len(flat)
    batch.evidence[row, :count] = _matrix([vector for _, _, vector, _ in flat], config.evidence_dim, "evidence")
    batch.evidence_mask[row, :count] = True
    batch.evidence_candidate[row, :count] = torch.tensor([c for c, *_ in flat])
    batch.evidence_order[row, :count] = torch.tensor([s for _, s, *_ in flat])
    batch.evidence_modality[row, :count] = torch.tensor([modality_ids[m] for *_, m in flat])


# ---------------------------------------------------------------------------------------------------
# Building blocks.

class Positions(nn.Module):
    """R4: integer positions along one or more axes -> sinusoids plus learned embeddings.

    Each axis gets an equal share of the sinusoid dimensions (the image grid: half for the row, half for
    the column) and its own learned table; the encodings are summed. "none" adds zeros, with no parameters.
    """

    def __init__(self, sizes: Sequence[int], d_model: int, kind: str) -> None:
        super().__init__()
        self.d_model = d_model
        self.sinusoidal = kind.startswith("sinusoidal")
        self.learned = nn.ModuleList(nn.Embedding(size, d_model) for size in sizes) if "learned" in kind else None
        axis_dim = d_model // len(sizes)
        self.register_buffer("frequencies", 10000.0 ** (-torch.arange(0, axis_dim, 2) / axis_dim), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """(..., axes) long -> (..., d_model) float."""
        encoding = self.frequencies.new_zeros(*positions.shape[:-1], self.d_model)
        if self.sinusoidal:
            angles = positions[..., None].float() * self.frequencies
            waves = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
            encoding = encoding + F.pad(waves, (0, self.d_model - waves.shape[-1]))
        if self.learned is not None:
            for axis, table in enumerate(self.learned):
                encoding = encoding + table(positions[..., axis])
        return encoding


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, d) -> (B, heads, N, d / heads)."""
    return x.view(*x.shape[:2], heads, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d / heads) -> (B, N, d)."""
    return x.transpose(1, 2).flatten(2)


def masked_softmax(logits: Tensor, key_mask: Tensor, query_mask: Tensor) -> Tensor:
    """Softmax over real keys; rows of padded queries and rows with no real key are all zeros (never NaN)."""
    probs = logits.masked_fill(~key_mask, torch.finfo(logits.dtype).min).softmax(dim=-1)
    return probs * key_mask * query_mask


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """(B, N, d), (B, N) -> (B, d): mean over the real tokens (zeros if there are none)."""
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)


def token_weights(visual_share: Tensor, image_mask: Tensor, text_mask: Tensor) -> Tensor:
    """(B, P + T) R2 pooling weights: the visual share spread evenly over the real image patches, the rest
    over the real text tokens; each row sums to 1."""
    image = visual_share[:, None] * image_mask / image_mask.sum(1, keepdim=True).clamp_min(1)
    text = (1 - visual_share)[:, None] * text_mask / text_mask.sum(1, keepdim=True).clamp_min(1)
    return torch.cat([image, text], dim=1)


def segment_logsumexp(values: Tensor, segments: Tensor, count: int) -> Tensor:
    """logsumexp of ``values`` (..., E) within each segment: (..., E) ids in [0, count) -> (..., count).

    Stabilised by each segment's own maximum, so a segment far below the others stays exact; an empty
    segment gets log(tiny), finite, so gradients stay finite wherever the caller masks it.
    """
    segments = segments.expand_as(values)
    shape = (*values.shape[:-1], count)
    peak = values.new_full(shape, -torch.inf).scatter_reduce(-1, segments, values.detach(), "amax")
    peak = peak.masked_fill(peak.isinf(), 0.0)
    total = values.new_zeros(shape).scatter_add(-1, segments, (values - peak.gather(-1, segments)).exp())
    return peak + total.clamp_min(torch.finfo(values.dtype).tiny).log()


class SelfAttention(nn.Module):
    """Masked multi-head self-attention over the query tokens (image patches and text together)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.attention_dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        q, k, v = (split_heads(part, self.heads) for part in self.qkv(x).chunk(3, dim=-1))
        logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        probs = masked_softmax(logits, mask[:, None, None, :], mask[:, None, :, None])
        return self.out(merge_heads(self.dropout(probs) @ v))


class MLP(nn.Module):
    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(config.d_model, 4 * config.d_model), nn.GELU(),
                                 nn.Linear(4 * config.d_model, config.d_model), nn.Dropout(config.dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class QueryBlock(nn.Module):
    """Pre-norm transformer block over the query tokens: self-attention, then an MLP."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.attention_norm, self.attention = nn.LayerNorm(config.d_model), SelfAttention(config)
        self.mlp_norm, self.mlp = nn.LayerNorm(config.d_model), MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return x + self.mlp(self.mlp_norm(x))


@dataclasses.dataclass
class CrossAttended:
    out: Tensor
    """(B, Q, d) what the query tokens read, projected back to d."""
    logits: Tensor
    """(B, H, Q, E) scores with the R1 bias, divided by the temperature, before any mask."""
    probs: Tensor
    """(B, H, Q, E) masked softmax of ``logits`` (before attention dropout)."""
    ib_kl: Tensor | None
    """() beta-weighted KL of the bottleneck, None when it is off."""


class CrossAttention(nn.Module):
    """Multi-head cross-attention from query tokens to evidence tokens.

    Written by hand rather than with ``nn.MultiheadAttention`` or ``scaled_dot_product_attention``: it
    adds the R1 bias per head and modality pair to the scores, divides by a learned temperature, returns
    the per-head maps and logits (the UI draws them, the rerank and R6 use them), and can put the
    information bottleneck on each evidence modality's message.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.query = nn.Linear(config.d_model, config.d_model)
        self.key_value = nn.Linear(config.d_model, 2 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.attention_dropout)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.temperature)))
        shape = (config.heads, len(config.query_modalities), len(config.evidence_modalities))
        self.modality_bias = nn.Parameter(torch.zeros(shape)) if config.modality_bias else None
        self.register_buffer("ib_beta", config.beta_table(), persistent=False)
        self.bottleneck = bool(self.ib_beta.any())

    def forward(self, x: Tensor, query_modality: Tensor, query_mask: Tensor,
                evidence: Tensor, evidence_modality: Tensor, evidence_mask: Tensor) -> CrossAttended:
        q = split_heads(self.query(x), self.heads)
        k, v = (split_heads(part, self.heads) for part in self.key_value(evidence).chunk(2, dim=-1))
        logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if self.modality_bias is not None:
            bias = self.modality_bias[:, query_modality[:, :, None], evidence_modality[:, None, :]]
            logits = logits + bias.transpose(0, 1)
        logits = logits / self.log_temperature.exp()
        probs = masked_softmax(logits, evidence_mask[:, None, None, :], query_mask[:, None, :, None])
        dropped = self.dropout(probs)
        context, ib_kl = dropped @ v, None
        if self.bottleneck:
            context, ib_kl = self._bottleneck(context, dropped, v, query_modality, query_mask, evidence_modality)
        return CrossAttended(self.out(merge_heads(context)), logits, probs, ib_kl)

    def _bottleneck(self, context: Tensor, probs: Tensor, v: Tensor, query_modality: Tensor, query_mask: Tensor,
                    evidence_modality: Tensor) -> tuple[Tensor, Tensor]:
        """Information bottleneck per (query modality, evidence modality) pair.

        The context of a query token is the sum of one message per evidence modality, m = sum over that
        modality's sentences of attention * value. Each message with beta > 0 is the mean of a unit-variance
        Gaussian: in training a sample N(m, I) is sent instead, and KL(N(m, I) || N(0, I)) = |m|^2 / 2 is
        charged at beta, averaged over the real query tokens.
        """
        modality = F.one_hot(evidence_modality, self.ib_beta.shape[1]).to(probs.dtype)
        messages = torch.einsum("bhqe,bem,bhed->bhqmd", probs, modality, v)
        beta = self.ib_beta[query_modality]
        kl = 0.5 * messages.pow(2).sum(dim=(1, 4))
        ib_kl = ((beta * kl).sum(-1) * query_mask).sum() / query_mask.sum().clamp_min(1)
        if self.training:
            noisy = (beta > 0)[:, None, :, :, None]
            context = context + (torch.randn_like(messages) * noisy).sum(3)
        return context, ib_kl


# ---------------------------------------------------------------------------------------------------
# The module and what it returns.

@dataclasses.dataclass
class FusionOutput:
    """The fusion of B queries: Q = P image patches then T text tokens, E evidence sentences, C candidates."""

    candidate_scores: Tensor
    """(B, C) rerank logits (higher = more relevant), -inf on padded candidates. See the module docstring."""
    sentence_scores: Tensor
    """(B, E) sentence-selection logits for the generator, -inf on padded sentences."""
    fused: Tensor
    """(B, d_model) the query after reading the evidence, streams mixed by R2."""
    attention: Tensor
    """(B, heads, Q, E) cross-attention per head (before dropout): each real query token's row sums to 1
    over the real evidence; padded evidence columns and padded query rows are 0."""
    attention_mean: Tensor
    """(B, Q, E) ``attention`` averaged over heads."""
    evidence_attention: Tensor
    """(B, E) ``attention_mean`` pooled over the query tokens with the R2 weights: how much the query as a
    whole reads each sentence (sums to 1 over the real evidence; R6 supervises it)."""
    image_attention: Tensor
    """(B, E, rows, cols) for each evidence sentence, the head-averaged attention each image patch pays to
    it: a heatmap to draw over the image for that sentence. Zeros for a query without an image."""
    text_attention: Tensor
    """(B, T, E) for each query text token, its head-averaged attention over the evidence."""
    gate: Tensor | None
    """(B,) share of the visual stream (R2): 1 without text, 0 without an image. None for mean pooling."""
    ib_kl: Tensor | None
    """() beta-weighted bottleneck KL, to add to the loss; None when every beta is 0."""


def text_similarity(batch: FusionBatch) -> Tensor:
    """(B, E) cosine of each evidence sentence with its closest query text token; 0 for a query without text."""
    cosine = torch.einsum("btd,bed->bte", F.normalize(batch.text, dim=-1), F.normalize(batch.evidence, dim=-1))
    best = cosine.masked_fill(~batch.text_mask[:, :, None], -torch.inf).amax(dim=1)
    return torch.where(batch.text_mask.any(1, keepdim=True), best, torch.zeros_like(best))


class CrossAttentionFusion(nn.Module):
    """Query tokens (image patches, text) -> self-attention -> cross-attention to evidence -> scores."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.image_proj = nn.Sequential(nn.Linear(config.image_dim, d), nn.LayerNorm(d))
        self.text_proj = nn.Sequential(nn.Linear(config.text_dim, d), nn.LayerNorm(d))
        self.evidence_proj = nn.Sequential(nn.Linear(config.evidence_dim, d), nn.LayerNorm(d))
        self.image_positions = Positions(config.grid, d, config.positions)
        self.text_positions = Positions((config.max_text_tokens,), d, config.positions)
        self.evidence_positions = Positions((config.max_candidates, config.max_sentences), d, config.positions)
        self.query_modality = nn.Embedding(len(config.query_modalities), d)
        self.evidence_modality = nn.Embedding(len(config.evidence_modalities), d)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(QueryBlock(config) for _ in range(config.layers))
        self.gate = (nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
                     if config.pooling == "gate" else None)
        self.cross_norm, self.cross = nn.LayerNorm(d), CrossAttention(config)
        self.mlp_norm, self.mlp = nn.LayerNorm(d), MLP(config)
        self.final_norm = nn.LayerNorm(d)
        self.sentence_query = nn.Linear(d, d)
        self.similarity_scale = nn.Parameter(torch.tensor(5.0)) if config.sentence_similarity else None
        rows, cols = torch.meshgrid(torch.arange(config.grid[0]), torch.arange(config.grid[1]), indexing="ij")
        self.register_buffer("grid_positions", torch.stack([rows.flatten(), cols.flatten()], -1), persistent=False)
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    def embed_query(self, batch: FusionBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Query tokens (B, Q, d), their mask (B, Q) and modality ids (B, Q): image patches, then text."""
        width, device = batch.text.shape[1], batch.text.device
        image = self.image_proj(batch.image) + self.image_positions(self.grid_positions)
        text = self.text_proj(batch.text) + self.text_positions(torch.arange(width, device=device)[:, None])
        modalities = self.config.query_modalities
        ids = torch.tensor([modalities.index("image")] * self.config.patches + [modalities.index("text")] * width,
                           device=device)
        tokens = torch.cat([image, text], dim=1) + self.query_modality(ids)
        mask = torch.cat([batch.image_mask, batch.text_mask], dim=1)
        return self.dropout(tokens), mask, ids.expand(len(mask), -1)

    def embed_evidence(self, batch: FusionBatch) -> Tensor:
        """Evidence tokens (B, E, d): sentence vector + (candidate rank, sentence order) + modality."""
        positions = torch.stack([batch.evidence_candidate, batch.evidence_order], dim=-1)
        tokens = (self.evidence_proj(batch.evidence) + self.evidence_positions(positions)
                  + self.evidence_modality(batch.evidence_modality))
        return self.dropout(tokens)

    def visual_share(self, query: Tensor, batch: FusionBatch) -> Tensor:
        """(B,) R2: the weight of the visual stream, from the query before it reads the evidence.

        Forced to 1 for a query without text and 0 for one without an image; otherwise the sigmoid gate of
        the pooled streams, or 1/2 for mean pooling.
        """
        has_image, has_text = batch.image_mask.any(1), batch.text_mask.any(1)
        if self.gate is None:
            share = torch.full(has_image.shape, 0.5, device=has_image.device)
        else:
            patches = self.config.patches
            visual = masked_mean(query[:, :patches], batch.image_mask)
            textual = masked_mean(query[:, patches:], batch.text_mask)
            share = torch.sigmoid(self.gate(torch.cat([visual, textual], dim=-1))).squeeze(-1)
        return torch.where(has_image & has_text, share, has_image.to(share.dtype))

    def candidate_scores(self, logits: Tensor, weights: Tensor, batch: FusionBatch) -> Tensor:
        """(B, C): sum_q w_q mean_h logsumexp over the candidate's sentences of the cross-attention logits."""
        count = batch.candidate_mask.shape[1]
        segments = batch.evidence_candidate.masked_fill(~batch.evidence_mask, count)[:, None, None, :]
        per_token = segment_logsumexp(logits, segments, count + 1)[..., :count].mean(1)
        scores = torch.einsum("bq,bqc->bc", weights, per_token)
        return scores.masked_fill(~batch.candidate_mask, -torch.inf)

    def forward(self, batch: FusionBatch) -> FusionOutput:
        query, query_mask, query_modality = self.embed_query(batch)
        evidence = self.embed_evidence(batch)
        for block in self.blocks:
            query = block(query, query_mask)
        share = self.visual_share(query, batch)
        weights = token_weights(share, batch.image_mask, batch.text_mask)
        read = self.cross(self.cross_norm(query), query_modality, query_mask,
                          evidence, batch.evidence_modality, batch.evidence_mask)
        query = query + self.dropout(read.out)
        query = query + self.mlp(self.mlp_norm(query))
        fused = torch.einsum("bq,bqd->bd", weights, self.final_norm(query))
        sentence_scores = torch.einsum("bd,bed->be", self.sentence_query(fused), evidence) / math.sqrt(fused.shape[-1])
        if self.similarity_scale is not None:
            sentence_scores = sentence_scores + self.similarity_scale * text_similarity(batch)
        attention_mean = read.probs.mean(1)
        patches = self.config.patches
        return FusionOutput(
            candidate_scores=self.candidate_scores(read.logits, weights, batch),
            sentence_scores=sentence_scores.masked_fill(~batch.evidence_mask, -torch.inf),
            fused=fused,
            attention=read.probs,
            attention_mean=attention_mean,
            evidence_attention=torch.einsum("bq,bqe->be", weights, attention_mean),
            image_attention=attention_mean[:, :patches].transpose(1, 2).unflatten(-1, self.config.grid),
            text_attention=attention_mean[:, patches:],
            gate=share if self.gate is not None else None,
            ib_kl=read.ib_kl,
        )
