"""DICOM de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile.

Options applied (CID 7050 codes written to every output): Basic Profile (113100), Retain Longitudinal
Temporal Information with Modified Dates (113107) and Retain Patient Characteristics (113108, for sex
and age only: weight, size and the free-text characteristics are removed), plus Retain Safe Private
(113111) when a private creator whitelist is given.

The action table (which attribute is removed, zeroed, dummied or has its UID replaced) is the one that
``dicom-anonymizer`` (KitwareMedical) encodes from the standard, and its action functions are used as
they are. Written here is only what that library leaves to its caller or does differently from what a
pipeline needs:

* UIDs: the library draws random UIDs kept in a process-wide dict; here they are HMAC-SHA256(salt, uid)
  ``2.25`` UIDs, the same in every run and process that shares the salt.
* dates: the library writes a dummy date; the Modified Dates option shifts every DA/DT by a per-patient
  offset instead, and keeps times.
* sequences: the library applies the table to the top-level dataset only; PS3.15 E.1.1 applies it to
  every nested item too, so it is run on each item here.
* private tags: the library removes all or none; here a private creator whitelist is honoured.
* file meta: the table's only file meta row is the Media Storage SOP Instance UID; the AE titles of the
  transfer and the writer's identity (Implementation Class UID and Version Name, where sites put station
  and user names) are removed too, and whoever writes the file fills in its own.

``reliability/deid_validation.py`` scores this module against an answer key written from the standard
(``docs/deid_validation.md``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta

from dicomanonymizer import simpledicomanonymizer as annex_e
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

Tag = tuple[int, ...]
"""``(group, element)``, or ``(group, element, group_mask, element_mask)`` for repeating groups (60xx)."""
Action = Callable[[Dataset, Tag], None]

ANNEX_E_TABLE = "dicomfields_2026c"
"""The edition of PS3.15 Table E.1-1 that dicom-anonymizer encodes and this module applies."""

CODING_SCHEME = "DCM"
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")
SAFE_PRIVATE = ("113111", "Retain Safe Private Option")

OLDEST_AGE = 90
"""HIPAA Safe Harbor: ages over 89 are reported as one group, written ``090Y``."""

SHIFT_DAYS = (30, 365)
"""Dates move back by this many days (inclusive range), fixed per patient."""

_PATIENT_NAME = (0x0010, 0x0010)
_PATIENT_ID = (0x0010, 0x0020)
_REMOVED = (
    (0x0010, 0x0030),  # Patient's Birth Date: the Modified Dates option would only shift it
    (0x0010, 0x0032),  # Patient's Birth Time: times are otherwise retained by that option
    (0x0002, 0x0012),  # Implementation Class UID (file meta): the writer's identity, which the
    (0x0002, 0x0013),  # Implementation Version Name: writer fills in; sites put station or user names there
    (0x0002, 0x0016),  # Source Application Entity Title (file meta): names the sending station
    (0x0002, 0x0017),  # Sending Application Entity Title
    (0x0002, 0x0018),  # Receiving Application Entity Title
    (0x0002, 0x0100),  # Private Information Creator UID
    (0x0002, 0x0102),  # Private Information
)
_OVERLAY_GROUPS = (0x6000, 0x0000, 0xFF00, 0x0000)
"""All of 60xx: the profile lists Overlay Data and Comments; the rest of an overlay is useless without them."""

_AGE = re.compile(r"^(\d{1,3})([DWMY]?)$")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25, "": 365.25}


class BurnedInAnnotationError(ValueError):
    """The image says it has text burned into its pixels, which header de-identification cannot remove."""


class DicomDeidentifier:
    """De-identify DICOM datasets; a callable that returns a clean copy and never changes its input.

    Everything derived from identifiers (UIDs, pseudonyms, date offsets) is keyed by ``salt``, so the
    same patient and study map to the same values in every run that uses the same salt, and cannot be
    recomputed without it.
    """

    def __init__(self, salt: bytes, *, private_creator_whitelist: frozenset[str] = frozenset(),
                 allow_burned_in: bool = False):
        if not salt:
            raise ValueError("DicomDeidentifier needs a non-empty secret salt (the key from medrag.deid.secrets)")
        self._salt = bytes(salt)
        self.private_creator_whitelist = frozenset(private_creator_whitelist)
        self.allow_burned_in = allow_burned_in
        self._rules = self._profile_rules()

    def __call__(self, dataset: Dataset, origin: str = "") -> Dataset:
        """Return a de-identified copy of ``dataset``; ``origin`` (a file name) is only used in errors."""
        self._check_burned_in(dataset, origin)
        clean = copy.deepcopy(dataset)
        if getattr(clean, "preamble", None):
            clean.preamble = bytes(128)  # free for any application's use (TIFF headers, vendor data): zeroed
        patient = _patient_key(clean)
        rules = self._rules | self._patient_rules(patient)
        _remove_private(clean, self.private_creator_whitelist)
        _shift_dates(clean, self.date_offset(patient))
        for item in _datasets(clean):
            annex_e.anonymize_dataset(item, delete_private_tags=False, base_rules_gen=rules.copy)
        self._mark(clean, patient)
        return clean

    def pseudonym(self, value: str) -> str:
        """The salted pseudonym of an identifier: the first 16 hex digits of HMAC-SHA256(salt, value)."""
        return self._digest(value).hex()[:16]

    def replace_uid(self, uid: str) -> str:
        """The replacement of a UID: ``2.25.<int>`` from HMAC-SHA256(salt, uid), a valid version-8 UUID."""
        number = int.from_bytes(self._digest(uid.strip().rstrip("\0"))[:16], "big")
        number = (number & ~(0xF << 76)) | (0x8 << 76)  # UUID version 8 (custom), RFC 9562
        number = (number & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
        return f"2.25.{number}"

    def date_offset(self, patient: str) -> int:
        """Days (negative) by which every date of this patient is shifted; its own HMAC domain, unlike
        the pseudonym, so a published pseudonym says nothing about the offset."""
        low, high = SHIFT_DAYS
        number = int.from_bytes(self._digest("date-offset:" + patient)[:8], "big")
        return -(low + number % (high - low + 1))

    def _digest(self, value: str) -> bytes:
        return hmac.new(self._salt, value.encode("utf-8"), hashlib.sha256).digest()

    def _check_burned_in(self, dataset: Dataset, origin: str) -> None:
        if self.allow_burned_in or str(dataset.get("BurnedInAnnotation", "")).strip().upper() != "YES":
            return
        raise BurnedInAnnotationError(
            f"{origin or 'dataset'}: BurnedInAnnotation is YES, so the pixels may show identifying text that "
            "header de-identification cannot remove; pass allow_burned_in=True after checking the pixels"
        )

    def _profile_rules(self) -> dict[Tag, Action]:
        """The library's Annex E table, adapted to the options claimed above."""
        rules: dict[Tag, Action] = {}
        for tag, action in annex_e.initialize_actions(ANNEX_E_TABLE).items():
            adapted = self._adapt(tag, action)
            if adapted is not None:
                rules[tag] = adapted
        rules |= {tag: _remove for tag in _REMOVED}
        rules[(0x0010, 0x0040)] = annex_e.keep  # Patient's Sex: Retain Patient Characteristics
        rules[(0x0010, 0x1010)] = _cap_age  # Patient's Age: idem, with the HIPAA cap
        rules[_OVERLAY_GROUPS] = annex_e.delete
        return rules

    def _adapt(self, tag: Tag, action: Action) -> Action | None:
        """The action for ``tag``, or None where the date pass handles the attribute."""
        if len(tag) != 2:
            return action
        vr = _dictionary_vr(tag)
        if vr in ("DA", "DT", "TM"):
            return None  # dates shifted per patient, times kept: the Modified Dates option
        if vr == "UI":
            keeps_no_value = action in (annex_e.delete, annex_e.empty, annex_e.delete_or_empty)
            return action if keeps_no_value else self._replace_uid_action
        if vr == "SQ":
            if action is annex_e.delete:
                return action
            if action is annex_e.delete_or_empty_or_replace_UID:
                return annex_e.keep  # U*: the items' UIDs are replaced when the table runs on each item
            return _empty_sequence  # Z, and D: a dummy sequence would be invented content
        return action

    def _replace_uid_action(self, dataset: Dataset, tag: Tag) -> None:
        element = dataset.get(tag)
        if element is None or not element.value:
            return
        if element.VM > 1:
            element.value = [self.replace_uid(str(uid)) for uid in element.value]
        else:
            element.value = self.replace_uid(str(element.value))

    def _patient_rules(self, patient: str) -> dict[Tag, Action]:
        pseudonym = self.pseudonym(patient)
        return {_PATIENT_ID: _set_value(pseudonym), _PATIENT_NAME: _set_value(pseudonym)}

    def _mark(self, dataset: Dataset, patient: str) -> None:
        """Pseudonymous patient, and the PS3.3 C.7.1.1 record of what was done."""
        codes = [BASIC_PROFILE, MODIFIED_DATES, PATIENT_CHARACTERISTICS]
        if self.private_creator_whitelist:
            codes.append(SAFE_PRIVATE)
        dataset.PatientID = self.pseudonym(patient)
        dataset.PatientName = dataset.PatientID
        dataset.PatientIdentityRemoved = "YES"
        dataset.LongitudinalTemporalInformationModified = "MODIFIED"
        dataset.DeidentificationMethod = f"PS3.15 Annex E Basic Profile; options {', '.join(c for c, _ in codes[1:])}"
        dataset.DeidentificationMethodCodeSequence = [_code_item(code, meaning) for code, meaning in codes]


def patient_name_words(dataset: Dataset) -> list[str]:
    """The words of the patient's name in the header: the surest names to scrub from a note that comes with it."""
    return [part for part in str(dataset.get("PatientName", "")).replace("^", " ").split() if len(part) > 1]


def _patient_key(dataset: Dataset) -> str:
    """What identifies the patient: PatientID, else (unlinkable across studies) the Study Instance UID."""
    patient = str(dataset.get("PatientID", "") or "").strip()
    return patient or str(dataset.get("StudyInstanceUID", "") or "").strip()


def _dictionary_vr(tag: Tag) -> str | None:
    try:
        return dictionary_VR(tag[:2])
    except KeyError:
        return None  # a tag newer than pydicom's dictionary


def _datasets(dataset: Dataset) -> Iterator[Dataset]:
    """The dataset, then every item of its sequences, depth first; each item is visited after its parent
    has been processed, so sequences the profile removes are never entered."""
    yield dataset
    for element in [element for element in dataset if element.VR == "SQ"]:
        for item in element.value:
            yield from _datasets(item)


def _remove(dataset: Dataset, tag: Tag) -> None:
    """X, really removed (the library's X writes a dummy into dates)."""
    if tag in dataset:
        del dataset[tag]


def _empty_sequence(dataset: Dataset, tag: Tag) -> None:
    if tag in dataset:
        dataset[tag].value = []


def _set_value(value: str) -> Action:
    def action(dataset: Dataset, tag: Tag) -> None:
        if tag in dataset:
            dataset[tag].value = value

    return action


def _cap_age(dataset: Dataset, tag: Tag) -> None:
    """Keep Patient's Age as a valid AS (``081`` becomes ``081Y``), ``090Y`` when over 89; remove it if unreadable."""
    element = dataset.get(tag)
    if element is None or not element.value:
        return
    match = _AGE.match(str(element.value).strip().upper())
    if match is None:
        del dataset[tag]
        return
    number, unit = int(match[1]), match[2]
    years = number * _DAYS_PER_UNIT[unit] / 365.25
    element.value = f"{OLDEST_AGE:03d}Y" if years >= OLDEST_AGE else f"{number:03d}{unit or 'Y'}"


def _remove_private(dataset: Dataset, whitelist: frozenset[str]) -> None:
    """Remove private elements (and their creators) everywhere unless their creator is whitelisted."""

    def visit(item: Dataset, element: DataElement) -> None:
        tag = element.tag
        if not tag.is_private:
            return
        if tag.is_private_creator:
            creator = element.value
        else:
            creator_element = item.get((tag.group, tag.element >> 8))
            creator = creator_element.value if creator_element is not None else None
        if not isinstance(creator, str) or creator.strip() not in whitelist:
            del item[tag]

    dataset.walk(visit)


def _shift_dates(dataset: Dataset, days: int) -> None:
    """Move every DA and DT value, in every item, by ``days``; unreadable dates are emptied."""

    def visit(_item: Dataset, element: DataElement) -> None:
        if element.VR not in ("DA", "DT") or not element.value:
            return
        if element.VM > 1:
            element.value = [_shifted(str(value), days) for value in element.value]
        else:
            element.value = _shifted(str(element.value), days)

    dataset.walk(visit)


def _shifted(value: str, days: int) -> str:
    """``YYYYMMDD`` (DA), or the date part of a DT with its time and zone kept; '' if not a date."""
    text = value.strip()
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8])) + timedelta(days=days)
    except ValueError:
        return ""
    return day.isoformat().replace("-", "") + text[8:]


def _code_item(code: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = code
    item.CodingSchemeDesignator = CODING_SCHEME
    item.CodeMeaning = meaning
    return item
