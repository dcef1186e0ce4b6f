"""The joint vector from ingestion to search: real images, reports and Weaviate, with seeded test checkpoints.

The checkpoints hold the default towers with untrained (seeded) projections: enough to test the wiring
(a vector finds its own object; a new model re-encodes), never the quality of the joint space.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from knowledge_sources import DEMO_DIR
from medrag.config import Config, load_config
from medrag.doctor import report
from medrag.encode.joint import JointEncoder, build_base_model, trained_parameter_names
from medrag.imaging.radiograph import Radiograph, load_image_file, read_dicom, to_radiograph
from medrag.ingest.pipeline import Ingestor
from medrag.store import ARTICLES, CASES, JOINT_VECTOR, REPORTS, TEXT_VECTOR, Store

HELD_OUT = {"trained": {"image_to_text": {"mrr": 0.25}, "text_to_image": {"mrr": 0.2}, "zero_shot_auc": {"macro": 0.7}}}


def write_partial_checkpoint(folder: Path, seed: int) -> Path:
    """A medrag partial checkpoint: the default towers' seeded, untrained projections and a model card."""
    from safetensors.torch import save_file

    model = build_base_model(seed=seed)
    names = set(trained_parameter_names(model))
    folder.mkdir(parents=True)
    save_file({name: parameter.detach().contiguous() for name, parameter in model.named_parameters() if name in names},
              folder / "projections.safetensors")
    card = {"name": f"test seed {seed}", "embed_dim": 256, "test_metrics": HELD_OUT}
    (folder / "medrag_joint.json").write_text(json.dumps(card))
    return folder


def stored(store: Store, collection: str, tenant: str) -> list:
    """Every object of the tenant with its named vectors."""
    return store.client.collections.use(collection).with_tenant(tenant).query.fetch_objects(
        include_vector=True, limit=1000).objects


def copy_reports(folder: Path, count: int) -> Path:
    """The first ``count`` real IU demo reports (all with findings or impression) in their own folder."""
    folder.mkdir()
    for path in sorted((DEMO_DIR / "iu-reports").glob("*.xml"))[:count]:
        shutil.copy(path, folder)
    return folder


def case_image(config: Config, properties: dict) -> Radiograph:
    """The de-identified image medrag kept for an ingested case."""
    path = config.image_dir / properties["image_ref"]
    return to_radiograph(read_dicom(path)) if path.suffix == ".dcm" else load_image_file(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_partial_checkpoint(tmp_path_factory.mktemp("joint") / "seed0", seed=0)


@pytest.fixture(scope="module")
def encoder(checkpoint) -> JointEncoder:
    return JointEncoder.load(checkpoint)


@pytest.fixture(scope="module")
def articles(tmp_path_factory) -> Path:
    """Five real PubMedQA demo articles."""
    path = tmp_path_factory.mktemp("articles") / "pubmedqa.json"
    path.write_text(json.dumps(dict(list(json.loads((DEMO_DIR / "pubmedqa_demo.json").read_text()).items())[:5])))
    return path


@pytest.fixture(scope="module")
def ingested(config, store, text_encoder, encoder, articles, tmp_path_factory) -> str:
    """A tenant holding the demo cases, 40 reports and 5 articles, ingested with the seed-0 encoder."""
    tenant = store.create_tenant(f"t{uuid.uuid4().hex[:16]}")
    ingestor = Ingestor(config, store, text_encoder=text_encoder, joint_encoder=encoder, tenant=tenant,
                        progress=False)
    reports = copy_reports(tmp_path_factory.mktemp("reports") / "iu", 40)
    for summary in (ingestor.images([DEMO_DIR / "covid" / "metadata.csv"]), ingestor.images([DEMO_DIR / "dicom"]),
                    ingestor.reports([reports]), ingestor.pubmed([articles])):
        assert summary.ok and summary.written, summary.render()
    return tenant


def test_cases_and_reports_carry_a_joint_vector_articles_do_not(store, ingested, encoder):
    cases, reports = stored(store, CASES, ingested), stored(store, REPORTS, ingested)
    assert (len(cases), len(reports)) == (11, 40)
    for item in cases + reports:
        assert set(item.vector) == {TEXT_VECTOR, JOINT_VECTOR}
        assert len(item.vector[JOINT_VECTOR]) == encoder.dim == 256
        assert np.linalg.norm(item.vector[JOINT_VECTOR]) == pytest.approx(1.0, abs=1e-4)
    articles = stored(store, ARTICLES, ingested)
    assert len(articles) == 5 and all(set(item.vector) == {TEXT_VECTOR} for item in articles)


@pytest.mark.parametrize("source", ["covid", "dicom"])
def test_a_case_image_finds_that_case_first(config, store, ingested, encoder, source):
    case = next(item for item in stored(store, CASES, ingested) if item.properties["source"] == source)
    query = encoder.encode_images([case_image(config, case.properties)])[0]
    np.testing.assert_allclose(case.vector[JOINT_VECTOR], query, atol=1e-4)
    hits = store.near_vector(CASES, query, target_vector=JOINT_VECTOR, limit=3, tenant=ingested)
    assert hits[0].source_id == case.properties["source_id"]
    assert hits[0].distance < 1e-4 < hits[1].distance


def test_a_reports_joint_text_vector_finds_that_report_first(store, ingested, encoder):
    reports = stored(store, REPORTS, ingested)
    texts = [item.properties["text"] for item in reports]
    report = next(item for item in sorted(reports, key=lambda item: item.properties["source_id"])
                  if texts.count(item.properties["text"]) == 1)
    query = encoder.encode_texts([report.properties["text"]])[0]
    np.testing.assert_allclose(report.vector[JOINT_VECTOR], query, atol=1e-4)
    hits = store.near_vector(REPORTS, query, target_vector=JOINT_VECTOR, limit=2, tenant=ingested)
    assert hits[0].source_id == report.properties["source_id"]
    assert hits[0].distance < 1e-4 < hits[1].distance


def test_a_new_joint_model_re_encodes_reports_and_cases_not_articles(config, store, tenant, text_encoder, encoder,
                                                                      articles, tmp_path):
    few_reports = copy_reports(tmp_path / "iu", 10)

    def ingest(joint_encoder: JointEncoder) -> list:
        ingestor = Ingestor(config, store, text_encoder=text_encoder, joint_encoder=joint_encoder, tenant=tenant,
                            progress=False)
        return [ingestor.images([DEMO_DIR / "dicom"]), ingestor.reports([few_reports]), ingestor.pubmed([articles])]

    first = ingest(encoder)
    counts = [summary.written for summary in first]
    assert counts == [3, 10, 5], [summary.render() for summary in first]
    assert [summary.unchanged for summary in ingest(encoder)] == counts

    other = JointEncoder.load(write_partial_checkpoint(tmp_path / "seed1", seed=1))
    assert other.source != encoder.source
    switched = ingest(other)
    assert [(summary.written, summary.unchanged) for summary in switched] == [(3, 0), (10, 0), (0, 5)]
    report = stored(store, REPORTS, tenant)[0]
    np.testing.assert_allclose(report.vector[JOINT_VECTOR], other.encode_texts([report.properties["text"]])[0],
                               atol=1e-4)


def test_joint_off_writes_no_joint_vectors_and_loads_no_model(config, store, tenant, text_encoder, encoder):
    ingestor = Ingestor(config, store, text_encoder=text_encoder, joint=False, tenant=tenant, progress=False)
    assert ingestor.joint_encoder is None
    assert ingestor.images([DEMO_DIR / "dicom"]).written == 3
    assert all(set(item.vector) == {TEXT_VECTOR} for item in stored(store, CASES, tenant))
    with pytest.raises(ValueError, match="joint=False"):
        Ingestor(config, store, text_encoder=text_encoder, joint_encoder=encoder, joint=False, tenant=tenant)


def test_without_a_trained_checkpoint_ingestion_warns_once_and_goes_on(config, store, tenant, text_encoder,
                                                                       tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("medrag.encode.joint.DEFAULT_CHECKPOINT", tmp_path / "not-trained")
    with caplog.at_level(logging.WARNING, logger="medrag.ingest.pipeline"):
        ingestor = Ingestor(config.replace(joint_model=None), store, text_encoder=text_encoder, tenant=tenant,
                            progress=False)
        assert ingestor.images([DEMO_DIR / "dicom"]).written == 3
    assert ingestor.joint_encoder is None
    assert [record.getMessage() for record in caplog.records] == [
        f"ingesting without joint (image-text) vectors: no joint checkpoint at {tmp_path / 'not-trained'}; "
        "run `medrag train joint` (a few minutes)"
    ]
    assert all(set(item.vector) == {TEXT_VECTOR} for item in stored(store, CASES, tenant))


def test_the_configured_joint_model_is_loaded_and_a_missing_one_is_an_error(config, store, tenant, text_encoder,
                                                                            checkpoint, tmp_path):
    ingestor = Ingestor(config.replace(joint_model=str(checkpoint)), store, text_encoder=text_encoder, tenant=tenant,
                        progress=False)
    assert ingestor.joint_encoder is not None
    assert ingestor.joint_encoder.source.startswith(f"{checkpoint} (test seed 0, ")
    misconfigured = Ingestor(config.replace(joint_model=str(tmp_path / "nowhere")), store,
                             text_encoder=text_encoder, tenant=tenant, progress=False)
    misconfigured.pubmed([DEMO_DIR / "pubmedqa_demo.json"])
    assert "joint_encoder" not in vars(misconfigured), "articles alone never load the joint model"
    with pytest.raises(FileNotFoundError, match=r"no open_clip_config\.json"):
        misconfigured.reports([DEMO_DIR / "iu-reports"])


def test_doctor_names_the_configured_joint_checkpoint_without_loading_it(checkpoint, tmp_path):
    def row(model: Path) -> str:
        return dict(report(load_config(env={"MEDRAG_JOINT_MODEL": str(model)})))["joint model"]

    assert row(checkpoint) == (f"medrag partial checkpoint 'test seed 0' at {checkpoint}; held-out image->text "
                               "MRR 0.250, text->image MRR 0.200, zero-shot AUC 0.700 (MEDRAG_JOINT_MODEL)")
    card_only = tmp_path / "card-only"
    card_only.mkdir()
    shutil.copy(checkpoint / "medrag_joint.json", card_only)
    assert row(card_only).startswith(f"MISSING: {card_only / 'projections.safetensors'} beside its card")
    assert row(tmp_path / "nowhere").startswith(f"MISSING: no open_clip_config.json (nor medrag_joint.json) in "
                                                f"{tmp_path / 'nowhere'}")
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "open_clip_config.json").write_text("{}")
    assert row(config_only).startswith("MISSING: no weights (.safetensors, .bin, .pth) beside")
