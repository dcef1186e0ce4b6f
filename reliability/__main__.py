"""``python -m reliability [--quick] [--only AREA ...] [--out DIR]``: run the reliability areas, print figures.

Each area's figures go to ``DIR/<area>.json`` and all headlines to ``DIR/summary.md``; an area that raises is
reported as failed with its error and the others still run. The exit code is 1 when any area failed or did not
pass its own checks."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from medrag.config import load_config
from medrag.reporting import strict_json
from reliability import SUITES

AREAS = ("audit", "hostile_input", "hostile_images", "faults", "cluster", "deid_validation", "artefacts", "tenants",
         "load", "poisoning")
"""Modules of this package that register a suite, in the order they run."""


def summary(results: dict[str, dict[str, Any]], quick: bool) -> str:
    """The Markdown page of every area's headline figures."""
    lines = [f"# medrag reliability ({'quick' if quick else 'full'} run)", "", "| area | passed | figure | value |",
             "|---|---|---|---|"]
    for name, figures in results.items():
        headline = figures.get("headline") or {"error": figures.get("error", "")}
        for number, (key, value) in enumerate(headline.items()):
            mark = ("yes" if figures.get("passed", True) else "**no**") if number == 0 else ""
            lines.append(f"| {name if number == 0 else ''} | {mark} | {key} | {value} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    for module in AREAS:
        importlib.import_module(f"reliability.{module}")
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the light version (a few cases per area)")
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these areas")
    parser.add_argument("--out", type=Path, default=Path("results/reliability"))
    args = parser.parse_args(argv)
    config = load_config()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for name, run in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            figures = run(config, args.out, args.quick)
        except Exception as error:  # one broken area is reported; the others still run
            figures = {"passed": False, "error": f"{type(error).__name__}: {error}",
                       "traceback": traceback.format_exc(limit=5)}
            print(f"  failed: {figures['error']}")
        figures["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = figures
        (args.out / f"{name}.json").write_text(json.dumps(strict_json(figures), indent=2) + "\n")
        for key, value in figures.get("headline", {}).items():
            print(f"  {key}: {value}")
    (args.out / "summary.md").write_text(summary(results, args.quick))
    failed = [name for name, figures in results.items() if not figures.get("passed", True)]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    print(f"figures: {args.out / 'summary.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
