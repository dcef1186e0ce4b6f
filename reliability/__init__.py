"""The reliability and security suite: ``make reliability`` (full) and ``python -m reliability --quick``.

Each area (hostile input per parser, de-identification validation, audit trail, faults, cluster, tenants, load)
is one module with a ``run(config, out_dir, quick) -> dict`` function registered in :data:`SUITES`; the runner
prints each area's headline figures and writes them to ``out_dir/<area>.json``. The figures are what a hospital
security review asks for: cases tried per parser, crashes left, de-identification actions correct, PHI recall per
category, objects lost, cross-tenant leaks, node-loss errors, clients held. Like ``evaluation/``, this package sits
above the product: nothing in ``medrag/`` imports it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medrag.config import Config

Suite = Callable[[Config, Path, bool], dict[str, Any]]
"""``run(config, out_dir, quick)``: quick is the light version that ``make test`` runs; returns the figures."""

SUITES: dict[str, Suite] = {}


def register_suite(name: str, run: Suite) -> None:
    """Add an area to ``python -m reliability`` (one registration point; the modules register on import)."""
    if name in SUITES:
        raise ValueError(f"reliability suite {name!r} is already registered")
    SUITES[name] = run


@contextlib.contextmanager
def logger_level(logger: logging.Logger, level: int) -> Iterator[None]:
    """``logger`` at ``level`` for the block, then back to what it was (an area quiets or widens medrag's logs)."""
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
