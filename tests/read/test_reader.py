"""The model's read of an image: the committed model on real radiographs, its card, and the cases it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from knowledge_sources import DEMO_DIR
from medrag.imaging.radiograph import load_image_file
from medrag.pipeline.search import Embedded, Read
from medrag.read.reader import INPUTS, FindingReader, joint_identity, read_features
from medrag.types import ImageRead, QueryInput

COVID_IMAGE = DEMO_DIR / "covid" / "images" / "pneumocystis-pneumonia-1.jpg"


@pytest.fixture(scope="module")
def reader() -> FindingReader:
    return FindingReader.load()


def test_the_joint_identity_names_the_weights_not_the_folder():
    source = "/opt/site/medrag/encode/weights/joint-lite0-minilm (medrag joint lite0-minilm, 6386c6dfdd75)"
    assert joint_identity(source) == "medrag joint lite0-minilm, 6386c6dfdd75"
    assert joint_identity("local-dir:/models/biomedclip") == "local-dir:/models/biomedclip"


def test_features_need_what_their_inputs_name():
    image, note = np.ones(3, np.float32), np.zeros(2, np.float32)
    assert read_features("image + note", image, note).tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="needs image and note vectors"):
        read_features("image + note", image, None)


def test_the_committed_read_fits_the_committed_joint_model_and_reads_a_real_radiograph(reader, joint_encoder,
                                                                                        text_encoder):
    assert set(reader.models) == set(INPUTS)
    assert reader.fits(joint_encoder.source)
    image_vector = joint_encoder.encode_images([load_image_file(COVID_IMAGE)])[0]
    alone = reader.read(image_vector)
    assert [read.inputs for read in alone] == ["image"]
    note = text_encoder.encode(["Fever, cough and bilateral ground-glass opacities."])[0]
    both = reader.read(image_vector, note)
    assert [read.inputs for read in both] == ["image", "image + note"]
    for read in both:
        assert set(read.probabilities) == {"COVID-19", "other pneumonia"}
        assert sum(read.probabilities.values()) == pytest.approx(1)
        measured = reader.card["test"][read.inputs]
        assert read.auc == measured["auc"] and read.auc_interval[0] <= read.auc <= read.auc_interval[1]
        assert f"{measured['images']} images of {measured['groups']} patients never trained on" in read.sentence
        assert read.sentence.endswith("not a diagnosis.") and read.label in read.sentence
    assert both[0].probabilities == alone[0].probabilities, "the note changes only the image + note read"


def test_the_card_reports_each_read_beside_its_baselines(reader):
    for inputs in INPUTS:
        measured = reader.card["test"][inputs]
        assert measured["positives"] > 0 and measured["negatives"] > 0
        assert {"brier_prevalence", "majority_accuracy", "auc_ci95"} <= set(measured)
    assert reader.card["split"]["name"] == "medrag-v1"


def test_a_read_model_of_another_joint_model_gives_a_warning_and_no_read(reader):
    query = QueryInput("", "Cough.", load_image_file(COVID_IMAGE), None, {})
    embedded = Embedded(np.zeros(384, np.float32), np.zeros(256, np.float32), None)
    stage = Read(lambda: reader, retriever=None, joint_source=lambda: "local-dir:/models/other")
    [(reads, warnings)] = stage([query], [embedded])
    assert reads == [] and "medrag train read" in warnings[0]


def test_no_image_means_no_read_and_no_model_load():
    def never() -> FindingReader:
        raise AssertionError("the read model must not load for text-only requests")

    query = QueryInput("Is there an effusion?", "", None, None, {})
    [(reads, warnings)] = Read(never, retriever=None, joint_source=str)([query], [Embedded(np.zeros(4), None, None)])
    assert reads == [] and warnings == []


def test_an_image_read_serialises_with_its_reliability():
    read = ImageRead("COVID-19 vs other pneumonia", "image", {"other pneumonia": 0.3, "COVID-19": 0.7}, 0.79,
                     (0.69, 0.88), "107 images of 58 patients never trained on", "finding-read-covid")
    data = read.to_dict()
    assert data["label"] == "COVID-19" and data["auc_ci95"] == [0.69, 0.88]
    assert data["text"] == ("Model read (image): COVID-19 more likely than other pneumonia, probability 0.70 "
                            "(measured AUC 0.79 [0.69-0.88] on 107 images of 58 patients never trained on); "
                            "not a diagnosis.")


@pytest.mark.parametrize(("body_part", "read"), [("HEAD", False), ("ABDOMEN", False), ("CHEST", True), (None, True)])
def test_a_dicom_of_another_body_part_gets_no_chest_read(reader, body_part, read):
    header = Dataset()
    if body_part:
        header.BodyPartExamined = body_part
    query = QueryInput("", "", load_image_file(COVID_IMAGE), header, {})
    embedded = Embedded(np.zeros(384, np.float32), np.full(256, 1 / 16, np.float32), None)
    stage = Read(lambda: reader, retriever=None, joint_source=lambda: f"/x ({reader.card['joint_model']})")
    [(reads, warnings)] = stage([query], [embedded])
    assert bool(reads) is read
    assert warnings == ([] if read else [reader.refusal(body_part)]) and (read or body_part in warnings[0])


def test_note_vectors_of_another_text_model_give_the_image_read_only(reader):
    query = QueryInput("", "Cough and fever.", load_image_file(COVID_IMAGE), None, {})
    embedded = Embedded(np.zeros(384, np.float32), np.full(256, 1 / 16, np.float32), None)
    stage = Read(lambda: reader, retriever=None, joint_source=lambda: f"/x ({reader.card['joint_model']})",
                 text_model=Path("/models/all-mpnet-base-v2"))
    [(reads, warnings)] = stage([query], [embedded])
    assert [read.inputs for read in reads] == ["image"]
    assert "no image + note read" in warnings[0] and "medrag train read" in warnings[0]
    assert reader.fits_text(Path("/site-packages") / reader.card["text_model"])
