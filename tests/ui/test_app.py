"""The app's logic through Streamlit's AppTest, against the real server, models and demo knowledge."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import pydicom
from streamlit.testing.v1 import AppTest

from medrag.types import INSUFFICIENT, Answer
from tests.ui.conftest import APP

LITERATURE_QUESTION = "Is the treatment of hospital-acquired pneumonia delayed when it is diagnosed at night?"
NOTE = "Fever and dry cough for five days, bilateral ground-glass opacities. Seen by Dr. John Smith on 03/04/2025."


def _app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=300)


def _texts(at: AppTest) -> str:
    """Everything the page shows as text (markdown, captions, alerts, subheaders, tables)."""
    parts = [str(element.value) for kind in ("markdown", "caption", "subheader", "title", "error", "warning",
                                              "info", "success", "metric") for element in getattr(at, kind)]
    parts += [element.value.to_csv() for element in at.dataframe]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))  # as read: markdown escapes removed


def _upload(at: AppTest, name: str, payload: bytes, note: str = "", question: str = "") -> AppTest:
    at.file_uploader(key="ask.image").set_value((name, payload, "application/dicom"))
    at.text_area(key="ask.note").set_value(note)
    at.text_input(key="ask.question").set_value(question)
    return at.run()


def _answer(at: AppTest) -> Answer:
    return at.session_state["ask.answer"][1]


def test_the_request_is_de_identified_and_shown_before_anything_is_searched(app_environment, dicom_study) -> None:
    name, payload = dicom_study
    patient = str(pydicom.dcmread(io.BytesIO(payload), stop_before_pixels=True).PatientName)
    at = _upload(_app().run(), name, payload, NOTE)
    assert not at.exception, at.exception
    shown = _texts(at)
    assert "PatientName" in shown and "replaced" in shown  # the header report names tags and actions
    assert "[NAME]" in shown and "[DATE]" in shown  # the note as it will be searched
    for identifier in (patient, "John Smith", "03/04/2025"):
        assert identifier not in shown
    assert "Nothing you give here is stored" in shown
    assert "ask.answer" not in at.session_state  # nothing searched yet
    assert len(at.image) == 1 and at.slider(key=next(k for k in _keys(at) if k.endswith(".center"))).value


def _keys(at: AppTest) -> list[str]:
    return [widget.key for kind in ("slider", "toggle", "selectbox") for widget in getattr(at, kind)
            if widget.key and widget.key.startswith("view.")]


def test_ask_gives_a_cited_answer_whose_numbers_link_to_existing_cards_and_a_heatmap(app_environment,
                                                                                      dicom_study) -> None:
    name, payload = dicom_study
    at = _upload(_app().run(), name, payload, NOTE)
    at.button(key="ask.go").click().run()
    assert not at.exception, at.exception
    answer = _answer(at)
    assert not answer.insufficient and answer.citations
    linked = next(m.value for m in at.markdown if "](#evidence-" in m.value)
    links = [(int(n), int(card)) for n, card in re.findall(r"\[\\\[(\d+)\\\]\]\(#evidence-(\d+)\)", linked)]
    assert {n for n, _ in links} == {c.number for c in answer.citations}
    anchors = {int(anchor.removeprefix("evidence-")) for heading in at.subheader
               if (anchor := heading.proto.anchor).startswith("evidence-")}
    assert anchors == set(range(1, len(answer.evidence) + 1))
    for number, card in links:  # each number points at the card of the source it cites
        citation = next(c for c in answer.citations if c.number == number)
        item = answer.evidence[card - 1]
        assert (item.collection, item.source_id) == (citation.collection, citation.source_id)
    assert answer.search.fusion is not None and answer.search.fusion.image_attention
    heat = next(k for k in _keys(at) if k.endswith(".heat"))
    assert at.toggle(key=heat).value is True
    heat_caption = next(caption for caption in _image_captions(at) if "attention while reading" in caption)
    assert re.search(r"hottest cell \d\.\d\dx an even map", heat_caption), "a min-max scaled map says how even it is"
    assert len(at.image) == 2  # the radiograph with the heatmap, and its colour bar
    assert {b.label for b in at.get("download_button")} == {"FHIR DiagnosticReport (draft)", "Answer as JSON"}
    # the model's read of the image and of image + note, each beside its measured AUC, not as a cited claim
    assert [read.inputs for read in answer.search.reads] == ["image", "image + note"]
    shown = {metric.label: metric.value for metric in at.metric}
    for read in answer.search.reads:
        assert shown[f"{read.inputs}: {read.task}"] == read.label
        assert f"Measured AUC {read.auc:.2f}" in _texts(at)


def _image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def test_two_sessions_never_see_each_others_upload_or_answer(app_environment, app_env, dicom_study) -> None:
    name, payload = dicom_study
    first = _upload(_app().run(), name, payload, "Left apical cavity, query tuberculosis.")
    first.button(key="ask.go").click().run()
    second = _app().run()
    second.text_input(key="ask.question").set_value(LITERATURE_QUESTION).run()
    second.button(key="ask.go").click().run()
    assert not first.exception and not second.exception
    mine, theirs = _answer(first), _answer(second)
    assert "tuberculosis" not in _texts(second) and len(second.image) == 0 and "ask.prepared" in second.session_state
    assert second.session_state["ask.prepared"].query.image is None
    assert LITERATURE_QUESTION not in _texts(first.run())
    assert _answer(first).text == mine.text and _answer(second).text == theirs.text != mine.text
    home = Path(app_env["MEDRAG_HOME"])
    written = [path for path in home.rglob("*") if path.is_file() and "weaviate" not in path.parts]
    # No upload on disk: the key, feedback and the audit trail (de-identified text only) are all the app writes.
    allowed = ("deid.key", "feedback.jsonl", "audit.jsonl", "audit.jsonl.lock")
    assert all(path.name in allowed for path in written), written


def test_feedback_is_saved_as_a_json_line_without_phi(app_environment, app_env, dicom_study, tmp_path,
                                                      monkeypatch) -> None:
    feedback = tmp_path / "feedback.jsonl"
    monkeypatch.setenv("MEDRAG_UI_FEEDBACK_FILE", str(feedback))
    name, payload = dicom_study
    at = _upload(_app().run(), name, payload, NOTE)
    at.button(key="ask.go").click().run()
    at.radio(key="ask.feedback.verdict").set_value("wrong evidence")
    at.text_area(key="ask.feedback.comment").set_value("Card 2 is about another patient, ask John Smith 555-123-4567")
    next(b for b in at.get("form_submit_button") if b.label == "Send feedback").click().run()
    assert not at.exception, at.exception
    (line,) = feedback.read_text().splitlines()
    record = json.loads(line)
    answer = _answer(at)
    assert record["verdict"] == "wrong evidence" and record["had_image"] and record["had_note"]
    assert record["evidence"] == [f"{e.collection}/{e.source_id}" for e in answer.evidence]
    assert record["models"]["reranker"] and record["config"]["reranker"] == "fusion"
    for phi in ("John Smith", "555-123-4567", "Fever and dry cough", "03/04/2025"):
        assert phi not in line
    assert "another patient" in record["comment"]


def test_an_unanswerable_question_shows_insufficient_evidence(app_environment) -> None:
    at = _app().run()
    at.text_input(key="ask.question").set_value("What is the melting point of tungsten in a vacuum furnace?").run()
    at.button(key="ask.go").click().run()
    assert _answer(at).insufficient
    assert INSUFFICIENT in _texts(at) and at.warning


def test_a_file_above_the_upload_cap_or_not_an_image_gets_a_clear_message(app_environment, dicom_study,
                                                                          monkeypatch) -> None:
    name, payload = dicom_study
    monkeypatch.setenv("MEDRAG_UI_MAX_UPLOAD_MB", "1")
    at = _upload(_app().run(), name, payload + b"\0" * (1 << 20))
    assert not at.exception and "above the limit of 1 MB" in _texts(at)
    monkeypatch.delenv("MEDRAG_UI_MAX_UPLOAD_MB")
    at = _upload(_app().run(), "notes.dcm", b"\0" * 128 + b"DICM" + b"not really a dataset")
    assert not at.exception and "notes.dcm: " in _texts(at) and at.error


def test_the_knowledge_page_counts_and_reports_problems_per_file(app_environment, app_env) -> None:
    def page() -> None:
        from ui.views.knowledge import render

        render()

    at = AppTest.from_function(page, default_timeout=300).run()
    counts = at.dataframe[0].value
    tenant_rows = counts[counts["tenant"] == app_env["MEDRAG_WEAVIATE_TENANT"]]
    assert set(tenant_rows["collection"]) == {"PubmedArticle", "RadiologyReport", "ImagingCase"}
    assert (tenant_rows["objects"] > 0).all()
    at.selectbox(key="kb.collection").set_value("RadiologyReport")
    at.file_uploader(key="kb.files").set_value([("broken.xml", b"<eCitation><unclosed>", "text/xml")])
    at.run()
    at.button(key="kb.go").click().run()
    assert not at.exception, at.exception
    problems = at.dataframe[-1].value
    assert "broken.xml" in " ".join(problems["record"]) and problems["reason"].str.len().min() > 10
    assert any("RadiologyReport" in w.value for w in [*at.warning, *at.success])


def test_the_evaluation_page_shows_the_reports_and_their_plots(app_environment) -> None:
    def page() -> None:
        from ui.views.evaluation import render

        render()

    at = AppTest.from_function(page, default_timeout=120).run()
    assert not at.exception, at.exception
    labels = [expander.label for expander in at.expander]
    assert any(label.endswith("ablation.md") for label in labels)
    assert any("MODEL_CARD.md" in label for label in labels)
    assert len(at.image) >= 3


def test_a_generative_answer_streams_then_shows_only_checked_citations_with_cards(app_environment, pubmedqa) -> None:
    question = next(iter(pubmedqa.values()))["QUESTION"]  # its abstract is in the knowledge tenant
    at = _app().run()
    at.selectbox(key="ask.mode").set_value("generative")
    at.text_input(key="ask.question").set_value(question).run()
    at.button(key="ask.go").click().run()
    assert not at.exception, at.exception
    answer = _answer(at)
    assert answer.mode == "generative" and answer.tokens > 0
    shown = "\n".join(m.value for m in at.markdown)
    assert "Draft, being written" not in shown  # the streamed draft gives way to the checked answer
    numbers = {int(n) for n in re.findall(r"\[\\\[(\d+)\\\]\]\(#evidence-", shown)}
    assert numbers == {c.number for c in answer.citations}
    struck = [m.value for m in at.markdown if m.value.startswith("~~")]
    assert len(struck) == len(answer.dropped)
    if answer.decision:
        decision = answer.decision
        expected = decision.headline.capitalize() if decision.abstained else decision.label.upper()
        assert any(metric.value == expected for metric in at.metric)


def test_an_unreachable_knowledge_base_is_a_message_not_a_stack_trace(monkeypatch) -> None:
    monkeypatch.setenv("MEDRAG_WEAVIATE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("MEDRAG_WEAVIATE_GRPC_PORT", "9")
    monkeypatch.setenv("MEDRAG_WEAVIATE_TIMEOUT", "3")
    at = _app().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    shown = _texts(at)
    assert "The knowledge base (Weaviate) is not available" in shown and "127.0.0.1:9" in shown
    assert not at.file_uploader  # the page stops instead of offering what it cannot do


def test_an_empty_knowledge_base_says_so_and_offers_the_demo(app_environment, store, monkeypatch) -> None:
    empty = store.create_tenant(f"empty-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MEDRAG_WEAVIATE_TENANT", empty)
    at = _app().run()
    assert not at.exception, at.exception
    assert f"The knowledge base (tenant {empty}) is empty" in _texts(at)
    assert at.button(key="ask.demo").label == "Load the demo knowledge base"


def test_the_audit_trail_names_who_the_proxy_signed_in_or_says_nobody_did(app_environment, app_env,
                                                                         monkeypatch) -> None:
    monkeypatch.setenv("MEDRAG_AUDIT_ACTOR_HEADER", "X-Forwarded-Email")
    at = _app().run()
    at.text_input(key="ask.question").set_value(LITERATURE_QUESTION).run()
    at.button(key="ask.go").click().run()
    assert not at.exception
    trail = Path(app_env["MEDRAG_HOME"]) / "audit" / "audit.jsonl"
    last = json.loads(trail.read_text().splitlines()[-1])
    # AppTest sends no headers: a request that did not come through the proxy is recorded as such, not as the
    # app's service account.
    assert last["actor"] == "unauthenticated (no X-Forwarded-Email header)"


def test_the_signed_in_user_comes_from_the_proxy_header_else_streamlits_login() -> None:
    from ui.views.ask import signed_in_user

    proxy = {"X-Forwarded-Email": " radiologist@hospital.example "}
    assert signed_in_user(proxy, "X-Forwarded-Email", {}) == "radiologist@hospital.example"
    assert signed_in_user({}, "X-Forwarded-Email", {"is_logged_in": True, "email": "x@y"}) == (
        "unauthenticated (no X-Forwarded-Email header)")
    assert signed_in_user(proxy, None, {"is_logged_in": True, "email": "doctor@hospital.example"}) == (
        "doctor@hospital.example")
    assert signed_in_user(proxy, None, {"is_logged_in": False}) is None
