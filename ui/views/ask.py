"""Ask: a radiograph, a note and/or a question in; the de-identified request, the route, a cited answer and its
evidence out.

Order on the page follows the order of trust: first what de-identification did (before anything is searched),
then the answer with numbered citations that link to their evidence cards, then why (route, attention, timings,
models), then feedback. Everything about the request lives in ``st.session_state`` (this session only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any

import streamlit as st

from medrag.assistant import Assistant
from medrag.deid.changes import HeaderChange, header_changes
from medrag.generate.writer import modes
from medrag.imaging.radiograph import modality_image, read_dicom
from medrag.pipeline.prepare import is_dicom
from medrag.sources import ARTICLES, citation_label
from medrag.types import DRAFT_NOTICE, INSUFFICIENT, Answer, QueryInput
from ui import markdown as md
from ui.feedback import VERDICTS, feedback_record, save_feedback
from ui.image_panel import Viewed, image_panel
from ui.resources import config, require_assistant
from ui.views.knowledge import counts, load_demo

NOTHING_STORED = ("Nothing you give here is stored: the image, the note and the question stay in this browser "
                  "session's memory, de-identified before they are searched, and are gone when you close the tab. "
                  "Only feedback you choose to send is saved, without the note or the image.")
_PREPARED, _ANSWER = "ask.prepared", "ask.answer"


@dataclasses.dataclass
class Prepared:
    """One request as de-identified, with what the app needs to show it."""

    signature: str
    query: QueryInput
    changes: list[HeaderChange]
    viewed: Viewed | None


def render() -> None:
    st.title("Ask")
    settings = config()
    assistant = require_assistant()
    with st.sidebar:
        mode = st.selectbox("Answer mode", modes(), key="ask.mode",
                            help="auto: the routing table's choice for the question's intent; extractive quotes "
                                 "evidence sentences; generative lets the language model write (grounding-checked)")
        k = st.slider("Evidence items", 3, 10, 5, key="ask.k")
    upload = st.file_uploader("Chest radiograph (DICOM, PNG or JPEG)", type=["dcm", "dicom", "png", "jpg", "jpeg"],
                              key="ask.image", max_upload_size=settings.ui.max_upload_mb)
    note = st.text_area("Clinical note", key="ask.note", height=90)
    question = st.text_input("Question", key="ask.question")
    _check_knowledge(assistant, settings.weaviate.tenant)
    payload = upload.getvalue() if upload is not None else None
    if payload is not None and len(payload) > settings.ui.max_upload_mb * 2**20:
        st.error(md.escape(f"{upload.name} is {len(payload) / 2**20:.0f} MB, above the limit of "
                           f"{settings.ui.max_upload_mb} MB ([ui] max_upload_mb); export a smaller image or raise the "
                           "limit"))
        return
    if payload is None and not note.strip() and not question.strip():
        st.info("Upload a chest radiograph and/or type a note or a question.")
        return
    prepared = _prepare(assistant, payload, upload.name if upload else "", note, question)
    if prepared is None:
        return
    preview = st.container()  # drawn after the answer, above the button, so the heatmap shows at once
    answer = _current_answer(prepared.signature)
    if st.button("Ask", type="primary", key="ask.go"):
        answer = _ask(assistant, prepared, mode, k)
    with preview:
        image_column, deid_column = st.columns([3, 2])
        with image_column:
            if prepared.viewed:
                image_panel(prepared.viewed, answer)
        with deid_column:
            _deid_report(prepared)
    if answer is not None:
        _show_answer(answer, mode, k)


def _prepare(assistant: Assistant, payload: bytes | None, name: str, note: str, question: str) -> Prepared | None:
    """De-identify once per distinct request of this session (the widgets rerun the page on every change)."""
    signature = hashlib.sha256(b"\0".join([payload or b"", note.encode(), question.encode()])).hexdigest()
    cached = st.session_state.get(_PREPARED)
    if cached is not None and cached.signature == signature:
        return cached
    try:
        original = read_dicom(io.BytesIO(payload), assistant.config.limits) if payload and is_dicom(payload) else None
        query = assistant.prepare(question, note, original if original is not None else payload)
    except ValueError as error:  # unreadable, not a radiograph, burned-in text: the message names the fix
        st.error(md.escape(f"{name or 'The request'}: {error}"))
        st.session_state.pop(_PREPARED, None)
        return None
    changes = header_changes(original, query.dicom) if original is not None and query.dicom is not None else []
    viewed = None
    if query.dicom is not None:
        viewed = Viewed.of_dicom(modality_image(query.dicom), query.dicom)
    elif query.image is not None:
        viewed = Viewed.of_radiograph(query.image)
    prepared = Prepared(signature, query, changes, viewed)
    st.session_state[_PREPARED] = prepared
    st.session_state.pop(_ANSWER, None)
    return prepared


def _check_knowledge(assistant: Assistant, tenant: str) -> None:
    """Say so when the tenant the questions search is empty (checked until it is not, once per session)."""
    if st.session_state.get("ask.has_knowledge"):
        return
    rows = [row for row in counts(assistant) if row["tenant"] == tenant]
    if any(row["objects"] for row in rows):
        st.session_state["ask.has_knowledge"] = True
    else:
        st.warning(md.escape(f"The knowledge base (tenant {tenant}) is empty: load the demo knowledge or ingest your "
                             "own on the Knowledge base page."))
        if st.button("Load the demo knowledge base", key="ask.demo"):
            load_demo(assistant, tenant)
            st.session_state["ask.has_knowledge"] = True


def _deid_report(prepared: Prepared) -> None:
    st.subheader("De-identified request")
    st.caption(NOTHING_STORED)
    query = prepared.query
    if prepared.changes:
        st.markdown(f"**DICOM header**: {len(prepared.changes)} elements changed (values not shown)")
        st.dataframe([change.to_dict() for change in prepared.changes], hide_index=True, height=210,
                     key="ask.deid.table")
    elif query.dicom is None and query.image is not None:
        st.markdown("**Image**: PNG/JPEG, no header to clean.")
    if query.scrubbed:
        found = ", ".join(f"{count} {kind}" for kind, count in sorted(query.scrubbed.items()))
        st.markdown(f"**Text**: replaced {md.escape(found)}")
    else:
        st.markdown("**Text**: no names, dates or identifiers found.")
    if query.note:
        st.markdown(f"Note as searched: {md.escape(query.note)}")
    if query.question:
        st.markdown(f"Question as searched: {md.escape(query.question)}")


def _current_answer(signature: str) -> Answer | None:
    stored = st.session_state.get(_ANSWER)
    return stored[1] if stored and stored[0] == signature else None


def signed_in_user(headers: Mapping[str, str], header: str | None, login: Mapping[str, Any]) -> str | None:
    """Who uses the app, for the audit trail (the app's process runs as a service account, so the default actor
    would name nobody): the user the hospital's proxy names in ``[audit] actor_header``; with that header
    configured but absent the request did not come through the proxy, and the trail says so rather than guess.
    Without the setting, Streamlit's own login (``st.user``) if any; else None, the trail's default actor."""
    if header:
        named = (headers.get(header) or "").strip()
        return named[:200] if named else f"unauthenticated (no {header} header)"
    if login.get("is_logged_in"):
        return str(login.get("email") or login.get("name") or login.get("sub"))
    return None


def _ask(assistant: Assistant, prepared: Prepared, mode: str, k: int) -> Answer | None:
    """Search and answer; a generative answer streams into a draft (citations appear once checked)."""
    query = prepared.query
    draft = st.empty()
    streamed: list[str] = []

    def on_token(piece: str) -> None:
        streamed.append(piece)
        draft.markdown(f"*Draft, being written and not yet checked:* {md.draft_markdown(''.join(streamed))}")

    with st.spinner("Searching the knowledge base and writing the answer…"):
        try:
            answer = assistant.ask(query.question or None, query.note or None, query.image, mode=mode, k=k,
                                   on_token=on_token, actor=signed_in_user(st.context.headers,
                                                                           config().audit.actor_header,
                                                                           st.user.to_dict()))
        except ValueError as error:
            st.error(md.escape(str(error)))
            return None
    draft.empty()
    st.session_state[_ANSWER] = (prepared.signature, answer)
    return answer


def _show_answer(answer: Answer, mode: str, k: int) -> None:
    st.subheader(answer.heading)
    st.caption(DRAFT_NOTICE)
    if answer.insufficient:
        st.warning(md.escape(INSUFFICIENT), icon=":material/search_off:")
    else:
        st.markdown(md.answer_markdown(answer))
    if answer.decision:
        decision = answer.decision
        # a confidence is not a change: no arrow, no colour
        shown = decision.headline.capitalize() if decision.abstained else decision.label.upper()
        st.metric("Decision", shown, f"confidence {decision.confidence:.2f}", delta_color="off", delta_arrow="off")
        st.caption(f"{md.escape(decision.decider)}. Reliability: {md.escape(decision.reliability)}")
    _image_reads(answer)
    for claim in answer.dropped:
        st.markdown(md.dropped_markdown(claim))
    for warning in answer.warnings + answer.search.warnings:
        st.warning(md.escape(warning))
    _route(answer)
    _evidence_cards(answer)
    _provenance(answer)
    _feedback(answer, mode, k)


def _image_reads(answer: Answer) -> None:
    """The model's read of the image: a probability beside the AUC it reached on unseen patients, never a
    diagnosis, and visibly apart from the cited answer (it cites no source)."""
    reads = answer.search.reads
    if not reads:
        return
    with st.container(border=True, key="image-reads"):
        st.markdown("**Model read of the image** (not a diagnosis; no source behind it)")
        for column, read in zip(st.columns(len(reads)), reads, strict=True):
            low, high = read.auc_interval
            column.metric(f"{read.inputs}: {read.task}", read.label,
                          f"probability {read.probabilities[read.label]:.2f}", delta_color="off", delta_arrow="off")
            column.caption(md.escape(f"Measured AUC {read.auc:.2f} [{low:.2f}-{high:.2f}] on {read.held_out}."))


def _route(answer: Answer) -> None:
    route = answer.route
    with st.expander(f"Route: {route.intent} ({route.confidence:.0%})", expanded=False):
        st.markdown(f"**Why**: {md.escape(route.reason)}")
        if route.rules:
            st.markdown("**Rules that fired**: " + "; ".join(md.escape(rule) for rule in route.rules))
        st.bar_chart({"probability": route.probabilities}, horizontal=True, height=160)
        st.dataframe([{"source": s.collection, "weight": s.weight, "hybrid alpha": s.alpha, "depth": s.limit}
                      for s in route.searches], hide_index=True)
        if route.image_search:
            st.markdown("The image was searched against the joint vectors of reports and cases.")


def _evidence_cards(answer: Answer) -> None:
    st.subheader("Evidence")
    cited: dict[tuple[str, str], dict[int, list[int]]] = {}
    for citation in answer.citations:
        sentences = cited.setdefault((citation.collection, citation.source_id), {})
        sentences.setdefault(citation.sentence_index, []).append(citation.number)
    fusion = answer.search.fusion
    for index, item in enumerate(answer.evidence, 1):
        marks = cited.get((item.collection, item.source_id), {})
        with st.container(border=True, key=f"card-{index}"):
            numbers = sorted(n for group in marks.values() for n in group)
            label = citation_label(item.collection, item.source_id)
            cited_as = f" — cited as {md.escape(', '.join(f'[{n}]' for n in numbers))}" if numbers else ""
            st.subheader(f"{index}. {md.escape(label)}{cited_as}", anchor=md.card_anchor(index))
            url = md.pubmed_url(item.source_id) if item.collection == ARTICLES else None
            if url:
                st.markdown(f"[Open PMID {item.source_id} on PubMed]({url})")
            if item.properties.get("title"):
                st.markdown(f"**{md.escape(item.properties['title'])}**")
            for sentence_index, numbers_here in sorted(marks.items()):
                sentences = item.properties.get("sentences") or []
                if sentence_index < len(sentences):
                    st.markdown(md.highlighted(sentences[sentence_index], numbers_here))
            score = f"retrieval score {item.score:.4f}; ranks " + ", ".join(f"{k} #{v}" for k, v in item.ranks.items())
            if fusion:
                score += f"; fusion score {fusion.scores[index - 1]:.3f} (was #{fusion.retrieval_ranks[index - 1]})"
            st.caption(md.escape(score))
            _sentences(item.properties.get("sentences") or item.passages, marks,
                       fusion.sentence_attention[index - 1] if fusion else None, index)


def _sentences(sentences: list[str], marks: dict[int, list[int]], attention: list[float] | None, index: int) -> None:
    """Every sentence with the share of the fusion's attention on it (bars) and the citations that quote it."""
    rows = [{"cited": " ".join(f"[{n}]" for n in marks.get(i, [])), "sentence": sentence,
             **({"attention": attention[i]} if attention and i < len(attention) else {})}
            for i, sentence in enumerate(sentences)]
    with st.expander(f"All {len(rows)} sentences" + (" with the fusion's attention" if attention else "")):
        st.dataframe(rows, hide_index=True, key=f"ask.sentences.{index}", column_config={
            "attention": st.column_config.ProgressColumn("attention", min_value=0.0,
                                                         max_value=max([r.get("attention", 0) for r in rows] + [1e-9]),
                                                         format="%.3f"),
            "sentence": st.column_config.TextColumn("sentence", width="large")})


def _provenance(answer: Answer) -> None:
    with st.expander("Timings and models"):
        st.dataframe([{"stage": stage, "ms": round(ms, 1)} for stage, ms in answer.timings_ms.items()],
                     hide_index=True)
        st.dataframe([{"step": step, "model": model} for step, model in answer.models.items()], hide_index=True)
    left, right = st.columns(2)
    left.download_button("FHIR DiagnosticReport (draft)", json.dumps(answer.to_fhir(), indent=2),
                         file_name="medrag-diagnostic-report.json", mime="application/fhir+json", key="ask.fhir")
    right.download_button("Answer as JSON", json.dumps(answer.to_dict(), indent=2), file_name="medrag-answer.json",
                          mime="application/json", key="ask.json")


def _feedback(answer: Answer, mode: str, k: int) -> None:
    with st.form("ask.feedback", clear_on_submit=True):
        st.markdown("**Feedback on this answer**")
        verdict = st.radio("Verdict", VERDICTS, horizontal=True, key="ask.feedback.verdict")
        comment = st.text_area("Comment (optional; names and identifiers are removed before saving)",
                               key="ask.feedback.comment")
        if st.form_submit_button("Send feedback"):
            settings = config()
            save_feedback(feedback_record(answer, verdict, comment, settings, mode, k), settings.feedback_file)
            st.success("Thank you: feedback saved.")

