"""PHI-laden DICOM radiographs built from real images: material for de-identification tests.

Pixels come from a real chest radiograph JPEG (``cxr/covid/images``); acquisition fields (modality,
view, body part, spacing, dates, image type) from a row of the real IU DICOM headers
(``reports/iu-openi/nlmcxr_dicom_metadata.csv.gz``). On top, every kind of identifying attribute that
PS3.15 Annex E names is filled with a distinctive made-up value, in the top-level dataset, in nested
sequences, in a private block, in an overlay and in the file meta, and returned so a test can search
for each of them afterwards.
"""

from __future__ import annotations

import ast
import csv
import gzip
import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

TEMPLATES = Path("reports") / "iu-openi" / "nlmcxr_dicom_metadata.csv.gz"
PRIVATE_CREATOR = "KESSINGTON PACS 2.1"
"""A private block that carries PHI, as real PACS private tags do; the de-identifier must drop it."""

_FAMILY = ("Quillfeather", "Varncastle", "Oakenhurst", "Brackenbury", "Marchbanks", "Fennimore", "Thistlewood",
           "Quarrington", "Pellinore", "Ashcombe", "Wetherall", "Dunsmere")
_GIVEN = ("Ottoline", "Perpetua", "Thaddeus", "Isolde", "Leopold", "Wilhelmina", "Cornelius", "Seraphina",
          "Barnaby", "Clementine", "Ignatius", "Rosalind")
_PLACES = ("Varnholt", "Kessington", "Thistlecombe", "Quenbury", "Abbotsmere", "Wrexholme")
_STREETS = ("Fairbanks", "Quenby", "Marlowe", "Haverstock", "Pendragon", "Ellesmere")
_CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")


@dataclass(frozen=True)
class PlantedPHI:
    """Where the DICOM was written and every identifying value planted in it (names as ``Family^Given``)."""

    path: Path
    values: list[str]
    """What a clinical note would repeat comes first: patient name, MRN, accession, address, phone, birth date."""
    patient_id: str
    uids: dict[str, str] = field(default_factory=dict)
    """The original study, series, SOP instance, frame of reference and source image UIDs."""


def load_templates(data_dir: Path, n: int) -> list[dict[str, str]]:
    """The first ``n`` IU header rows of a CR/DX radiograph with a date, view, body part and pixel spacing."""
    path = data_dir / TEMPLATES
    with gzip.open(path, "rt", newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            spacing = row.get("Pixel Spacing") or row.get("Imager Pixel Spacing")
            wanted = ("Modality", "Study Date", "View Position", "Body Part Examined")
            if row.get("Modality") in ("CR", "DX") and spacing and all(row.get(key) for key in wanted):
                rows.append(row)
                if len(rows) == n:
                    return rows
    raise ValueError(f"{path}: only {len(rows)} usable template rows, {n} asked for")


def make_phi_dicom(jpeg_path: Path, template: dict[str, str], out_path: Path, seed: int,
                   transfer_syntax: str = ExplicitVRLittleEndian, *, burned_in: bool = False) -> PlantedPHI:
    """Write a CR DICOM of the JPEG's pixels with the template's header and planted PHI (see module doc).

    ``seed`` picks the identity: the same seed gives the same patient (name, MRN, birth date), so two
    templates with one seed are two studies of one patient. ``transfer_syntax`` may be any syntax pydicom
    can encode, or JPEG baseline, for which the JPEG file itself is encapsulated.
    """
    dataset, planted = phi_dataset(jpeg_path, template, seed, burned_in=burned_in)
    syntax = UID(transfer_syntax)
    if syntax == JPEGBaseline8Bit:
        dataset.PixelData = encapsulate([Path(jpeg_path).read_bytes()])
        dataset["PixelData"].VR = "OB"
        dataset.LossyImageCompression = "01"
        dataset.file_meta.TransferSyntaxUID = syntax
    elif syntax.is_compressed:
        dataset.compress(syntax)
    else:
        dataset.file_meta.TransferSyntaxUID = syntax
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(out_path, dataset, enforce_file_format=True)
    return PlantedPHI(out_path, planted.values, planted.patient_id, planted.uids)


def phi_dataset(jpeg_path: Path, template: dict[str, str], seed: int, *,
                burned_in: bool = False) -> tuple[Dataset, PlantedPHI]:
    """The dataset :func:`make_phi_dicom` writes, in memory (uncompressed), with what was planted in it."""
    person = _Identity(seed)
    uids = {
        name: generate_uid(entropy_srcs=[str(seed), template["imageid"], name])
        for name in ("study", "series", "sop", "frame_of_reference", "source_image")
    }
    pixels = np.asarray(Image.open(jpeg_path).convert("L"), dtype=np.uint8)
    study_date = template["Study Date"]
    birth_date = template.get("Patient's Birth Date") or person.birth_date

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(template.get("SOP Class UID") or _CR_IMAGE_STORAGE)
    ds.file_meta.MediaStorageSOPInstanceUID = uids["sop"]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = person.station_ae

    _acquisition(ds, template, pixels, burned_in)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = uids["sop"]
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
    ds.InstanceCreationDate = template.get("Instance Creation Date") or study_date
    ds.StudyTime = template.get("Study Time") or "093012"
    ds.AccessionNumber = person.accession
    ds.StudyID = person.study_id
    ds.InstitutionName = person.institution
    ds.InstitutionAddress = person.address
    ds.InstitutionalDepartmentName = person.department
    ds.StationName = person.station
    ds.DeviceSerialNumber = person.device_serial
    ds.ReferringPhysicianName = person.referring
    ds.PerformingPhysicianName = person.performing
    ds.NameOfPhysiciansReadingStudy = person.reading
    ds.OperatorsName = person.operator
    ds.RequestingPhysician = person.requesting

    ds.PatientName = person.name
    ds.PatientID = person.patient_id
    ds.IssuerOfPatientID = person.institution
    ds.OtherPatientIDs = person.other_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = person.sex
    ds.PatientAge = f"{_years(birth_date, study_date):03d}Y"
    ds.PatientAddress = person.address
    ds.PatientTelephoneNumbers = person.phone
    ds.PatientMotherBirthName = person.mother
    ds.PatientComments = f"{person.given} {person.family} ({person.patient_id}) asks for results by phone."
    ds.ImageComments = f"Repeat film for {person.family}, {person.given}; see {person.accession}."

    ds.SourceImageSequence = [_reference(ds.SOPClassUID, uids["source_image"])]
    ds.ReferencedStudySequence = [_reference(UID("1.2.840.10008.3.1.2.3.1"), uids["study"])]
    request = Dataset()
    request.RequestedProcedureID = person.requested_procedure
    request.ScheduledProcedureStepID = person.scheduled_step
    request.ReferencedStudySequence = [_reference(UID("1.2.840.10008.3.1.2.3.1"), uids["study"])]
    ds.RequestAttributesSequence = [request]

    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", person.name.replace("^", " "))
    block.add_new(0x11, "LO", person.patient_id)
    nested = Dataset()
    nested.PatientName = person.name
    block.add_new(0x12, "SQ", [nested])

    ds.add_new(0x60000010, "US", pixels.shape[0])  # an overlay plane with a label naming the patient
    ds.add_new(0x60000011, "US", pixels.shape[1])
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000022, "LO", f"{person.family} marker")
    overlay = np.packbits(np.zeros(pixels.size, np.uint8), bitorder="little").tobytes()
    ds.add_new(0x60003000, "OW", overlay + b"\0" * (len(overlay) % 2))
    ds.add_new(0x60004000, "LT", f"Drawn for {person.given} {person.family}")
    ds.add_new(0x50002500, "LO", f"{person.family} curve")  # retired curve module, still met in archives

    values = [
        person.name, person.patient_id, person.accession, person.address, person.phone, birth_date,
        person.family, person.given, person.institution, person.referring, person.performing, person.reading,
        person.operator, person.requesting, person.mother, person.other_id, person.department, person.station,
        person.station_ae, person.device_serial, person.study_id, person.requested_procedure,
        person.scheduled_step, study_date, ds.InstanceCreationDate, *uids.values(),
    ]
    return ds, PlantedPHI(Path(), list(dict.fromkeys(values)), person.patient_id, uids)


class _Identity:
    """A made-up person and the staff and places around them, fixed by the seed."""

    def __init__(self, seed: int):
        rng = random.Random(seed)
        number = rng.randrange(10**6, 10**7)
        self.family, self.given = rng.choice(_FAMILY), rng.choice(_GIVEN)
        self.name = f"{self.family}^{self.given}"
        self.sex = rng.choice("MF")
        self.birth_date = f"{rng.randrange(1930, 2000)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        self.patient_id = f"MRN-{number}"
        self.other_id = f"NHS{rng.randrange(10**9, 10**10)}"
        self.accession = f"ACC{rng.randrange(10**7, 10**8)}"
        self.study_id = f"STU{rng.randrange(10**5, 10**6)}"
        self.requested_procedure = f"RPQ{rng.randrange(10**6, 10**7)}"
        self.scheduled_step = f"SPQ{rng.randrange(10**6, 10**7)}"
        place, other = rng.sample(_PLACES, 2)
        self.institution = f"{place} {other} Infirmary"
        self.department = f"{other} Annexe"
        self.address = f"{rng.randrange(2, 99)} {rng.choice(_STREETS)} Road, {place}"
        self.phone = f"+44-1632-960{rng.randrange(100, 999)}"  # Ofcom's range for fiction
        self.station = f"XRQ{rng.randrange(1000, 9999)}"
        self.station_ae = f"AEQ{rng.randrange(1000, 9999)}"
        self.device_serial = f"SN{rng.randrange(10**7, 10**8)}QX"
        self.referring, self.performing, self.reading, self.operator, self.requesting, self.mother = (
            f"{family}^{given}" for family, given in zip(
                rng.sample([f for f in _FAMILY if f != self.family], 6),
                rng.sample([g for g in _GIVEN if g != self.given], 6),
                strict=True,
            )
        )


def _acquisition(ds: Dataset, template: dict[str, str], pixels: np.ndarray, burned_in: bool) -> None:
    """Non-identifying fields from the template, and the image pixel module of the 8-bit grey JPEG."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.Modality = template["Modality"]
    ds.BodyPartExamined = template["Body Part Examined"]
    ds.ViewPosition = template["View Position"]
    ds.ImageType = _multi(template.get("Image Type", "")) or ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = _multi(template.get("Patient Orientation", ""))
    ds.Manufacturer = template.get("Manufacturer", "")
    ds.BurnedInAnnotation = "YES" if burned_in else (template.get("Burned In Annotation") or "NO")
    if template.get("Image Laterality"):
        ds.ImageLaterality = template["Image Laterality"]
    scale = float(template.get("Columns") or pixels.shape[1]) / pixels.shape[1]
    for keyword, column in (("PixelSpacing", "Pixel Spacing"), ("ImagerPixelSpacing", "Imager Pixel Spacing")):
        spacing = _multi(template.get(column, ""))
        if spacing:
            setattr(ds, keyword, [f"{float(value) * scale:.4f}" for value in spacing])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()


def _reference(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def _multi(value: str) -> list[str]:
    """A CSV cell holding a DICOM multi-value, written as a Python list literal, or one plain value."""
    if value.startswith("["):
        return [str(item) for item in ast.literal_eval(value)]
    return [value] if value else []


def _years(birth: str, on: str) -> int:
    born, day = date(int(birth[:4]), int(birth[4:6]), int(birth[6:8])), date(int(on[:4]), int(on[4:6]), int(on[6:8]))
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))
