"""Named group splits: one train / validation / test assignment that every trainer and evaluation shares.

A group (a patient, an abstract, an image, a report) lands in a part by a stable hash of the split's seed and
the group's canonical key alone, never by which other groups a file holds. So the joint model, the fusion
module, the router and the decision model trained on the same split name put one covid patient on the same
side, and an evaluation rebuilds a model's held-out part from the split its card names.

Canonical group keys, built by the dataset modules: ``pubmedqa:<PMID>``, ``covid:<patient group>``,
``vqa-rad:<image file>``, ``iu:<report id>``.

A model card records ``Split.describe`` of what it trained on: the split's name, fractions and seed, and per
part the number of items and groups and the sha256 of the sorted group keys, so anyone can check that two
models, or a model and an evaluation, held out the same patients.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

PARTS = ("train", "validation", "test")


class Grouped(Protocol):
    @property
    def group(self) -> str: ...


Item = TypeVar("Item", bound=Grouped)


def members_sha256(groups: Iterable[str]) -> str:
    """sha256 of the sorted, distinct group keys joined by newlines: the fingerprint of one part."""
    return hashlib.sha256("\n".join(sorted(set(groups))).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Split:
    name: str
    fractions: tuple[float, float]
    """Train and validation shares of the groups; the rest is the test part."""
    seed: int

    def __post_init__(self) -> None:
        train, validation = self.fractions
        if train < 0 or validation < 0 or train + validation > 1:
            raise ValueError(f"split {self.name!r}: fractions {self.fractions} must be two shares >= 0 "
                             "(train, validation) that sum to at most 1; the rest is the test part")

    def part(self, group: str) -> str:
        """``train``, ``validation`` or ``test`` for one group key."""
        digest = hashlib.sha256(f"{self.seed}:{group}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        train, validation = self.fractions
        return PARTS[0] if position < train else PARTS[1] if position < train + validation else PARTS[2]

    def divide(self, items: Iterable[Item]) -> tuple[list[Item], list[Item], list[Item]]:
        """(train, validation, test) of anything with a ``group``, in the given order."""
        parts: dict[str, list[Item]] = {name: [] for name in PARTS}
        for item in items:
            parts[self.part(item.group)].append(item)
        return parts[PARTS[0]], parts[PARTS[1]], parts[PARTS[2]]

    def members(self, groups: Iterable[str]) -> dict[str, list[str]]:
        """The sorted, distinct group keys of each part."""
        parts: dict[str, set[str]] = {name: set() for name in PARTS}
        for group in groups:
            parts[self.part(group)].add(group)
        return {name: sorted(keys) for name, keys in parts.items()}

    def describe(self, items: Sequence[Grouped]) -> dict[str, Any]:
        """The model-card record of a training set: the split and, per part, items, groups and their sha256."""
        members = self.members(item.group for item in items)
        counts = {name: 0 for name in PARTS}
        for item in items:
            counts[self.part(item.group)] += 1
        return {"name": self.name, "fractions": list(self.fractions), "seed": self.seed,
                "parts": {name: {"items": counts[name], "groups": len(members[name]),
                                 "sha256": members_sha256(members[name])} for name in PARTS}}


MEDRAG_V1 = Split("medrag-v1", (0.7, 0.1), 0)
SPLITS = {MEDRAG_V1.name: MEDRAG_V1}
"""The splits that may be named; add one with a new name, never change a published one."""
DEFAULT_SPLIT = MEDRAG_V1


def named_split(name: str) -> Split:
    """The registered split called ``name``."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; known splits: {', '.join(sorted(SPLITS))}")
    return SPLITS[name]


def card_split(card: Mapping[str, Any], where: str) -> Split:
    """The split a model card records (``Split.describe`` under ``split``); ``where`` names the card in errors.

    A registered name must come with its registered fractions and seed: the same name with other shares
    would put patients on other sides than every other model of that name.
    """
    record = card.get("split")
    if not isinstance(record, Mapping) or not {"name", "fractions", "seed"} <= set(record):
        raise ValueError(f"{where}: the model card records no named split (field 'split' with name, fractions, "
                         "seed); retrain the model with its `medrag train ...` command")
    split = Split(str(record["name"]), (float(record["fractions"][0]), float(record["fractions"][1])),
                  int(record["seed"]))
    registered = SPLITS.get(split.name)
    if registered is not None and registered != split:
        raise ValueError(f"{where}: split {split.name!r} is recorded with fractions {split.fractions} and seed "
                         f"{split.seed}, but the registered one has {registered.fractions} and {registered.seed}; "
                         "retrain the model")
    return split
