"""What de-identification did to a DICOM header, named by tag and action, never by value.

A clinician (and an auditor) should see that the patient's name was replaced and the birth date removed
without the app showing the name or the date again: the report lists tags and actions only.
"""

from __future__ import annotations

import dataclasses

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

REMOVED, REPLACED, EMPTIED, ADDED = "removed", "replaced", "emptied", "added"


@dataclasses.dataclass(frozen=True)
class HeaderChange:
    tag: str
    """``(0010,0010)``."""
    name: str
    """The DICOM keyword, or "private tag" / "unknown tag"."""
    action: str
    """removed, replaced, emptied or added (the de-identification method marks)."""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def header_changes(before: Dataset, after: Dataset) -> list[HeaderChange]:
    """Top-level elements removed, replaced, emptied or added between ``before`` and ``after``, in tag order.
    A sequence whose items changed in any way counts as replaced. Pixel data is not compared (the header
    profile never touches it; burned-in text is refused, not edited)."""
    changes: list[HeaderChange] = []
    for tag in sorted(set(before.keys()) | set(after.keys())):
        if tag == 0x7FE00010:
            continue
        old, new = before.get(tag), after.get(tag)
        if new is None:
            action = REMOVED
        elif old is None:
            action = ADDED
        elif old.value == new.value:
            continue
        else:
            action = EMPTIED if new.value in (None, "", b"") or (new.VR == "SQ" and not new.value) else REPLACED
        element = new if old is None else old
        changes.append(HeaderChange(_tag_text(tag), _name(tag, element.keyword), action))
    return changes


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _name(tag: BaseTag, keyword: str) -> str:
    if keyword:
        return keyword
    return "private tag" if tag.is_private else "unknown tag"
