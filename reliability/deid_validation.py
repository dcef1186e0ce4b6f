"""De-identification validated the way the MIDI-B challenge does: planted PHI, an answer key, a score.

Two parts, both generated from a seed so the key is exact:

* DICOM: :func:`make_dicom_set` writes synthetic radiographs (patients x studies x images) with made-up PHI in
  every value representation that can carry it, in nested sequences, private blocks, overlays, curves,
  annotations and the file meta, and an :class:`Expectation` per planted attribute that says what PS3.15
  Annex E (Basic Profile, Retain Longitudinal Temporal Information with Modified Dates, Retain Patient
  Characteristics for sex and age: the options ``medrag.deid.dicom`` claims) requires of it.
  :func:`score_dicom` checks the output of the ingest path's de-identifier against that key, file by file and
  across files (one date offset and one pseudonym per patient, one new UID per original UID).
* Free text: :func:`make_notes` writes clinical notes and radiology reports with planted identifiers per
  category; :func:`score_text` measures the scrubber's recall per category, and :func:`clinical_preservation`
  how many words of normal radiology sentences it keeps (the precision check).

``python -m reliability --only deid`` runs both (small sets with ``--quick``); the tests in
``tests/deid/test_deid_validation.py`` hold the same requirements on seeded sets.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from medrag.config import Config
from medrag.deid.dicom import DicomDeidentifier
from medrag.deid.text import PLACEHOLDERS, TextScrubber
from medrag.imaging.radiograph import read_dicom
from reliability import register_suite

# ---------------------------------------------------------------------------------------------------------------
# DICOM: the answer key's actions
# ---------------------------------------------------------------------------------------------------------------

REMOVED = "removed"
"""The value is gone: X means the element is absent; Z also allows a zero-length value; a code with D also
allows a dummy that shares no word (no value, for UIDs) with the original."""
RETAINED = "retained"
"""K, or an attribute the profile does not list (acquisition and pixel description): the value is unchanged."""
DATE_SHIFTED = "date shifted"
"""Modified Dates option: the date moved by the patient's one offset (not zero), the same in every file and
every date attribute of that patient; a DT keeps its time of day and zone."""
UID_REPLACED = "UID replaced"
"""U: a valid new UID; one original maps to one new UID in every file and sequence (so references follow),
and two originals never to the same one."""
PSEUDONYM = "pseudonym"
"""PatientID / PatientName: replaced by a value that shares no word with the original, the same for one patient
in every file, different between patients."""
AGE_GENERALISED = "age generalised"
"""Retain Patient Characteristics keeps the age, but HIPAA Safe Harbor groups ages over 89: ``090Y``."""

ACTIONS = (REMOVED, RETAINED, DATE_SHIFTED, UID_REPLACED, PSEUDONYM, AGE_GENERALISED)

Location = tuple[int, ...]
"""Tag, item index, tag, item index, ..., tag: where an attribute sits, sequences included."""

PRIVATE_CREATORS = ("KESSINGTON PACS 2.1", "QUENBURY RIS 7")
_CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
_STUDY_ROOT = UID("1.2.840.10008.3.1.2.3.1")
_CODE_RETAINED = "K / not listed"
_FAMILY = ("Quillfeather", "Varncastle", "Oakenhurst", "Brackenbury", "Marchbanks", "Fennimore", "Thistlewood",
           "Quarrington", "Pellinore", "Ashcombe", "Wetherall", "Dunsmere", "Holloway", "Castellane")
_GIVEN = ("Ottoline", "Perpetua", "Thaddeus", "Isolde", "Leopold", "Wilhelmina", "Cornelius", "Seraphina",
          "Barnaby", "Clementine", "Ignatius", "Rosalind", "Evander", "Philippa")
_PLACES = ("Varnholt", "Kessington", "Thistlecombe", "Quenbury", "Abbotsmere", "Wrexholme", "Pellbridge")


@dataclass(frozen=True)
class Expectation:
    """One planted attribute of one file and what the profile requires of it."""

    file: str
    location: Location
    attribute: str
    """Readable path: ``ViewCodeSequence[0].ViewModifierCodeSequence[0].PatientID``."""
    vr: str
    action: str
    standard: str
    """The PS3.15 Table E.1-1 code (or option) the action comes from."""
    original: Any
    patient: str
    meta: bool = False
    """In the file meta group (0002) rather than the dataset."""


@dataclass(frozen=True)
class SyntheticDicom:
    """One written file: its name, its Part 10 bytes, and the patient it belongs to."""

    name: str
    data: bytes
    patient: str


@dataclass
class _Planter:
    """Sets elements and writes the key entry for each in the same step, so the two cannot drift apart."""

    file: str
    patient: str
    key: list[Expectation]

    def put(self, item: Dataset, prefix: Location, names: str, tag: int, vr: str, value: Any, action: str,
            standard: str, *, meta: bool = False) -> None:
        item.add(DataElement(tag, vr, value))
        label = pydicom.datadict.keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        self.key.append(Expectation(self.file, (*prefix, tag), f"{names}{label}", vr, action, standard,
                                    item[tag].value, self.patient, meta))


@dataclass(frozen=True)
class _Person:
    """A made-up patient and the staff and places around them."""

    key: str
    family: str
    given: str
    birth: date
    age: str
    place: str

    @property
    def name(self) -> str:
        return f"{self.family}^{self.given}"


def make_dicom_set(patients: int = 2, studies: int = 2, images: int = 2, seed: int = 0
                   ) -> tuple[list[SyntheticDicom], list[Expectation]]:
    """``patients x studies x images`` Part 10 files with planted PHI, and the answer key for all of them.

    Patient 0 is 93 (the age must be generalised), the others younger; each study has its own date and UIDs, and
    each image references the other images of its study, so references must follow the UID replacement.
    """
    rng = random.Random(seed)
    files: list[SyntheticDicom] = []
    key: list[Expectation] = []
    for p in range(patients):
        person = _person(rng, p)
        for s in range(studies):
            study_day = date(2015, 1, 1) + timedelta(days=rng.randrange(0, 3000))
            uids = _study_uids(seed, p, s, images)
            for i in range(images):
                name = f"p{p}s{s}i{i}.dcm"
                planter = _Planter(name, person.key, key)
                dataset = _phi_dataset(planter, person, study_day, uids, i, rng)
                buffer = io.BytesIO()
                pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
                files.append(SyntheticDicom(name, buffer.getvalue(), person.key))
    return files, key


def _person(rng: random.Random, index: int) -> _Person:
    family, given = _FAMILY[index % len(_FAMILY)], rng.choice(_GIVEN)
    birth = date(1925 if index == 0 else rng.randrange(1940, 2000), rng.randrange(1, 13), rng.randrange(1, 29))
    age = "093Y" if index == 0 else f"{rng.randrange(20, 80):03d}Y"
    return _Person(f"MRN-{rng.randrange(10**6, 10**7)}", family, given, birth, age, rng.choice(_PLACES))


def _study_uids(seed: int, patient: int, study: int, images: int) -> dict[str, Any]:
    """Deterministic original UIDs of one study (pydicom's root, entropy from the indices)."""

    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=[str(seed), str(patient), str(study), *map(str, parts)])

    return {
        "study": uid("study"), "series": uid("series"), "frame": uid("frame"),
        "sop": [uid("sop", i) for i in range(images)], "event": [uid("event", 0), uid("event", 1)],
    }


def _phi_dataset(plant: _Planter, person: _Person, study_day: date, uids: dict[str, Any], image: int,
                 rng: random.Random) -> Dataset:
    """One image's dataset: every kind of planted attribute, each keyed through ``plant``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    meta = ds.file_meta
    sop = uids["sop"][image]
    other = uids["sop"][(image + 1) % len(uids["sop"])]
    station = f"{person.place.upper()[:6]}WS{rng.randrange(10, 99)}"
    meta.MediaStorageSOPClassUID = _CR_IMAGE_STORAGE
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    put = plant.put
    put(meta, (), "file meta.", 0x00020003, "UI", sop, UID_REPLACED, "U", meta=True)
    put(meta, (), "file meta.", 0x00020012, "UI", f"1.2.826.0.1.3680043.9.{rng.randrange(10**6)}", REMOVED,
        "D: the writer's own identity", meta=True)
    put(meta, (), "file meta.", 0x00020013, "SH", f"{person.family[:8].upper()}_WS", REMOVED,
        "D: the writer's own identity", meta=True)
    put(meta, (), "file meta.", 0x00020016, "AE", station, REMOVED, "X (names the sending station)", meta=True)

    day = study_day.strftime("%Y%m%d")
    staff = [f"{f}^{g}" for f, g in zip(rng.sample([f for f in _FAMILY if f != person.family], 8),
                                         rng.sample(_GIVEN, 8), strict=True)]
    top: list[tuple[int, str, Any, str, str]] = [
        # identity
        (0x00100010, "PN", person.name, PSEUDONYM, "Z: replaced by a pseudonym"),
        (0x00100020, "LO", person.key, PSEUDONYM, "Z: replaced by a pseudonym"),
        (0x00101001, "PN", f"{person.family}^{person.given}^Maria", REMOVED, "X"),
        (0x00101060, "PN", staff[0], REMOVED, "X"),
        (0x00102297, "PN", staff[1], REMOVED, "X"),
        (0x00080090, "PN", staff[2], REMOVED, "Z"),
        (0x00081050, "PN", staff[3], REMOVED, "X"),
        (0x00081060, "PN", staff[4], REMOVED, "X"),
        (0x00081070, "PN", staff[5], REMOVED, "X/Z/D"),
        (0x00321032, "PN", staff[6], REMOVED, "X"),
        (0x00101000, "LO", [f"NHS{rng.randrange(10**9, 10**10)}", f"H{rng.randrange(10**6, 10**7)}"], REMOVED, "X"),
        (0x00100021, "LO", f"{person.place} Hospital", REMOVED, "X"),
        (0x00101040, "LO", f"{rng.randrange(2, 99)} Fairbanks Road, {person.place}", REMOVED, "X"),
        (0x00102154, "SH", f"+44 1632 960{rng.randrange(100, 999)}", REMOVED, "X"),
        (0x00102160, "SH", "Varnholtian", REMOVED, "X"),
        (0x00102180, "SH", "Blacksmith", REMOVED, "X"),
        (0x00080080, "LO", f"{person.place} Royal Infirmary", REMOVED, "X/Z/D"),
        (0x00081040, "LO", f"{person.place} Chest Annexe", REMOVED, "X"),
        (0x00081010, "SH", station, REMOVED, "X/Z/D"),
        (0x00181000, "LO", f"SN{rng.randrange(10**7, 10**8)}", REMOVED, "X/Z/D"),
        (0x00080050, "SH", f"ACC{rng.randrange(10**7, 10**8)}", REMOVED, "Z"),
        (0x00200010, "SH", f"ST{rng.randrange(10**5, 10**6)}", REMOVED, "Z"),
        (0x00401001, "SH", f"RP{rng.randrange(10**6, 10**7)}", REMOVED, "X"),
        (0x00400009, "SH", f"SP{rng.randrange(10**6, 10**7)}", REMOVED, "X"),
        (0x00380010, "LO", f"ADM{rng.randrange(10**6, 10**7)}", REMOVED, "X"),
        (0x00081030, "LO", f"Chest for {person.family}", REMOVED, "X"),
        (0x0008103E, "LO", f"PA {person.given}", REMOVED, "X"),
        (0x00181030, "LO", f"{person.place} chest protocol", REMOVED, "X/D"),
        # application entities
        (0x00080055, "AE", station, REMOVED, "X"),
        (0x00400241, "AE", f"{person.place[:8].upper()}CR", REMOVED, "X"),
        (0x00400001, "AE", f"{person.place[:8].upper()}DX", REMOVED, "X"),
        # identifying codes and numbers
        (0x001021A0, "CS", "YES", REMOVED, "X (option 113108 claimed for sex and age only)"),
        (0x00102203, "CS", "ALTERED", REMOVED, "X/Z"),
        (0x00101020, "DS", "1.73", REMOVED, "X (option 113108 claimed for sex and age only)"),
        (0x00101030, "DS", "81.5", REMOVED, "X (option 113108 claimed for sex and age only)"),
        # free text
        (0x00204000, "LT", f"Repeat film for {person.family}, {person.given}; call {staff[2]}.", REMOVED, "X"),
        (0x00104000, "LT", f"{person.given} {person.family} ({person.key}) wants results by phone.", REMOVED, "X"),
        (0x001021B0, "LT", f"Fell at home, {person.place}; daughter {person.given} present.", REMOVED, "X"),
        (0x00324000, "LT", f"Discussed with {staff[3].replace('^', ' ')}.", REMOVED, "X"),
        (0x00082111, "ST", f"Derived at {person.place} for {person.family}", REMOVED, "X"),
        (0x00080081, "ST", f"1 Infirmary Way, {person.place}", REMOVED, "X"),
        (0x00321066, "UT", f"{person.family} reports cough since the move to {person.place}.", REMOVED, "X"),
        # dates and times
        (0x00100030, "DA", person.birth.strftime("%Y%m%d"), REMOVED, "Z (birth date: removed, not shifted)"),
        (0x00100032, "TM", "0415", REMOVED, "X"),
        (0x00080020, "DA", day, DATE_SHIFTED, "Z, C under option 113107"),
        (0x00080021, "DA", day, DATE_SHIFTED, "X/D, C under option 113107"),
        (0x00080022, "DA", day, DATE_SHIFTED, "X/Z, C under option 113107"),
        (0x00080023, "DA", day, DATE_SHIFTED, "Z/D, C under option 113107"),
        (0x00080012, "DA", day, DATE_SHIFTED, "X/D, C under option 113107"),
        (0x0008002A, "DT", f"{day}101530.250000+0100", DATE_SHIFTED, "X/Z/D, C under option 113107"),
        (0x00080030, "TM", "093012", RETAINED, "Z, C under option 113107: a whole-day shift keeps the time"),
        (0x00080031, "TM", "093500", RETAINED, "X/D, C under option 113107: a whole-day shift keeps the time"),
        (0x00080032, "TM", "093512.5", RETAINED, "X/Z, C under option 113107: a whole-day shift keeps the time"),
        # UIDs
        (0x0020000D, "UI", uids["study"], UID_REPLACED, "U"),
        (0x0020000E, "UI", uids["series"], UID_REPLACED, "U"),
        (0x00080018, "UI", sop, UID_REPLACED, "U"),
        (0x00200052, "UI", uids["frame"], UID_REPLACED, "U"),
        (0x00083010, "UI", uids["event"], UID_REPLACED, "U"),
        (0x00080016, "UI", _CR_IMAGE_STORAGE, RETAINED, _CODE_RETAINED),
        # patient characteristics and acquisition
        (0x00100040, "CS", "F" if rng.random() < 0.5 else "M", RETAINED, "Z, K under option 113108"),
        (0x00101010, "AS", person.age, AGE_GENERALISED if person.age >= "090Y" else RETAINED,
         "X, K under option 113108 (ages over 89 as 090Y)"),
        (0x00080060, "CS", "CR", RETAINED, _CODE_RETAINED),
        (0x00180015, "CS", "CHEST", RETAINED, _CODE_RETAINED),
        (0x00185101, "CS", "PA", RETAINED, _CODE_RETAINED),
        (0x00200011, "IS", "3", RETAINED, _CODE_RETAINED),
        (0x00200013, "IS", str(image + 1), RETAINED, _CODE_RETAINED),
        (0x00280030, "DS", ["0.143", "0.143"], RETAINED, _CODE_RETAINED),
    ]
    for tag, vr, value, action, standard in top:
        put(ds, (), "", tag, vr, value, action, standard)

    _references(plant, ds, other)
    _deep_nesting(plant, ds, person, day, other, staff)
    _annotations(plant, ds, person, staff)
    _private(plant, ds, (), "", person, day)
    _overlays_and_curves(plant, ds, person)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(range(16))
    return ds


def _item(**codes: str) -> Dataset:
    item = Dataset()
    for keyword, value in codes.items():
        setattr(item, keyword, value)
    return item


def _references(plant: _Planter, ds: Dataset, other: str) -> None:
    """References to the other image of the study (U* sequences, kept with their UIDs replaced), and a
    reference to the study in a sequence the profile empties (X/Z)."""
    for sequence, name in ((0x00081140, "ReferencedImageSequence"), (0x00082112, "SourceImageSequence")):
        item = Dataset()
        ds.add(DataElement(sequence, "SQ", [item]))
        prefix, names = (sequence, 0), f"{name}[0]."
        plant.put(item, prefix, names, 0x00081150, "UI", _CR_IMAGE_STORAGE, RETAINED, _CODE_RETAINED)
        plant.put(item, prefix, names, 0x00081155, "UI", other, UID_REPLACED, "U (a reference: follows the image)")
    item = Dataset()
    ds.ReferencedStudySequence = [item]
    prefix, names = (0x00081110, 0), "ReferencedStudySequence[0]."
    plant.put(item, prefix, names, 0x00081150, "UI", _STUDY_ROOT, REMOVED, "X/Z (its sequence)")
    plant.put(item, prefix, names, 0x00081155, "UI", ds.StudyInstanceUID, REMOVED, "X/Z (its sequence)")
    request = Dataset()
    ds.RequestAttributesSequence = [request]
    prefix, names = (0x00400275, 0), "RequestAttributesSequence[0]."
    plant.put(request, prefix, names, 0x00401001, "SH", "RP7781234", REMOVED, "X")
    plant.put(request, prefix, names, 0x00401002, "LO", "Cough after fall at Fairbanks Road", REMOVED, "X")


def _deep_nesting(plant: _Planter, ds: Dataset, person: _Person, day: str, other: str, staff: list[str]) -> None:
    """Three levels in sequences the profile keeps: each level must be de-identified like the top level."""
    level1 = _item(CodeValue="R-10214", CodingSchemeDesignator="SRT", CodeMeaning="postero-anterior")
    ds.ViewCodeSequence = [level1]
    prefix1, names1 = (0x00540220, 0), "ViewCodeSequence[0]."
    plant.put(level1, prefix1, names1, 0x00081070, "PN", staff[7], REMOVED, "X/Z/D")
    plant.put(level1, prefix1, names1, 0x00080020, "DA", day, DATE_SHIFTED, "Z, C under option 113107")
    plant.put(level1, prefix1, names1, 0x00080100, "SH", "R-10214", RETAINED, _CODE_RETAINED)

    level2 = _item(CodingSchemeDesignator="SRT", CodeMeaning="erect")
    level1.ViewModifierCodeSequence = [level2]
    prefix2, names2 = (*prefix1, 0x00540222, 0), f"{names1}ViewModifierCodeSequence[0]."
    plant.put(level2, prefix2, names2, 0x00100020, "LO", person.key, PSEUDONYM, "Z: replaced by a pseudonym")
    plant.put(level2, prefix2, names2, 0x00100010, "PN", person.name, PSEUDONYM, "Z: replaced by a pseudonym")
    plant.put(level2, prefix2, names2, 0x00080081, "ST", f"9 Quenby Lane, {person.place}", REMOVED, "X")
    plant.put(level2, prefix2, names2, 0x00080100, "SH", "F-10440", RETAINED, _CODE_RETAINED)
    _private(plant, level2, prefix2, names2, person, day)

    level3 = Dataset()
    level2.ReferencedImageSequence = [level3]
    prefix3, names3 = (*prefix2, 0x00081140, 0), f"{names2}ReferencedImageSequence[0]."
    plant.put(level3, prefix3, names3, 0x00081155, "UI", other, UID_REPLACED, "U (a reference: follows the image)")
    plant.put(level3, prefix3, names3, 0x0008002A, "DT", f"{day}0815", DATE_SHIFTED, "X/Z/D, C under option 113107")
    plant.put(level3, prefix3, names3, 0x0040A123, "PN", staff[0], REMOVED, "D")
    plant.put(level3, prefix3, names3, 0x00102154, "SH", "01632 960555", REMOVED, "X")


def _annotations(plant: _Planter, ds: Dataset, person: _Person, staff: list[str]) -> None:
    """Annotation text (presentation-state style) and an SR content tree: both sequences are D in the table."""
    text = Dataset()
    text.add(DataElement(0x00700006, "ST", f"{person.family} L marker"))
    layer = Dataset()
    layer.GraphicLayer = "ANNOTATIONS"
    layer.TextObjectSequence = [text]
    ds.GraphicAnnotationSequence = [layer]
    plant.key.append(Expectation(plant.file, (0x00700001, 0, 0x00700008, 0, 0x00700006),
                                 "GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue", "ST",
                                 REMOVED, "D (its sequence)", text.UnformattedTextValue, plant.patient))
    content = Dataset()
    content.ValueType = "TEXT"
    ds.ContentSequence = [content]
    prefix, names = (0x0040A730, 0), "ContentSequence[0]."
    plant.put(content, prefix, names, 0x0040A160, "UT", f"Reported to {staff[1].replace('^', ' ')} by phone.",
              REMOVED, "D (its sequence)")
    plant.put(content, prefix, names, 0x0040A123, "PN", staff[2], REMOVED, "D")


def _private(plant: _Planter, item: Dataset, prefix: Location, names: str, person: _Person, day: str) -> None:
    """Two private creator blocks, with PHI in every VR a vendor uses, one a nested private sequence."""
    for group, creator in ((0x0009, PRIVATE_CREATORS[0]), (0x0019, PRIVATE_CREATORS[1])):
        block_tag = (group << 16) | 0x0010
        plant.put(item, prefix, names, block_tag, "LO", creator, REMOVED, "X (private creator)")
        base = (group << 16) | 0x1000
        plant.put(item, prefix, names, base | 0x01, "LO", person.name.replace("^", " "), REMOVED, "X (private)")
        plant.put(item, prefix, names, base | 0x02, "SH", person.key, REMOVED, "X (private)")
        plant.put(item, prefix, names, base | 0x03, "IS", person.key[4:], REMOVED, "X (private)")
        plant.put(item, prefix, names, base | 0x04, "DS", person.key[4:], REMOVED, "X (private)")
        plant.put(item, prefix, names, base | 0x05, "DA", day, REMOVED, "X (private)")
        plant.put(item, prefix, names, base | 0x06, "OB", person.name.encode().ljust(24, b"\0"), REMOVED,
                  "X (private)")
        plant.put(item, prefix, names, base | 0x07, "UN", f"{person.key}|{person.family}".encode().ljust(24, b" "),
                  REMOVED, "X (private)")
        plant.put(item, prefix, names, base | 0x08, "UT", f"{person.given} {person.family} at {person.place}",
                  REMOVED, "X (private)")
        nested = Dataset()
        nested.PatientName = person.name
        plant.put(item, prefix, names, base | 0x09, "SQ", [nested], REMOVED, "X (private)")


def _overlays_and_curves(plant: _Planter, ds: Dataset, person: _Person) -> None:
    """Two overlay planes (60xx) and a retired curve (50xx) whose text and data name the patient."""
    for group in (0x6000, 0x6002):
        tag = group << 16
        ds.add(DataElement(tag | 0x0010, "US", 4))
        ds.add(DataElement(tag | 0x0011, "US", 4))
        ds.add(DataElement(tag | 0x0040, "CS", "G"))
        ds.add(DataElement(tag | 0x0050, "SS", [1, 1]))
        ds.add(DataElement(tag | 0x0100, "US", 1))
        ds.add(DataElement(tag | 0x0102, "US", 0))
        plant.put(ds, (), "", tag | 0x0022, "LO", f"{person.family} marker", REMOVED, "X (overlay text, with 60xx)")
        plant.put(ds, (), "", tag | 0x1500, "LO", f"{person.given} L", REMOVED, "X (overlay text, with 60xx)")
        plant.put(ds, (), "", tag | 0x3000, "OW", person.name.encode()[:2].ljust(2, b"\0"), REMOVED, "X")
        plant.put(ds, (), "", tag | 0x4000, "LT", f"Drawn for {person.given} {person.family}", REMOVED, "X")
    plant.put(ds, (), "", 0x50000022, "LO", f"{person.family} curve", REMOVED, "X (50xx,xxxx)")
    plant.put(ds, (), "", 0x50002500, "LO", f"{person.given} trace", REMOVED, "X (50xx,xxxx)")
    plant.put(ds, (), "", 0x50003000, "OB", person.name.encode().ljust(16, b"\0"), REMOVED, "X (50xx,xxxx)")


# ---------------------------------------------------------------------------------------------------------------
# DICOM: scoring
# ---------------------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class Verdict:
    """The outcome for one expectation: whether the output did what the key requires, and what it held."""

    expectation: Expectation
    correct: bool
    found: str
    """``absent``, ``empty``, or the output value (the report is of synthetic data: values may be shown)."""


def deidentify_like_ingest(deidentifier: Callable[[Dataset], Dataset], data: bytes) -> Dataset:
    """What the ingest path stores: read the file, de-identify it, write it as Part 10, read that back."""
    clean = deidentifier(read_dicom(io.BytesIO(data)))
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, clean, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def score_dicom(outputs: dict[str, Dataset], key: Sequence[Expectation]) -> list[Verdict]:
    """Check every expectation against the de-identified files (``outputs`` by file name); the cross-file
    requirements (one offset and one pseudonym per patient, one new UID per original) are checked here too."""
    found = {id(e): _lookup(outputs[e.file], e) for e in key}
    offsets = _patient_offsets(key, found)
    uid_map = _uid_map(key, found)
    sources: dict[str, set[str]] = defaultdict(set)
    for old, news in uid_map.items():
        for new in news:
            sources[new].add(old)
    pseudonyms = _pseudonyms(key, found)
    verdicts = []
    for e in key:
        element = found[id(e)]
        correct = _check(e, element, offsets, (uid_map, sources), pseudonyms)
        shown = "absent" if element is None else "empty" if element.is_empty else _text(element.value)
        verdicts.append(Verdict(e, correct, shown))
    return verdicts


def _lookup(dataset: Dataset, e: Expectation) -> DataElement | None:
    item = dataset.file_meta if e.meta else dataset
    steps = e.location
    for position in range(0, len(steps) - 1, 2):
        element = item.get(steps[position])
        if element is None or element.VR != "SQ" or len(element.value) <= steps[position + 1]:
            return None
        item = element.value[steps[position + 1]]
    return item.get(steps[-1])


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "\\".join(_text(v) for v in value)
    return str(value)


def _words(value: Any) -> set[str]:
    return {token.lower() for token in _TOKEN_RE.findall(_text(value))}


def _day_offset(original: str, new: str) -> int | None:
    """Days between two DA (or the date part of two DT) values, or None when the rest of a DT changed."""
    try:
        old_day, new_day = (date(int(v[:4]), int(v[4:6]), int(v[6:8])) for v in (original, new))
    except (ValueError, IndexError):
        return None
    if original[8:] != new[8:]:
        return None
    return (new_day - old_day).days


def _patient_offsets(key: Sequence[Expectation], found: dict[int, DataElement | None]) -> dict[str, int]:
    """Each patient's most common date offset over all their files: the one every date must agree with."""
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    for e in key:
        element = found[id(e)]
        if e.action == DATE_SHIFTED and element is not None and not element.is_empty:
            offset = _day_offset(str(e.original), str(element.value))
            if offset is not None:
                seen[e.patient][offset] += 1
    return {patient: counts.most_common(1)[0][0] for patient, counts in seen.items()}


def _uid_map(key: Sequence[Expectation], found: dict[int, DataElement | None]) -> dict[str, set[str]]:
    """Original UID -> every new UID it became, over all files and sequences."""
    mapping: dict[str, set[str]] = defaultdict(set)
    for e in key:
        element = found[id(e)]
        if e.action == UID_REPLACED and element is not None:
            olds, news = _values(e.original), _values(element.value)
            for index, old in enumerate(olds):
                mapping[old].add(news[index] if index < len(news) else "")
    return mapping


def _pseudonyms(key: Sequence[Expectation], found: dict[int, DataElement | None]) -> dict[tuple[str, int], set[str]]:
    """(patient, tag) -> every value the pseudonymised attribute took in that patient's files."""
    values: dict[tuple[str, int], set[str]] = defaultdict(set)
    for e in key:
        element = found[id(e)]
        if e.action == PSEUDONYM:
            values[(e.patient, e.location[-1])].add("" if element is None else _text(element.value))
    return values


def _values(value: Any) -> list[str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [str(v) for v in value]
    return [str(value)]


def _check(e: Expectation, element: DataElement | None, offsets: dict[str, int],
           uids: tuple[dict[str, set[str]], dict[str, set[str]]], pseudonyms: dict[tuple[str, int], set[str]]) -> bool:
    """Whether the output element does what ``e`` requires; ``uids``: original -> new UIDs and new -> originals."""
    if e.action == REMOVED:
        if element is None:
            return True
        if e.standard.startswith("X") and "/" not in e.standard.split()[0]:
            return False
        if element.is_empty:
            return True
        if "D" not in e.standard.split()[0]:
            return False
        new = element.value
        return new != e.original if e.vr == "UI" else not (_words(new) & _words(e.original))
    if element is None:
        return False
    if e.action == RETAINED:
        return _values(element.value) == _values(e.original)
    if e.action == AGE_GENERALISED:
        return str(element.value) == "090Y"
    if e.action == DATE_SHIFTED:
        offset = _day_offset(str(e.original), str(element.value))
        return offset is not None and offset != 0 and offset == offsets.get(e.patient)
    if e.action == UID_REPLACED:
        news = _values(element.value)
        olds = _values(e.original)
        if len(news) != len(olds):
            return False
        uid_map, sources = uids
        return all(new != old and UID(new).is_valid and uid_map[old] == {new} and sources[new] == {old}
                   for old, new in zip(olds, news, strict=True))
    if e.action == PSEUDONYM:
        mine = pseudonyms[(e.patient, e.location[-1])]
        theirs = {v for (patient, tag), vs in pseudonyms.items() if tag == e.location[-1] and patient != e.patient
                  for v in vs}
        new = _text(element.value)
        return mine == {new} and bool(new) and new not in theirs and not (_words(new) & _words(e.original))
    raise ValueError(f"unknown action {e.action!r}")


def summarise_dicom(verdicts: Sequence[Verdict]) -> dict[str, dict[str, int]]:
    """Correct / required per action category, and in all."""
    summary: dict[str, dict[str, int]] = {action: {"correct": 0, "required": 0} for action in ACTIONS}
    for verdict in verdicts:
        summary[verdict.expectation.action]["required"] += 1
        summary[verdict.expectation.action]["correct"] += verdict.correct
    summary["all"] = {key: sum(summary[a][key] for a in ACTIONS) for key in ("correct", "required")}
    return summary


def attribute_table(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """One row per attribute (over all files): its VR, standard code, required action, correct / required, and
    one wrong output if any."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for verdict in verdicts:
        e = verdict.expectation
        row = rows.setdefault((e.attribute, e.action), {
            "attribute": e.attribute, "vr": e.vr, "standard": e.standard, "action": e.action,
            "correct": 0, "required": 0, "example failure": "",
        })
        row["required"] += 1
        row["correct"] += verdict.correct
        if not verdict.correct and not row["example failure"]:
            row["example failure"] = f"{e.file}: {verdict.found[:60]}"
    return list(rows.values())


# ---------------------------------------------------------------------------------------------------------------
# Free text: planted identifiers
# ---------------------------------------------------------------------------------------------------------------

NAMES, DATES, IDS, PHONES, ADDRESSES, AGES, INSTITUTIONS, EMAILS, URLS = (
    "names", "dates", "ids", "phones", "addresses", "ages over 89", "institutions", "emails", "URLs")
TEXT_CATEGORIES = (NAMES, DATES, IDS, PHONES, ADDRESSES, AGES, INSTITUTIONS, EMAILS, URLS)

_FIRST = ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "William", "Linda", "David", "Elizabeth",
          "Richard", "Barbara", "Joseph", "Susan", "Thomas", "Jessica", "Charles", "Sarah", "Christopher", "Karen",
          "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Margaret", "Mark", "Sandra", "Steven", "Ashley",
          "Paul", "Emily", "Andrew", "Donna", "Kevin", "Michelle", "Brian", "Carol", "George", "Amanda", "Luis",
          "Maria", "Carlos", "Rosa", "Wei", "Mei", "Hiroshi", "Yuki", "Priya", "Rahul", "Fatima", "Ahmed", "Olga",
          "Dmitri", "Aisha", "Kwame", "Siobhan", "Declan", "Ingrid", "Lars", "Thanh", "Minh", "Jorge", "Lucia")
_LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
         "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
         "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
         "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
         "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen",
         "Wang", "Patel", "Kim", "Tanaka", "Okafor", "Kowalski", "Novak", "O'Connor", "McAllister", "Schmidt",
         "Petrov", "Haddad", "Mensah", "Larsen", "Fitzgerald", "Gallagher", "Whitfield", "Brennan", "Castillo")
_STREET_NAMES = ("Maple", "Oak", "Cedar", "Elm", "Washington", "Lincoln", "Park", "Highland", "Sunset", "Ridge",
                 "Lakeview", "Hillcrest", "Church", "Mill", "Chestnut", "Walnut", "Franklin", "Jefferson", "Willow",
                 "Old Mill", "Spring Valley", "Martin Luther King", "Pleasant", "Forest", "Meadow", "Harbor")
_SUFFIXES = ("Street", "St", "Avenue", "Ave", "Road", "Rd", "Drive", "Dr", "Lane", "Ln", "Boulevard", "Blvd",
             "Court", "Ct", "Way", "Place", "Terrace", "Circle")
_CITIES = ("Springfield", "Fairview", "Riverside", "Greenville", "Bristol", "Clinton", "Salem", "Madison",
           "Georgetown", "Arlington", "Ashland", "Burlington", "Manchester", "Oxford", "Cedar Rapids",
           "Grand Junction", "Palo Alto", "San Mateo", "Lexington", "Dayton", "Tacoma", "Boise", "Quincy")
_STATES = ("IL", "MA", "CA", "NY", "TX", "OH", "WA", "OR", "PA", "GA", "MI", "NC", "VA", "CO", "IA")
_INSTITUTION_NAMES = ("Rosewood", "Lakeshore", "Brookhaven", "Glenbrook", "Mercy", "Providence", "Kessington",
                      "Hartwell", "Northbrook", "Cedar Valley", "Good Samaritan", "Holy Cross", "Sutter", "Baptist",
                      "Presbyterian", "Methodist", "Summit", "Valley View", "Bayfront", "Whitmore", "Ellsworth")
_SAINTS = ("Mary", "Joseph", "Luke", "Vincent", "Francis", "Elizabeth", "Anthony", "Jude", "Agnes", "Catherine")
_INSTITUTION_FORMS = ("{x} General Hospital", "{x} Medical Center", "{x} Memorial Hospital",
                      "{x} Regional Medical Center", "{x} Community Hospital", "St. {s}'s Hospital",
                      "Saint {s} Medical Center", "University of {x} Medical Center", "{x} University Hospital",
                      "{x} Clinic", "{x} Children's Hospital", "{x} Health System", "{x} Infirmary",
                      "{x} Hospital", "{x} Cancer Center", "{x} Rehabilitation Center", "{x} Nursing Home")
_EMAIL_DOMAINS = ("mercyvale.org", "kesswell-hospital.org", "gmail.com", "yahoo.com", "example.net",
                  "rad.northgate.edu", "outlook.com")
_URL_HOSTS = ("pacs.mercyvale.org", "portal.kesswell-hospital.org", "mychart.northgate.edu",
              "images.example.net", "results.riverbend-med.com")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_NUMBER_WORDS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_GENERIC = frozenset({
    "dr", "mr", "mrs", "ms", "md", "rn", "ext", "street", "st", "avenue", "ave", "road", "rd", "drive", "lane", "ln",
    "boulevard", "blvd", "court", "ct", "way", "place", "terrace", "circle", "apt", "unit", "box", "general",
    "hospital", "medical", "center", "memorial", "regional", "community", "saint", "university", "of", "clinic",
    "children", "s", "health", "system", "infirmary", "cancer", "rehabilitation", "nursing", "home",
}) | {state.lower() for state in _STATES}
"""Words of a planted value that identify no one alone (honorifics, street suffixes, states, institution kinds)."""

CLINICAL_SENTENCES: tuple[str, ...] = (
    "The lungs are clear without focal consolidation, pleural effusion or pneumothorax.",
    "Heart size is normal. The mediastinal and hilar contours are unremarkable.",
    "No acute cardiopulmonary process.",
    "PA and lateral views of the chest were obtained.",
    "Portable AP upright view of the chest at 0600.",
    "There is a 5 mm nodule in the right upper lobe; recommend CT follow-up per Fleischner Society guidelines.",
    "Kerley B lines and cephalization suggest interstitial edema.",
    "Swan-Ganz catheter tip projects over the right pulmonary artery.",
    "Endotracheal tube tip is 4 cm above the carina. NG tube courses below the diaphragm.",
    "Right IJ central venous catheter terminates in the SVC.",
    "Port-A-Cath tip at the cavoatrial junction.",
    "Dobhoff tube tip in the stomach.",
    "Mild degenerative change of the thoracic spine with anterior osteophytes at T8-T10.",
    "Compression deformity of L1, unchanged.",
    "Left lower lobe opacity may represent atelectasis or pneumonia.",
    "Blunting of the left costophrenic angle suggests a small effusion.",
    "Hyperinflated lungs with flattened hemidiaphragms, consistent with COPD.",
    "Westermark sign and Hampton hump raise concern for pulmonary embolism.",
    "Cardiothoracic ratio is 0.48.",
    "Median sternotomy wires and a St. Jude valve are noted.",
    "Calcified granuloma in the left midlung, stable since 2019.",
    "Bilateral patchy ground-glass opacities, peripheral and basal, typical of COVID-19 pneumonia.",
    "Findings are consistent with ARDS.",
    "Interval removal of the Foley catheter.",
    "Pancoast tumor at the left apex with rib destruction.",
    "Stable appearance of the Hickman catheter.",
    "No pneumothorax after thoracentesis of 1.2 L.",
    "Elevated right hemidiaphragm, unchanged from prior.",
    "Aortic knob calcification. Tortuous thoracic aorta.",
    "Visualized osseous structures are intact.",
    "Surgical clips in the right upper quadrant from cholecystectomy.",
    "The trachea is midline. No mediastinal widening.",
    "SpO2 88% on room air; started on 2 L nasal cannula.",
    "WBC 12.3, CRP 45 mg/L, procalcitonin 0.8 ng/mL.",
    "Temperature 38.9 C, heart rate 112, blood pressure 104/62.",
    "Started ceftriaxone 1 g IV daily and azithromycin 500 mg.",
    "History of Hodgkin lymphoma treated with mantle radiation.",
    "Known Parkinson disease and Alzheimer dementia.",
    "Smoking history of 40 pack-years; quit in 2010.",
    "Day 7 of admission: extubated and weaned to room air.",
    "Compared with the radiograph of 2 days earlier, the effusion is slightly larger.",
    "Grade 1 anterolisthesis of L4 on L5.",
    "Glasgow Coma Scale 14 on arrival.",
    "New York Heart Association class III heart failure.",
    "Right Upper Lobe collapse with Golden S sign.",
    "Left Main Bronchus is patent.",
    "Ejection fraction of 35% on echocardiogram.",
    "Cavitary lesion in the superior segment of the right lower lobe, concerning for tuberculosis.",
    "Hiatal hernia. Air-fluid level behind the heart.",
    "Chronic interstitial changes, unchanged over 3 years.",
    "Pleural plaques consistent with prior asbestos exposure.",
    "A 65-year-old man with fever and cough for 5 days.",
    "An 89-year-old woman with dyspnea on exertion.",
    "Lived in the same house for 90 years.",
    "Emergency Department evaluation for chest pain.",
    "Recommend clinical correlation and follow-up radiograph in 6 weeks.",
    "Minimal bibasilar atelectasis. Otherwise no acute abnormality.",
    "Pacemaker leads terminate in the right atrium and right ventricle.",
    "Lung volumes are low, with crowding of the bronchovascular markings.",
    "No free air under the diaphragm.",
)
"""Normal radiology and clinical sentences (eponyms, levels, doses, years, ages under 90): the precision check,
and the filler of the synthetic notes."""


@dataclass(frozen=True)
class PlantedValue:
    """One identifier planted in a note, with the words of it that identify (lowercase)."""

    category: str
    value: str
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class SyntheticNote:
    """A note, what a perfect scrubber would make of it, and what was planted in it."""

    style: str
    text: str
    reference: str
    """``text`` with each planted value replaced by a placeholder."""
    planted: tuple[PlantedValue, ...]


def _identifying(value: str) -> tuple[str, ...]:
    """The value's alphanumeric words that identify: not generic words, not single letters."""
    return tuple(dict.fromkeys(t.lower() for t in _TOKEN_RE.findall(value)
                               if t.lower() not in _GENERIC and len(t) > 1))


class _Values:
    """Seeded makers of planted values, one per slot of the templates."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def make(self, slot: str) -> tuple[str, str]:
        """(category, value) for a template slot."""
        return getattr(self, slot)()

    def _first_last(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST), self.rng.choice(_LAST)

    def patient(self) -> tuple[str, str]:
        first, last = self._first_last()
        middle = self.rng.choice("ABCDEJKLMRSTW")
        form = self.rng.choice((f"{first} {last}", f"{first} {middle}. {last}", f"{last}, {first}",
                                f"{last.upper()}, {first.upper()}", f"{first} {last}-{self.rng.choice(_LAST)}",
                                f"{last.upper()}^{first.upper()}"))
        return NAMES, form

    def doctor(self) -> tuple[str, str]:
        first, last = self._first_last()
        return NAMES, self.rng.choice((f"{first} {last}", f"{first} {self.rng.choice('ABCDEJKLMRSTW')}. {last}"))

    def last(self) -> tuple[str, str]:
        return NAMES, self.rng.choice(_LAST)

    def first(self) -> tuple[str, str]:
        return NAMES, self.rng.choice(_FIRST)

    def _date(self, first_year: int, last_year: int) -> str:
        day = date(first_year, 1, 1) + timedelta(days=self.rng.randrange((last_year - first_year) * 365))
        month = _MONTHS[day.month - 1]
        short = month[:3] if month != "May" else "May"  # "May." is no abbreviation: written "May 4"
        suffix = "th" if 10 <= day.day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
        dotted = f"{short}." if short != month else month
        return self.rng.choice((
            f"{month} {day.day}, {day.year}", f"{short} {day.day}, {day.year}", f"{dotted} {day.day}, {day.year}",
            f"{day.day} {short} {day.year}", f"{day.day} {month} {day.year}",
            f"{day.month:02d}/{day.day:02d}/{day.year}", f"{day.month}/{day.day}/{day.year}",
            f"{day.month}/{day.day}/{day.year % 100:02d}", day.isoformat(), f"{day.day:02d}.{day.month:02d}.{day.year}",
            f"{month} {day.day}{suffix}", f"{day.day}{suffix} of {month} {day.year}", day.strftime("%Y%m%d"),
            f"{month} {day.year}",
        ))

    def date(self) -> tuple[str, str]:
        return DATES, self._date(2008, 2025)

    def dob(self) -> tuple[str, str]:
        return DATES, self._date(1925, 1995)

    def mrn(self) -> tuple[str, str]:
        return IDS, self.rng.choice((str(self.rng.randrange(10**6, 10**9)), f"{self.rng.randrange(10**7, 10**8)}",
                                     f"{self.rng.randrange(10**5, 10**6):08d}"))

    def accession(self) -> tuple[str, str]:
        n = self.rng.randrange(10**6, 10**8)
        return IDS, self.rng.choice((f"A{n}", f"RAD{self.rng.randrange(2010, 2025)}-{n % 100000:05d}", f"ACC{n}",
                                     str(n), f"CR{n}"))

    def record(self) -> tuple[str, str]:
        return IDS, self.rng.choice((f"{self.rng.randrange(100, 999)}-{self.rng.randrange(10, 99)}-"
                                     f"{self.rng.randrange(1000, 9999)}", str(self.rng.randrange(10**9, 10**10)),
                                     f"{self.rng.randrange(10, 99)}-{self.rng.randrange(10**5, 10**7)}"))

    def phone(self) -> tuple[str, str]:
        a, b, c = self.rng.randrange(201, 989), self.rng.randrange(200, 999), self.rng.randrange(10**4)
        return PHONES, self.rng.choice((f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}",
                                        f"+1 {a} {b} {c:04d}", f"1-{a}-{b}-{c:04d}", f"{a} {b} {c:04d}",
                                        f"({a}) {b}-{c:04d} ext. {self.rng.randrange(100, 9999)}",
                                        f"+44 20 {self.rng.randrange(1000, 9999)} {c:04d}"))

    def extension(self) -> tuple[str, str]:
        return PHONES, self.rng.choice((f"{self.rng.randrange(1, 9)}-{self.rng.randrange(1000, 9999)}",
                                        f"{self.rng.randrange(10000, 99999)}"))

    def _street(self) -> str:
        street = f"{self.rng.randrange(1, 9999)} {self.rng.choice(_STREET_NAMES)} {self.rng.choice(_SUFFIXES)}"
        if self.rng.random() < 0.3:
            street += self.rng.choice((f", Apt {self.rng.randrange(1, 40)}{self.rng.choice('ABCD')}",
                                       f" Unit {self.rng.randrange(1, 400)}"))
        return street

    def _city_zip(self) -> str:
        return f"{self.rng.choice(_CITIES)}, {self.rng.choice(_STATES)} {self.rng.randrange(10**4, 10**5):05d}"

    def address(self) -> tuple[str, str]:
        return ADDRESSES, self.rng.choice((f"{self._street()}, {self._city_zip()}", self._street(),
                                           f"{self._street()}, {self.rng.choice(_CITIES)}",
                                           f"P.O. Box {self.rng.randrange(10, 9999)}, {self._city_zip()}"))

    def city_zip(self) -> tuple[str, str]:
        return ADDRESSES, self._city_zip()

    def age(self) -> tuple[str, str]:
        return AGES, str(self.rng.randrange(90, 106))

    def age_words(self) -> tuple[str, str]:
        return AGES, "ninety" + ("-" + self.rng.choice(_NUMBER_WORDS[1:]) if self.rng.random() < 0.8 else "")

    def institution(self) -> tuple[str, str]:
        form = self.rng.choice(_INSTITUTION_FORMS)
        return INSTITUTIONS, form.format(x=self.rng.choice(_INSTITUTION_NAMES), s=self.rng.choice(_SAINTS))

    def email(self) -> tuple[str, str]:
        first, last = (name.lower().replace("'", "") for name in self._first_last())
        local = self.rng.choice((f"{first}.{last}", f"{first[0]}{last}{self.rng.randrange(1, 99)}", f"{last}_{first}"))
        return EMAILS, f"{local}@{self.rng.choice(_EMAIL_DOMAINS)}"

    def url(self) -> tuple[str, str]:
        host, n = self.rng.choice(_URL_HOSTS), self.rng.randrange(10**5, 10**8)
        return URLS, self.rng.choice((f"https://{host}/viewer?study={n}", f"http://{host}/patient/{n}/report",
                                      f"www.{host.split('.', 1)[1]}/results/{n}", f"https://{host}/s/{n:x}"))


# Sentences with slots {slot}; every slot is one planted value. Grouped by the part of a note they belong to.
_HEADER = (
    "Patient: {patient}", "Patient name: {patient}", "Name: {patient}", "PATIENT: {patient}", "Pt name: {patient}",
    "MRN: {mrn}", "MRN {mrn}", "Medical record number: {mrn}", "MR# {mrn}", "Patient ID: {mrn}",
    "Accession #: {accession}", "Accession number: {accession}", "Acc: {accession}", "Account no. {record}",
    "Encounter {record}", "SSN: {record}", "DOB: {dob}", "Date of birth: {dob}", "Date of service: {date}",
    "Exam date: {date}", "Admission date: {date}", "Referring physician: Dr. {doctor}",
    "Ordering provider: {doctor}, MD", "Attending: {doctor}", "PCP: Dr. {last}", "Facility: {institution}",
    "Location: {institution}", "Phone: {phone}", "Home phone: {phone}", "Address: {address}",
)
_HISTORY = (
    "{patient} is a {age}-year-old woman with a history of COPD who presents with cough.",
    "The patient is a {age} year old man admitted from {institution} on {date}.",
    "{age} yo female with dyspnea, seen at {institution} on {date}.",
    "{age} y/o male, nursing home resident, with fever since {date}.",
    "Mr. {last} is a {age}-year-old gentleman referred by Dr. {doctor} for chest pain.",
    "Mrs. {last}, aged {age}, was transferred from {institution} for hypoxia.",
    "Ms. {last} presented to the emergency department on {date} with pleuritic pain.",
    "A {age_words}-year-old woman fell at home at {address}.",
    "Woman, {age}, with productive cough for a week; lives at {address}.",
    "History obtained from her daughter {first}, who can be reached at {phone}.",
    "Her son {first} {last} ({phone}) is the health care proxy.",
    "Previously treated at {institution} in {date} for pneumonia.",
    "Prior chest radiograph at {institution} dated {date} showed a right effusion.",
    "Age: {age}. Sex: F. Admitted {date}.",
    "Patient aged {age} with a fall and rib pain.",
    "Transferred from {institution}, {city_zip}, by ambulance.",
    "He lives alone at {address} and was found by a neighbour.",
    "Seen by Dr. {doctor} at {institution} clinic on {date}.",
    "{patient} (MRN {mrn}) returns for follow-up of a lung nodule.",
)
_STUDY = (
    "EXAM: Chest PA and lateral, {date}.", "Comparison: {date}.", "Comparison: chest radiograph from {date}.",
    "COMPARISON: CT chest {date} at {institution}.", "Compared with the study of {date}, the effusion is smaller.",
    "CLINICAL HISTORY: {age}-year-old with shortness of breath.", "INDICATION: {age} yo with fever.",
    "Accession {accession}; exam performed at {institution}.", "Study ID {accession}, performed {date}.",
)
_CONTACT = (
    "Findings discussed with Dr. {doctor} by telephone on {date}.",
    "Critical result called to {doctor}, RN, at pager {extension}.",
    "Results communicated to Dr. {last} at {phone}.",
    "Please call the reading room at {phone} with questions.",
    "Questions may be sent to {email}.", "Report sent to {email} and to the referring office.",
    "Images are available at {url}.", "See the full report at {url}.", "Patient portal: {url}",
    "Contact {patient} at {phone} or {email}.", "Follow-up at {institution}, {address}.",
    "Mail results to {address}.", "Spoke with the patient's wife {first} about the results.",
    "Fax the report to {phone}.",
)
_SIGNATURE = (
    "Electronically signed by: {doctor}, MD on {date}.", "Dictated by {doctor}. Transcribed by {doctor}.",
    "Read by Dr. {doctor}, {institution}.", "Signed: {doctor}, M.D. {date}", "Reviewed by {doctor}, MD.",
    "Interpreted by {doctor}, MD, Department of Radiology, {institution}.", "Attending radiologist: {doctor}",
    "{doctor}, MD\n{institution}\n{address}\nTel {phone}",
)
_STYLES: dict[str, tuple[tuple[tuple[str, ...], int, int], ...]] = {
    "clinical note": ((_HEADER, 2, 4), (_HISTORY, 2, 3), (CLINICAL_SENTENCES, 1, 3), (_CONTACT, 1, 2),
                      (_SIGNATURE, 1, 1)),
    "radiology report": ((_HEADER, 1, 3), (_STUDY, 2, 3), (CLINICAL_SENTENCES, 2, 4), (_CONTACT, 1, 2),
                         (_SIGNATURE, 1, 1)),
    "telephone encounter": ((_HEADER, 1, 2), (_CONTACT, 2, 3), (_HISTORY, 1, 2), (CLINICAL_SENTENCES, 0, 1)),
}
_SLOT_RE = re.compile(r"\{(\w+)\}")
_PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


def make_notes(n: int, seed: int = 0) -> list[SyntheticNote]:
    """``n`` notes in the styles of ``_STYLES``, each a random pick of sentence templates with fresh values."""
    rng = random.Random(seed)
    values = _Values(rng)
    styles = sorted(_STYLES)
    notes = []
    for index in range(n):
        style = styles[index % len(styles)]
        text: list[str] = []
        reference: list[str] = []
        planted: list[PlantedValue] = []
        for pool, low, high in _STYLES[style]:
            for template in rng.sample(pool, rng.randint(low, high)):
                _fill(template, values, text, reference, planted)
                separator = "\n" if pool in (_HEADER, _SIGNATURE) else " "
                text.append(separator)
                reference.append(separator)
        notes.append(SyntheticNote(style, "".join(text).strip(), "".join(reference).strip(), tuple(planted)))
    return notes


def _fill(template: str, values: _Values, text: list[str], reference: list[str], planted: list[PlantedValue]) -> None:
    position = 0
    for match in _SLOT_RE.finditer(template):
        literal = template[position:match.start()]
        text.append(literal)
        reference.append(literal)
        category, value = values.make(match.group(1))
        text.append(value)
        reference.append("[PHI]")
        planted.append(PlantedValue(category, value, _identifying(value)))
        position = match.end()
    text.append(template[position:])
    reference.append(template[position:])


def _word_counts(text: str) -> Counter[str]:
    """Lowercase alphanumeric words, placeholders (and the reference's ``[PHI]``) left out."""
    return Counter(t.lower() for t in _TOKEN_RE.findall(_PLACEHOLDER_RE.sub(" ", text.replace("[PHI]", " "))))


@dataclass
class TextScore:
    """Recall per category, and how many of the notes' non-PHI words were kept."""

    planted: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    misses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Up to 5 missed values per category, with the note's style (synthetic: safe to show)."""
    other_words: int = 0
    other_words_kept: int = 0

    def recall(self, category: str) -> float:
        return self.removed[category] / self.planted[category] if self.planted[category] else 1.0


def score_text(notes: Iterable[SyntheticNote], scrub: Callable[[str], str]) -> TextScore:
    """A planted value counts as removed when none of its identifying words is left in the output more often
    than the note's other text holds it (counted per note, case-insensitive, placeholders ignored): where the
    word occurs outside the value too ("Springfield" in a street name and a city), only a surplus is a leak.
    A word shared by two planted values of one note that survives is charged to both (conservative)."""
    score = TextScore()
    for note in notes:
        out, expected = _word_counts(scrub(note.text)), _word_counts(note.reference)
        for value in note.planted:
            score.planted[value.category] += 1
            if all(out[token] <= expected[token] for token in value.tokens):
                score.removed[value.category] += 1
            elif len(score.misses[value.category]) < 5:
                score.misses[value.category].append(f"{note.style}: {value.value}")
        score.other_words += sum(expected.values())
        score.other_words_kept += sum(min(out[t], count) for t, count in expected.items())
    return score


def clinical_preservation(scrub: Callable[[str], str], sentences: Sequence[str] = CLINICAL_SENTENCES
                          ) -> tuple[float, int]:
    """Share of the words of PHI-free clinical sentences that survive scrubbing, and how many sentences changed."""
    total = kept = changed = 0
    for sentence in sentences:
        out = scrub(sentence)
        changed += out != sentence
        before, after = _word_counts(sentence), _word_counts(out)
        total += sum(before.values())
        kept += sum(min(after[t], count) for t, count in before.items())
    return kept / total, changed


# ---------------------------------------------------------------------------------------------------------------
# The reliability area
# ---------------------------------------------------------------------------------------------------------------

SALT = b"medrag deid validation"
"""A fixed key: the figures are reproducible, and the deployment's own key is neither read nor created."""
TEXT_RECALL_REQUIRED = 0.99
"""Every claimed category (all of ``TEXT_CATEGORIES``) must reach this recall."""
CLINICAL_WORDS_KEPT_REQUIRED = 0.995
"""Share of the words of :data:`CLINICAL_SENTENCES` the scrubber must keep. Measured: all of them (1.0, no
sentence changed); the margin allows one lost word in about 200, far fewer than a systematic false positive (a
rule that took eponyms, levels or measurements) would cost."""


def validate_dicom(patients: int, studies: int, images: int, seed: int = 0) -> list[Verdict]:
    """Generate the set, run each file through the ingest path's de-identifier, and score it."""
    files, key = make_dicom_set(patients, studies, images, seed)
    deidentifier = DicomDeidentifier(SALT)
    outputs = {f.name: deidentify_like_ingest(deidentifier, f.data) for f in files}
    return score_dicom(outputs, key)


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """The ``deid`` reliability area: 8 DICOMs and 300 notes when quick, 200 DICOMs and 2000 notes otherwise.

    ``config`` is not read: the de-identifiers are the ones ingestion builds, with :data:`SALT` as their key.
    Writes ``deid_attributes.csv`` (one row per DICOM attribute) to ``out_dir``."""
    patients, images, notes_n = (2, 2, 300) if quick else (25, 4, 2000)
    verdicts = validate_dicom(patients, 2, images)
    summary = summarise_dicom(verdicts)
    table = attribute_table(verdicts)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "deid_attributes.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)

    scrubber = TextScrubber()

    def scrub(text: str) -> str:
        return scrubber(text).text

    text = score_text(make_notes(notes_n), scrub)
    kept, changed = clinical_preservation(scrub)
    recall = {category: round(text.recall(category), 4) for category in TEXT_CATEGORIES}
    correct, required = summary["all"]["correct"], summary["all"]["required"]
    passed = (correct == required and all(r >= TEXT_RECALL_REQUIRED for r in recall.values())
              and kept >= CLINICAL_WORDS_KEPT_REQUIRED)
    return {
        "headline": {
            "de-identification actions correct": f"{correct}/{required} ({correct / required:.0%})",
            "text PHI recall per category": {c: f"{r:.4f} (n={text.planted[c]})" for c, r in recall.items()},
            "clinical words kept": f"{kept:.4f} ({changed}/{len(CLINICAL_SENTENCES)} sentences changed)",
        },
        "passed": passed,
        "dicom": {"files": patients * 2 * images, "per action": summary,
                  "failures": [row for row in table if row["correct"] < row["required"]]},
        "text": {"notes": notes_n, "planted": dict(text.planted), "recall": recall,
                 "required recall": TEXT_RECALL_REQUIRED, "misses": dict(text.misses),
                 "note words kept": round(text.other_words_kept / text.other_words, 4)},
        "clinical sentences": {"sentences": len(CLINICAL_SENTENCES), "words kept": kept, "changed": changed,
                               "required": CLINICAL_WORDS_KEPT_REQUIRED},
    }


register_suite("deid", run)
