"""Labelled queries for the scheduler, built from real data, and their JSON Lines file format.

- literature: PubMedQA questions (a question about published evidence, no image);
- imaging: VQA-RAD chest questions and IU report indications and findings (about what an image shows);
- clinical: covid case notes (a patient's history and symptoms that come with a radiograph).

The datasets do not say how a clinician would have typed each text (question box or note box) or
whether an image would come along, so each query gets a field and an image flag drawn, seeded, from
the deployment assumptions in ``PRESENTATION`` (written down here, reported in the model card).
One JSON object per line: ``{"question": ..., "note": ..., "has_image": ..., "intent": ..., "group": ...,
"origin": ...}``; any file in that format can be evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from medrag.datasets.covid import read_covid_metadata
from medrag.datasets.iu_reports import read_iu_reports
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.vqa_rad import read_vqa_rad
from medrag.deid.text import scrub_text
from medrag.route.features import Query

INTENTS = ("literature", "imaging", "clinical")
PRESENTATION = {
    # origin: (share typed as a question rather than a note, share with an image)
    "pubmedqa": (0.9, 0.1),
    "vqa-rad": (0.9, 0.9),
    "iu-indication": (0.3, 0.7),
    "iu-findings": (0.2, 0.7),
    "covid-note": (0.1, 0.9),
}


@dataclasses.dataclass(frozen=True)
class LabelledQuery:
    query: Query
    intent: str
    group: str
    """Canonical split key (``pubmedqa:<PMID>``, ``vqa-rad:<image>``, ``iu:<report id>``, ``covid:<patient
    group>``): no group is on both sides of a split."""
    origin: str

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self.query), "intent": self.intent, "group": self.group,
                           "origin": self.origin})


def _presented(text: str, intent: str, group: str, origin: str, rng: random.Random) -> LabelledQuery:
    question_share, image_share = PRESENTATION[origin]
    as_question = rng.random() < question_share
    query = Query(question=text if as_question else "", note="" if as_question else text,
                  has_image=rng.random() < image_share)
    return LabelledQuery(query, intent, group, origin)


def pubmedqa_queries(path: Path) -> Iterable[tuple[str, str, str]]:
    for record in read_pubmedqa(path):
        yield record.question, record.group, "pubmedqa"


def vqa_rad_queries(path: Path) -> Iterable[tuple[str, str, str]]:
    for item in read_vqa_rad(path):
        if item.is_chest:
            yield item.question, item.group, "vqa-rad"


def iu_queries(paths: Sequence[Path], limit: int, seed: int) -> Iterable[tuple[str, str, str]]:
    """Up to ``limit`` indications and ``limit`` findings, from a seeded sample of reports."""
    reports = read_iu_reports(paths)
    random.Random(seed).shuffle(reports)
    for section in ("indication", "findings"):
        texts = [(getattr(report, section), report.group) for report in reports if getattr(report, section)]
        for text, group in texts[:limit]:
            yield text, group, f"iu-{section}"


def covid_note_queries(metadata_csv: Path) -> Iterable[tuple[str, str, str]]:
    for row in read_covid_metadata(metadata_csv):
        if row.note:
            yield row.note, row.group, "covid-note"


def build_labelled_queries(data_dir: Path, *, iu_limit: int = 400, seed: int = 0) -> list[LabelledQuery]:
    """The labelled set from the shared data folder's files (the router's training set)."""
    return labelled_queries(pubmedqa=[data_dir / "pubmed" / "pubmedqa_pqal_dev.json"],
                            vqa_rad=[data_dir / "vqa-rad" / "trainset.json"],
                            reports=[data_dir / "reports" / "iu-openi" / "NLMCXR_reports.tgz"],
                            covid=[data_dir / "cxr" / "covid" / "metadata.csv"], iu_limit=iu_limit, seed=seed)


def labelled_queries(*, pubmedqa: Sequence[Path] = (), vqa_rad: Sequence[Path] = (), reports: Sequence[Path] = (),
                     covid: Sequence[Path] = (), iu_limit: int = 400, seed: int = 0) -> list[LabelledQuery]:
    """The labelled set from any files in these formats, de-identified; identical texts of an origin kept once."""
    sources = {
        "literature": [item for path in pubmedqa for item in pubmedqa_queries(path)],
        "imaging": [*(item for path in vqa_rad for item in vqa_rad_queries(path)),
                    *(iu_queries(list(reports), iu_limit, seed) if reports else ())],
        "clinical": [item for path in covid for item in covid_note_queries(path)],
    }
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    labelled = []
    for intent, items in sources.items():
        for text, group, origin in items:
            text = " ".join(scrub_text(text).split())  # as the router will see it at run time
            if text and (origin, text.lower()) not in seen:
                seen.add((origin, text.lower()))
                labelled.append(_presented(text, intent, group, origin, rng))
    return labelled


def write_queries(queries: Iterable[LabelledQuery], path: Path) -> None:
    path.write_text("".join(item.to_json() + "\n" for item in queries))


def read_queries(path: Path) -> list[LabelledQuery]:
    """Labelled queries from a JSON Lines file; a bad line is an error naming the file, line and fix."""
    queries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query = Query(str(row.get("question") or ""), str(row.get("note") or ""), bool(row.get("has_image")))
            intent = row["intent"]
        except (json.JSONDecodeError, KeyError, AttributeError) as error:
            raise ValueError(f"{path}:{number}: not a labelled query ({error}); each line must be a JSON object "
                             "with question/note, has_image and intent") from None
        if intent not in INTENTS:
            raise ValueError(f"{path}:{number}: intent {intent!r} is not one of {', '.join(INTENTS)}")
        if not query.text:
            raise ValueError(f"{path}:{number}: both question and note are empty; give at least one")
        queries.append(LabelledQuery(query, intent, str(row.get("group") or f"line-{number}"),
                                     str(row.get("origin") or path.name)))
    return queries
