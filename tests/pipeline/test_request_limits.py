"""The question and the note at the request entry (issue 18): too long or not valid Unicode is refused with an error
naming the field and the fix; anything else, in any script, is prepared; the fuzzer runs here on a few dozen cases."""

from __future__ import annotations

import pytest
from hypothesis import given

from medrag.config import LimitsConfig, load_config
from medrag.deid.dicom import DicomDeidentifier
from medrag.pipeline.prepare import QueryPreparer, RequestRejected
from reliability.hostile_input import check_request, fuzz_settings, requests


@pytest.fixture(scope="module")
def prepare() -> QueryPreparer:
    return QueryPreparer(DicomDeidentifier(b"request-limits-test-key"))


@fuzz_settings(60)
@given(case=requests)
def test_any_question_and_note_is_prepared_or_refused_by_name(prepare: QueryPreparer, case) -> None:
    check_request(case, prepare)


@pytest.mark.parametrize("field", ["question", "note"])
def test_a_text_over_the_limit_is_refused_before_the_scrubber(prepare: QueryPreparer, field: str) -> None:
    limit = prepare.limits.max_query_chars
    assert limit == 20_000
    with pytest.raises(RequestRejected) as raised:
        prepare(**{field: "x" * (limit + 1)})
    assert raised.value.field == field
    assert f"the {field} has 20001 characters, over the limit of 20000" in str(raised.value)
    assert "MEDRAG_LIMITS_MAX_QUERY_CHARS" in str(raised.value)
    assert prepare(**{field: "pneumonia " * (limit // 10)}) is not None  # at the limit: prepared


def test_a_lone_surrogate_is_refused_naming_the_field(prepare: QueryPreparer) -> None:
    with pytest.raises(RequestRejected, match="the note is not valid Unicode text") as raised:
        prepare(question="Is there an effusion?", note="fever \ud83d since Monday")
    assert raised.value.field == "note" and "character 6" in str(raised.value)


def test_a_non_text_question_is_refused(prepare: QueryPreparer) -> None:
    with pytest.raises(RequestRejected, match="the question must be text, not bytes"):
        prepare(question=b"Is there an effusion?")


def test_other_scripts_and_emoji_pass_through(prepare: QueryPreparer) -> None:
    question = "肺炎の所見はありますか? مرحبا 🫁"
    prepared = prepare(question=question, note="\u202eRTL override\u202c and a\x00NUL")
    assert prepared.question == question
    assert "RTL override" in prepared.note


def test_the_limit_comes_from_the_environment() -> None:
    config = load_config(env={"MEDRAG_LIMITS_MAX_QUERY_CHARS": "50", "MEDRAG_LIMITS_MAX_FILE_MB": "3"})
    assert config.limits == LimitsConfig(max_file_mb=3, max_query_chars=50)
    prepare = QueryPreparer(DicomDeidentifier(b"k"), limits=config.limits)
    with pytest.raises(RequestRejected, match="over the limit of 50"):
        prepare(question="y" * 51)
