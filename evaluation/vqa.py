"""VQA-RAD closed questions on chest images: does medrag's yes/no answer beat always giving the commoner answer?

Each closed chest question ("Is there a pneumothorax?", gold answer yes or no) is asked through the product as a
clinician would ask it: the question with its image, ``Assistant.ask``. The answer's decision is the reader's
yes / no / maybe over the retrieved evidence (the image steers retrieval; no model here reads the pixels to answer
a free question), so this suite measures what a user gets, not a VQA model. "maybe", an abstention or no decision
count as no answer: wrong for accuracy, and reported as coverage. The majority baseline is the commoner answer
among the questions scored (it favours the baseline: it is chosen on the test set itself).

Only images in the test part of the joint model's split are scored when the model has one (the joint model may
have trained on VQA-RAD chest pairs); the split's name is in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score
from tqdm import tqdm

from evaluation.joint import joint_split
from medrag.assistant import Assistant
from medrag.datasets.vqa_rad import VqaRadQuestion, read_vqa_rad
from medrag.metrics import bootstrap_interval
from medrag.reporting import save_confusion_matrix, write_json_and_markdown

ANSWERS = ("yes", "no")
NO_ANSWER = "no answer"


def closed_chest_questions(questions_json: Path, image_dir: Path | None = None) -> list[VqaRadQuestion]:
    """Chest questions answered yes or no whose image exists."""
    return [q for q in read_vqa_rad(questions_json, image_dir)
            if q.is_chest and q.answer.lower() in ANSWERS and q.image_path.is_file()]


def _given(answer: Any) -> str:
    decision = answer.decision
    if decision is None or decision.abstained or decision.label not in ANSWERS:
        return NO_ANSWER
    return decision.label


def evaluate_vqa(assistant: Assistant, questions_json: Path, *, tenant: str, image_dir: Path | None = None,
                 count: int | None = None, out_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Accuracy of the answers' yes/no decisions against the gold answers, beside the majority answer."""
    split = joint_split(assistant.config)
    questions = closed_chest_questions(questions_json, image_dir)
    scored = [q for q in questions if split is None or split.part(q.group) == "test"][:count]
    if not scored:
        raise ValueError(f"{questions_json}: no closed (yes/no) chest question with an existing image"
                         + (f" in the test part of split {split.name!r}" if split else "")
                         + "; give a VQA-RAD-format file with chest questions and its images folder")
    gold = [q.answer.lower() for q in scored]
    given = []
    for question in tqdm(scored, desc="vqa-rad closed chest questions", unit="q", disable=not progress):
        given.append(_given(assistant.ask(question=question.question, image=question.image_path, tenant=tenant,
                                          mode="extractive")))
    correct = [float(g == a) for g, a in zip(given, gold, strict=True)]
    majority = max(ANSWERS, key=gold.count)
    labels = [*ANSWERS, NO_ANSWER]
    matrix = confusion_matrix(gold, given, labels=labels).tolist()
    decided = [c for c, g in zip(correct, given, strict=True) if g != NO_ANSWER]
    report = {
        "file": str(questions_json), "split": split.name if split else None,
        "scored": "images in the test part of the joint model's split" if split else "every image",
        "questions": len(scored), "images": len({q.image_name for q in scored}),
        "accuracy": float(np.mean(correct)), "accuracy_ci95": bootstrap_interval(correct),
        "coverage": len(decided) / len(scored),
        "accuracy_when_answered": float(np.mean(decided)) if decided else None,
        "majority_answer": majority, "majority_accuracy": gold.count(majority) / len(gold),
        "majority_accuracy_ci95": bootstrap_interval([float(a == majority) for a in gold]),
        "paired_gain_ci95": bootstrap_interval([c - float(a == majority) for c, a in zip(correct, gold, strict=True)]),
        "confusion_matrix": matrix, "intents": labels, "macro_f1": _macro_f1(gold, given),
    }
    if out_dir is not None:
        write_json_and_markdown(report, render_markdown(report), Path(out_dir), "vqa")
        save_confusion_matrix(report, Path(out_dir) / "vqa_confusion.png", "VQA-RAD closed chest questions")
    return report


def _macro_f1(gold: list[str], given: list[str]) -> float:
    return float(f1_score(gold, given, labels=list(ANSWERS), average="macro", zero_division=0))


def render_markdown(report: Mapping[str, Any]) -> str:
    low, high = report["accuracy_ci95"]
    base_low, base_high = report["majority_accuracy_ci95"]
    gain_low, gain_high = report["paired_gain_ci95"]
    answered = report["accuracy_when_answered"]
    return "\n".join([
        "# VQA-RAD closed chest questions", "",
        f"`{report['file']}`: {report['questions']} yes/no chest questions on {report['images']} images "
        f"({report['scored']}{', split ' + report['split'] if report['split'] else ''}), asked with their image "
        "through `Assistant.ask`; the answer's yes/no decision is scored. Maybe, abstention or none = no answer.",
        "", "| answerer | accuracy [95% CI] | macro-F1 | coverage | accuracy when answered |", "|---|---|---|---|---|",
        f"| medrag | {report['accuracy']:.3f} [{low:.3f}, {high:.3f}] | {report['macro_f1']:.3f} | "
        f"{report['coverage']:.2f} | {'-' if answered is None else f'{answered:.3f}'} |",
        f"| always {report['majority_answer']!r} (majority) | {report['majority_accuracy']:.3f} "
        f"[{base_low:.3f}, {base_high:.3f}] | - | 1.00 | - |", "",
        f"Paired gain over the majority answer: [{gain_low:+.3f}, {gain_high:+.3f}] (95% bootstrap).",
    ]) + "\n"
