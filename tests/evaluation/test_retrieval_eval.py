"""The retrieval evaluation: metrics on hand-made rankings, and a whole run on real data subsets in real Weaviate."""

from __future__ import annotations

import csv
import json
import math
import tarfile
import uuid
from pathlib import Path

import pytest

from evaluation.retrieval import (
    ALPHAS,
    covid_cases,
    id_metrics,
    mean_metrics,
    rank_metrics,
    recall_curve,
    report_is_relevant,
    run_retrieval_eval,
)
from medrag.datasets.covid import finding_class
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.encode.joint import JointEncoder
from medrag.retrieve.retriever import SourceSearch
from medrag.store import ARTICLES, CASES, REPORTS

QUESTIONS = 40
REPORTS_KEPT = 200
CASES_PER_FINDING = {"COVID-19": 14, "other pneumonia": 8, "no finding": 6, None: 2}


def test_rank_metrics_on_a_hand_made_ranking():
    metrics = rank_metrics([False, True, False, True], total_relevant=3, ks=(1, 2, 4))
    assert metrics["recall@1"] == 0.0 and metrics["hit@1"] == 0.0
    assert metrics["recall@2"] == pytest.approx(1 / 3) and metrics["hit@2"] == 1.0
    assert metrics["recall@4"] == pytest.approx(2 / 3) and metrics["precision@4"] == 0.5
    assert metrics["mrr"] == 0.5
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)


def test_id_metrics_count_a_repeated_id_once_and_a_miss_as_zero():
    assert id_metrics(["a", "a", "b"], {"b"})["mrr"] == 0.5
    found = id_metrics(["x", "y", "z"], {"z"})
    assert (found["recall@1"], found["recall@5"], found["ndcg@10"]) == (0.0, 1.0, 0.5)
    missed = id_metrics(["x", "y"], {"z"})
    assert missed["mrr"] == missed["recall@10"] == missed["ndcg@10"] == 0.0
    mean = mean_metrics([found, missed])
    assert mean["queries"] == 2 and mean["recall@5"] == 0.5 and mean["mrr"] == pytest.approx(1 / 6)


def test_recall_curve_counts_the_own_abstract_within_each_depth():
    rankings = {"m": {"1": [(ARTICLES, "9"), (ARTICLES, "1")], "2": [(ARTICLES, "2")], "3": [(REPORTS, "3")]}}
    assert recall_curve(rankings, ["1", "2", "3"], 3) == {"m": [1 / 3, 2 / 3, 2 / 3]}


def test_report_relevance_follows_the_mesh_terms():
    assert report_is_relevant("COVID-19", ["Cardiomegaly/mild", "Opacity/lung/base/left"])
    assert report_is_relevant("other pneumonia", ["Airspace Disease/lung/lower lobe"])
    assert not report_is_relevant("COVID-19", ["normal"])
    assert report_is_relevant("no finding", ["normal"])
    assert not report_is_relevant("no finding", ["normal", "Calcified Granuloma/lung"])


def test_covid_cases_scrub_notes_and_join_a_patients_images(data_dir):
    cases = covid_cases(data_dir / "cxr" / "covid" / "metadata.csv")
    first, second = cases[0], cases[1]  # patient 2, admission and day 3
    assert first.group == second.group and first.source_id != second.source_id
    assert "January 22, 2020" not in first.note and "[DATE]" in first.note
    assert len({case.source_id for case in cases}) == len(cases)


def _covid_subset(data_dir: Path, path: Path) -> Path:
    """A metadata.csv of real rows (a patient with two images among them) whose folder points at the real images."""
    source = data_dir / "cxr" / "covid" / "metadata.csv"
    with source.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    wanted = dict(CASES_PER_FINDING)
    chosen = []
    for row in rows:
        label = finding_class(row["finding"])
        if wanted.get(label, 0) > 0:
            wanted[label] -= 1
            chosen.append(row | {"folder": str((source.parent / row["folder"]).resolve())})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    return path


def _report_subset(data_dir: Path, folder: Path) -> Path:
    """The first IU report XML files, unmodified, out of the real tarball."""
    with tarfile.open(data_dir / "reports" / "iu-openi" / "NLMCXR_reports.tgz") as archive:
        members = [member for member in archive.getmembers() if member.isfile() and member.name.endswith(".xml")]
        archive.extractall(folder, members=members[:REPORTS_KEPT], filter="data")
    return folder


@pytest.fixture(scope="module")
def run(config, store, text_encoder, pubmedqa, data_dir, tmp_path_factory):
    """One whole evaluation on 40 questions, 200 IU reports and 30 real cases, with a reports-only router."""
    folder = tmp_path_factory.mktemp("retrieval-eval")
    questions = folder / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:QUESTIONS])))
    metadata = _covid_subset(data_dir, folder / "metadata.csv")
    report = run_retrieval_eval(
        config, questions, metadata, tenant=f"t{uuid.uuid4().hex[:16]}", out_dir=folder / "out",
        router=lambda question, vector: [SourceSearch(REPORTS)], pubmed_paths=[questions],
        report_paths=[_report_subset(data_dir, folder / "reports")], store=store, text_encoder=text_encoder,
        joint_encoder=JointEncoder.load(), progress=False,
    )
    return report, folder / "out", metadata


def _scores(metrics: dict) -> list[float]:
    return [value for name, value in metrics.items() if "@" in name or name in ("mrr", "random_precision")]


def test_pubmedqa_questions_find_their_own_abstracts(run):
    report, _, _ = run
    qa = report["pubmedqa"]
    assert qa["questions"] == QUESTIONS and qa["questions_without_stored_abstract"] == 0
    assert qa["collections"][ARTICLES] == QUESTIONS and qa["collections"][CASES] > 0
    expected = {"bm25", "dense", *(f"hybrid alpha={alpha:.2f}" for alpha in ALPHAS), "unrouted", "routed"}
    assert set(qa["methods"]) == expected
    for name, metrics in qa["methods"].items():
        assert metrics["queries"] == QUESTIONS
        assert all(0.0 <= value <= 1.0 for value in _scores(metrics)), name
        assert metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"], name
    assert qa["methods"]["hybrid alpha=0.50"]["recall@5"] >= 0.8
    assert qa["methods"]["bm25"]["recall@10"] >= 0.8 and qa["methods"]["dense"]["recall@10"] >= 0.8
    assert qa["best_alpha"] in ALPHAS
    best = qa["methods"][f"hybrid alpha={qa['best_alpha']:.2f}"]["recall@5"]
    assert all(row["recall@5"] <= best for row in qa["alpha_sweep"])


def test_routing_changes_what_is_found(run):
    qa = run[0]["pubmedqa"]
    assert qa["methods"]["unrouted"]["recall@10"] >= 0.8, "searching every source still finds the abstract"
    assert qa["methods"]["routed"]["recall@10"] == 0.0, "a route to reports only cannot find an article"
    assert qa["routes"] == {REPORTS: QUESTIONS}


def test_covid_notes_find_reports_and_images_find_cases(run):
    report, _, metadata = run
    covid = report["covid"]
    notes, images = covid["note_to_reports"], covid["image_to_cases"]
    assert notes["queries"] > 0 and notes["reports"] == report["pubmedqa"]["collections"][REPORTS]
    assert set(notes["by_class"]) <= {"COVID-19", "other pneumonia", "no finding"}
    assert notes["relevant_reports"]["no finding"] > 0
    labelled = [case for case in covid_cases(metadata) if case.finding_class]
    assert images["queries"] == len(labelled) == sum(n for label, n in CASES_PER_FINDING.items() if label)
    expected_random = sum(
        sum(other.finding_class == case.finding_class for other in labelled if other.group != case.group)
        / sum(other.group != case.group for other in labelled) for case in labelled) / len(labelled)
    assert images["random_precision"] == pytest.approx(expected_random)
    assert images["majority_class"] == "COVID-19"
    assert covid["held_out_split"] == DEFAULT_SPLIT.name, "read from the committed joint model's card"
    held_out = [case for case in labelled if DEFAULT_SPLIT.part(case.group) == "test"]
    assert images["held_out"]["queries"] == len(held_out) < len(labelled)
    assert images["majority_precision"] == pytest.approx(CASES_PER_FINDING["COVID-19"] / len(labelled))
    for metrics in (notes, images, *notes["by_class"].values(), *images["by_class"].values()):
        assert all(0.0 <= value <= 1.0 for value in _scores(metrics))


def test_report_files_are_written(run):
    report, out, _ = run
    assert json.loads((out / "retrieval.json").read_text()) == json.loads(json.dumps(report))
    markdown = (out / "retrieval.md").read_text()
    assert "| bm25 |" in markdown and "| routed (router's sources and weights) |" in markdown
    assert "| note -> reports |" in markdown and "| image -> cases |" in markdown
    assert (out / "retrieval_alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
