"""``medrag demo``: ingest the shipped demo knowledge base, then ask it two questions as a clinician would."""

from __future__ import annotations

from collections.abc import Callable

from knowledge_sources import DEMO_DIR
from medrag.assistant import Assistant
from medrag.config import Config
from medrag.ingest.pipeline import Ingestor
from medrag.render import render_answer
from medrag.store import Store

LITERATURE_QUESTION = "Is the treatment of hospital-acquired pneumonia delayed when it is diagnosed at night?"
CLINICAL_NOTE = "Fever and dry cough for five days, bilateral peripheral ground-glass opacities."
DEMO_IMAGE = DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm"


def run_demo(config: Config, out: Callable[[str], None] = print) -> None:
    with Store.open(config, log=out) as store:
        out(f"Weaviate running at {store.url}" + (f" (pid {store.server.pid})" if store.server else ""))
        ingestor = Ingestor(config, store)
        for summary in (
            ingestor.pubmed([DEMO_DIR / "pubmedqa_demo.json"]),
            ingestor.reports([DEMO_DIR / "iu-reports"]),
            ingestor.images([DEMO_DIR / "covid" / "metadata.csv"]),
            ingestor.images([DEMO_DIR / "dicom"]),
        ):
            out(summary.render())
        assistant = Assistant(config, store, text_encoder=ingestor.text_encoder,
                              joint_encoder=ingestor.joint_encoder)
        out(f"\nLiterature question: {LITERATURE_QUESTION}")
        out(render_answer(assistant.ask(question=LITERATURE_QUESTION, k=3), explain=True))
        out(f"\nChest radiograph {DEMO_IMAGE.name} with the note: {CLINICAL_NOTE}")
        out(render_answer(assistant.ask(note=CLINICAL_NOTE, image=DEMO_IMAGE, k=5), explain=True))
