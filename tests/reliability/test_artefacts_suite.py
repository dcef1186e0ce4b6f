"""The persisted-artefacts area: the de-identification set ingested and asked about through a real Assistant and
Weaviate, then every file and log line searched for the planted values."""

from __future__ import annotations

from pathlib import Path

import pydicom

from reliability import SUITES
from reliability.artefacts import KEPT_WORD, _texts, dicom_needles, files_containing, run
from reliability.deid_validation import RETAINED, Expectation


def test_no_planted_value_is_left_in_any_file_or_log_and_the_controls_see_the_data(config, weaviate_binary,
                                                                                  tmp_path: Path) -> None:
    figures = run(config, tmp_path, quick=True)
    assert figures["hits in files"] == {} and figures["hits in logs"] == []
    assert figures["headline"]["planted values found in persisted artefacts"] == 0
    assert figures["cases ingested"] == 4 and figures["ingest failures"] == []
    assert figures["audit lines"] >= figures["questions asked"] == 3
    # Controls: every value searched for is in the inputs, and the text that is kept reaches Weaviate and the trail.
    assert figures["found in the inputs (control)"] == figures["planted values searched"] > 100
    assert figures["files holding the kept word (control)"] > 1 and figures["audit trail holds the kept word (control)"]
    assert figures["passed"] is True and SUITES["artefacts"] is run


def test_needles_cover_names_bytes_and_several_values_but_not_dates_or_retained(tmp_path: Path) -> None:
    def planted(vr: str, value: object, action: str = "removed") -> Expectation:
        return Expectation("f.dcm", (0x0010_0010,), "PatientName", vr, action, "X", value, "p0")

    key = [planted("PN", "Quillfeather^Thaddeus"), planted("OB", b"MRN-8530042|Brackenbury\x00\x00"),
           planted("LO", pydicom.multival.MultiValue(str, ["NHS4483564532", "H3835821"])),
           planted("DA", "20190412"), planted("LO", "Kessington PACS", RETAINED), planted("CS", "M")]
    assert dicom_needles(key) == {"quillfeather^thaddeus", "quillfeather", "thaddeus", "mrn-8530042|brackenbury",
                                  "nhs4483564532", "h3835821"}
    assert _texts(pydicom.Sequence([])) == []
    (tmp_path / "a.bin").write_bytes(b"\x00\x01QUILLFEATHER\x02" + KEPT_WORD.encode())
    (tmp_path / "blob.b64").write_bytes(b"Kz7paUlEKvThaddeus1")  # inside a base64 run: chance, not a leak
    (tmp_path / "note.txt").write_bytes(b"spoke with his wife Paul, about")
    assert files_containing([tmp_path], {"quillfeather", "thaddeus", "paul"}) == {
        str(tmp_path / "a.bin"): ["quillfeather"], str(tmp_path / "note.txt"): ["paul"]}
