"""The one PubMedQA reader: typed records, and errors that name the file, the PMID and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medrag.datasets.pubmedqa import DECISIONS, read_pubmedqa

pytestmark = pytest.mark.unit

GOOD = {
    "21645374": {"QUESTION": " Do mitochondria play a role in remodelling lace plant leaves? ",
                 "CONTEXTS": ["Programmed cell death (PCD) is ...", "The following stages ..."],
                 "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": ["Apoptosis"], "YEAR": "2011",
                 "LONG_ANSWER": "Results depicted mitochondrial dynamics in vivo.", "final_decision": "yes"},
    "16418930": {"QUESTION": "Landolt C and snellen e acuity: differences in strabismus amblyopia?",
                 "CONTEXTS": ["Assessment of visual acuity ..."], "LABELS": ["BACKGROUND"], "final_decision": "no"},
}


def _write(tmp_path: Path, content: object, name: str = "qa.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_records_are_typed_in_file_order_with_their_group(tmp_path):
    records = read_pubmedqa(_write(tmp_path, GOOD), require_decision=True)
    assert [record.pmid for record in records] == ["21645374", "16418930"]
    first, second = records
    assert first.question == "Do mitochondria play a role in remodelling lace plant leaves?"
    assert first.contexts[1] == "The following stages ..." and first.labels == ("BACKGROUND", "RESULTS")
    assert first.final_decision == "yes" and first.group == "pubmedqa:21645374"
    assert second.long_answer == "" and second.final_decision in DECISIONS


def test_an_unlabelled_file_reads_unless_labels_are_required(tmp_path):
    unlabelled = {pmid: {key: value for key, value in entry.items() if key != "final_decision"}
                  for pmid, entry in GOOD.items()}
    path = _write(tmp_path, unlabelled)
    assert [record.final_decision for record in read_pubmedqa(path)] == [None, None]
    with pytest.raises(ValueError, match=r"qa\.json: PMID 21645374: field 'final_decision' is missing"):
        read_pubmedqa(path, require_decision=True)


@pytest.mark.parametrize(("change", "message"), [
    ({"QUESTION": "  "}, r"PMID 16418930: field 'QUESTION' is missing or empty"),
    ({"final_decision": "perhaps"}, r"PMID 16418930: field 'final_decision' is 'perhaps'; it must be one of yes"),
    ({"CONTEXTS": "one string"}, r"PMID 16418930: field 'CONTEXTS' must be a list of strings, got str"),
    ({"LABELS": ["A", "B"]}, r"PMID 16418930: field 'LABELS' has 2 labels for 1 CONTEXTS"),
    ({"LONG_ANSWER": ["x"]}, r"PMID 16418930: field 'LONG_ANSWER' must be a string"),
])
def test_a_bad_record_names_file_pmid_and_field(tmp_path, change, message):
    broken = {**GOOD, "16418930": {**GOOD["16418930"], **change}}
    path = _write(tmp_path, broken, "broken.json")
    with pytest.raises(ValueError, match=rf"broken\.json: {message}"):
        read_pubmedqa(path)


def test_a_file_that_is_not_pubmedqa_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"cut\.json: not valid JSON"):
        read_pubmedqa(_write(tmp_path, '{"1": {"QUESTION": ', "cut.json"))
    with pytest.raises(ValueError, match=r"list\.json: expected a non-empty JSON object PMID"):
        read_pubmedqa(_write(tmp_path, [GOOD], "list.json"))
    with pytest.raises(ValueError, match=r"record\.json: PMID 1: the record must be a JSON object"):
        read_pubmedqa(_write(tmp_path, {"1": "Is it?"}, "record.json"))
