"""Knowledge base: what is stored (counts per collection and tenant) and ingestion of new files or folders, with a
progress bar and the per-file problem report. Uploaded files are written to a temporary folder that is deleted as
soon as they are ingested (de-identified, encoded and stored)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from knowledge_sources import DEMO_DIR
from medrag.assistant import Assistant
from medrag.ingest.pipeline import IngestSummary
from medrag.sources import ARTICLES, CASES, REPORTS, collections, get_source
from medrag.store.errors import StoreError
from ui.markdown import escape
from ui.resources import config, require_assistant

DEMO_KNOWLEDGE = ((ARTICLES, DEMO_DIR / "pubmedqa_demo.json"), (REPORTS, DEMO_DIR / "iu-reports"),
                  (CASES, DEMO_DIR / "covid" / "metadata.csv"), (CASES, DEMO_DIR / "dicom"))
"""The shipped demo (as ``medrag demo`` ingests it): PubMedQA abstracts, IU reports, covid cases and DICOMs."""


def counts(assistant: Assistant) -> list[dict[str, object]]:
    """Objects per collection and tenant."""
    rows: list[dict[str, object]] = []
    for collection in collections():
        for tenant in sorted(assistant.store.tenants(collection)):
            rows.append({"collection": collection, "tenant": tenant,
                         "objects": assistant.store.count(collection, tenant=tenant)})
    return rows


def render() -> None:
    st.title("Knowledge base")
    assistant = require_assistant()
    table = st.empty()  # filled last, so it counts what this run ingested
    tenant = st.text_input("Tenant", config().weaviate.tenant, key="kb.tenant",
                           help="One tenant per hospital or project; questions search the configured tenant")
    st.subheader("Ingest")
    collection = st.selectbox("Into", collections(), key="kb.collection",
                              format_func=lambda name: f"{name}: {get_source(name).description}")
    uploads = st.file_uploader("Files", accept_multiple_files=True, key="kb.files",
                               max_upload_size=config().ui.max_upload_mb)
    folder = st.text_input("…or a file or folder on the server", key="kb.folder")
    if st.button("Ingest", type="primary", key="kb.go", disabled=not uploads and not folder.strip()):
        if folder.strip() and not Path(folder.strip()).exists():
            st.error(f"{escape(folder.strip())} does not exist on the server; give an existing file or folder")
        else:
            _ingest_uploads(assistant, collection, uploads or [], folder.strip(), tenant)
    st.subheader("Demo knowledge")
    st.caption("The knowledge `medrag demo` uses: 100 PubMedQA abstracts, IU chest X-ray reports, COVID-19 cases "
               "with notes and three DICOM radiographs.")
    if st.button("Load the demo knowledge base", key="kb.demo"):
        load_demo(assistant, tenant)
    try:
        rows = counts(assistant)
    except StoreError as error:
        table.error(escape(str(error)))
        return
    if rows:
        table.dataframe(rows, hide_index=True)
    else:
        table.info("The knowledge base is empty: ingest files below or load the demo knowledge.")


def load_demo(assistant: Assistant, tenant: str) -> None:
    """Ingest the shipped demo knowledge into ``tenant``, a progress bar and a report per part."""
    for collection, path in DEMO_KNOWLEDGE:
        _run(assistant, collection, [path], tenant, label=path.name)


def _ingest_uploads(assistant: Assistant, collection: str, uploads: list, folder: str, tenant: str) -> None:
    paths = [Path(folder)] if folder else []
    with tempfile.TemporaryDirectory(prefix="medrag-ingest-") as scratch:
        for upload in uploads:
            target = Path(scratch) / Path(upload.name).name  # the browser's name, without any folder part
            target.write_bytes(upload.getvalue())
            paths.append(target)
        _run(assistant, collection, paths, tenant, label=f"{len(paths)} path(s)")


def _run(assistant: Assistant, collection: str, paths: list[Path], tenant: str, label: str) -> IngestSummary | None:
    bar = st.progress(0.0, text=f"{collection}: reading {escape(label)}")

    def on_progress(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{collection}: {done} of {total} records")

    try:
        summary = assistant.ingest(collection, paths, tenant=tenant or None, on_progress=on_progress)
    except (ValueError, StoreError, OSError) as error:
        st.error(f"{collection}: {escape(str(error))}")
        return None
    bar.progress(1.0, text=f"{collection}: done")
    report(summary)
    return summary


def report(summary: IngestSummary) -> None:
    """The summary line, then every skipped or failed record with the reason (which names the fix)."""
    line = escape(summary.render(most=0).splitlines()[0])
    (st.success if summary.ok else st.warning)(line)
    problems = [{"status": status, "record": origin, "reason": reason}
                for status, items in (("failed", summary.failed), ("skipped", summary.skipped))
                for origin, reason in items]
    if problems:
        st.dataframe(problems, hide_index=True)

