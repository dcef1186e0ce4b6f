"""Training of the fusion module on ``FusionData``: seeded, split by query group, best epoch on validation.

One function fits one configuration (``fit``); ``train_fusion`` (the ``medrag train fusion`` command)
builds or reuses the data, fits the default configuration, evaluates it on the held-out split and
writes the checkpoint; ``evaluation/fusion.py`` refits each ablation variant with the same function.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.fuse.checkpoint import save_checkpoint
from medrag.fuse.model import CrossAttentionFusion, FusionConfig, collate
from medrag.metrics import rank_metrics
from medrag.reporting import pyplot, save_figure
from training.fusion_data import FusionData, FusionItem
from training.fusion_losses import FusionLossConfig, fusion_loss, make_targets
from training.fusion_metrics import BASELINES, evaluate, ranked


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    epochs: int = 12
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    """Initialisation, dropout and batch order; never the split."""
    split: Split = DEFAULT_SPLIT
    """The named group split every medrag model shares: a covid patient held out here is held out by the joint
    model too, whose image vectors the fusion module reads."""


@dataclasses.dataclass
class FitResult:
    model: CrossAttentionFusion
    history: list[dict[str, float]]
    """Per epoch: the mean training loss terms and the validation rerank MRR."""
    best_epoch: int
    seconds: float


def split_items(data: FusionData, options: TrainOptions) -> tuple[list[FusionItem], list[FusionItem],
                                                                   list[FusionItem]]:
    """(train, validation, test) by query group: a PMID or a covid patient is never on two sides."""
    return options.split.divide(data.items)


def batches(data: FusionData, items: Sequence[FusionItem], config: FusionConfig, batch_size: int):
    """(items, collated batch) chunks in the given order."""
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        yield chunk, collate([data.example(item) for item in chunk], config)


@torch.no_grad()
def predict(model: CrossAttentionFusion, data: FusionData, items: Sequence[FusionItem],
            batch_size: int = 64) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Per item: the candidate scores (C,) and each candidate's sentence scores."""
    model.eval()
    predictions = []
    for chunk, batch in batches(data, items, model.config, batch_size):
        output = model(batch)
        for row, item in enumerate(chunk):
            sentence_scores = output.sentence_scores[row]
            owner = batch.evidence_candidate[row]
            predictions.append((output.candidate_scores[row, :len(item.candidates)].numpy(),
                                [sentence_scores[(owner == c) & batch.evidence_mask[row]].numpy()
                                 for c in range(len(item.candidates))]))
    return predictions


def validation_mrr(model: CrossAttentionFusion, data: FusionData, items: Sequence[FusionItem]) -> float:
    """Mean reciprocal rank of the first relevant candidate under the model's scores (0 without items)."""
    scored = predict(model, data, items)
    return float(np.mean([rank_metrics([c.relevant for c in ranked(item, scores)], 1, ks=())["mrr"]
                          for item, (scores, _) in zip(items, scored, strict=True)])) if items else 0.0


def fit(data: FusionData, train: Sequence[FusionItem], validation: Sequence[FusionItem], config: FusionConfig,
        loss_config: FusionLossConfig, options: TrainOptions, *, progress: bool = True) -> FitResult:
    """Train one configuration; keep the weights of the epoch with the best validation MRR."""
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    order = np.random.default_rng(options.seed)
    model = CrossAttentionFusion(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps = options.epochs * math.ceil(len(train) / options.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=options.lr, total_steps=max(steps, 1),
                                                   pct_start=0.1)
    history, best, best_state, best_epoch = [], -1.0, None, 0
    bar = tqdm(total=steps, desc="train fusion", unit="step", disable=not progress)
    for epoch in range(1, options.epochs + 1):
        model.train()
        shuffled = [train[index] for index in order.permutation(len(train))]
        sums: dict[str, float] = {}
        for chunk, batch in batches(data, shuffled, config, options.batch_size):
            relevant = [data.targets(item) for item in chunk]
            targets = make_targets(batch, [c for c, _ in relevant], [s for _, s in relevant])
            terms = fusion_loss(model(batch), targets, loss_config)
            optimiser.zero_grad()
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(chunk)
            bar.update()
            bar.set_postfix(loss=f"{float(terms['total'].detach()):.3f}")
        score = validation_mrr(model, data, validation)
        history.append({"epoch": epoch, **{name: total / len(train) for name, total in sums.items()},
                        "validation_mrr": score})
        if score > best:
            best, best_epoch = score, epoch
            best_state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(model.eval(), history, best_epoch, round(time.perf_counter() - started, 1))


def plot_history(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Training loss terms and validation MRR per epoch, as a PNG."""
    epochs = [row["epoch"] for row in history]
    figure, (losses, mrr) = pyplot().subplots(1, 2, figsize=(10, 4))
    for name in ("total", "rerank", "attention", "sentence"):
        losses.plot(epochs, [row[name] for row in history], marker="o", label=name)
    losses.set(xlabel="epoch", ylabel="training loss", title="fusion training loss")
    losses.legend()
    mrr.plot(epochs, [row["validation_mrr"] for row in history], marker="o", color="tab:green")
    mrr.set(xlabel="epoch", ylabel="MRR", title="validation rerank MRR")
    return save_figure(figure, path)


def train_fusion(data: FusionData, out: Path, options: TrainOptions | None = None, *,
                 config: FusionConfig | None = None, loss_config: FusionLossConfig | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Fit ``config`` (default: ``FusionConfig()``) on the training split, score it and the retrieval order
    on the held-out split, save the checkpoint and the loss curve to ``out``."""
    options, config = options or TrainOptions(), config or FusionConfig()
    loss_config = loss_config or FusionLossConfig()

    train, validation, test = split_items(data, options)
    fitted = fit(data, train, validation, config, loss_config, options, progress=progress)
    card = {
        "name": "medrag fusion (position-aware cross-attention reranker)",
        "queries": dict(Counter(item.task for item in data.items)),
        "split": options.split.describe(data.items),
        "options": dataclasses.asdict(options),
        "loss": dataclasses.asdict(loss_config),
        "best_epoch": fitted.best_epoch,
        "seconds": fitted.seconds,
        "history": fitted.history,
        "test": {"fusion": evaluate(test, predict(fitted.model, data, test)),
                 **{name: evaluate(test, [baseline(data, item) for item in test])
                    for name, baseline in BASELINES.items()}},
    }
    save_checkpoint(fitted.model, out, card)
    plot_history(fitted.history, out / "loss_curve.png")
    return card
