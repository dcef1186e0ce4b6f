"""``medrag demo``: ingest the shipped demo knowledge base, then search it as a clinician would."""

from __future__ import annotations

from collections.abc import Callable

from knowledge_sources import DEMO_DIR
from medrag.config import Config
from medrag.ingest.image import read_dicom, to_radiograph
from medrag.ingest.pipeline import Ingestor
from medrag.store import ARTICLES, CASES, JOINT_VECTOR, REPORTS, Hit, Store

LITERATURE_QUESTION = "Is the treatment of hospital-acquired pneumonia delayed when it is diagnosed at night?"
CLINICAL_NOTE = "Fever and dry cough for five days, bilateral peripheral ground-glass opacities."
DEMO_IMAGE = DEMO_DIR / "dicom" / "siim-cr-jpeg-baseline.dcm"


def _show(hits: list[Hit], out: Callable[[str], None]) -> None:
    for rank, hit in enumerate(hits, 1):
        label = {ARTICLES: "PMID", REPORTS: "report", CASES: "case"}[hit.collection]
        text = " ".join(hit.properties["text"].split())
        score = f"hybrid score {hit.score:.3f}" if hit.score is not None else f"distance {hit.distance:.3f}"
        out(f"  {rank}. {label} {hit.source_id} ({score}): {text[:150]}...")


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
        encode = ingestor.text_encoder.encode
        out(f"\nLiterature question: {LITERATURE_QUESTION}")
        _show(store.hybrid(ARTICLES, LITERATURE_QUESTION, encode([LITERATURE_QUESTION])[0], limit=3), out)
        out(f"\nClinical note: {CLINICAL_NOTE}")
        note_vector = encode([CLINICAL_NOTE])[0]
        out(" similar reports:")
        _show(store.hybrid(REPORTS, CLINICAL_NOTE, note_vector, limit=3), out)
        out(" similar imaging cases:")
        _show(store.hybrid(CASES, CLINICAL_NOTE, note_vector, limit=3), out)
        if ingestor.joint_encoder is not None:
            image = to_radiograph(read_dicom(DEMO_IMAGE))
            out(f"\nImage query ({DEMO_IMAGE.name}), reports nearest in the joint image-text space:")
            image_vector = ingestor.joint_encoder.encode_images([image])[0]
            _show(store.near_vector(REPORTS, image_vector, target_vector=JOINT_VECTOR, limit=3), out)
