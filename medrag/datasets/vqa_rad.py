"""The VQA-RAD format: a JSON list of ``{qid, image_name, image_organ, question, answer, ...}`` with an image folder.

One reader for the joint model's image-text pairs and the router's imaging questions. Any file in the format
works; images are looked up in ``images/`` beside the JSON unless another folder is given.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from medrag.datasets.pairs import Pair

REQUIRED = ("image_name", "question", "answer")


@dataclasses.dataclass(frozen=True)
class VqaRadQuestion:
    image_name: str
    organ: str
    """``image_organ`` upper-cased: CHEST, HEAD, ABD."""
    question: str
    answer: str
    image_path: Path

    @property
    def group(self) -> str:
        """Canonical split key: every question about one image is one group."""
        return f"vqa-rad:{self.image_name}"

    @property
    def is_chest(self) -> bool:
        return self.organ.startswith("CHEST")


def read_vqa_rad(questions_json: Path, image_dir: Path | None = None) -> list[VqaRadQuestion]:
    """Every question of a VQA-RAD-format file, in file order (answers may be numbers: read as text)."""
    path = Path(questions_json)
    image_dir = Path(image_dir) if image_dir is not None else path.parent / "images"
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); a VQA-RAD file is a JSON list of question objects") \
            from None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of question objects, got {type(items).__name__}")
    questions = []
    for index, item in enumerate(items):
        missing = [field for field in REQUIRED if not isinstance(item, dict) or str(item.get(field, "")).strip() == ""]
        if missing:
            raise ValueError(f"{path}: item {index}: field {missing[0]!r} is missing or empty; every question "
                             f"needs {', '.join(REQUIRED)}")
        name = str(item["image_name"]).strip()
        questions.append(VqaRadQuestion(name, str(item.get("image_organ") or "").strip().upper(),
                                        str(item["question"]).strip(), str(item["answer"]).strip(), image_dir / name))
    return questions


def vqa_rad_pairs(questions_json: Path, image_dir: Path | None = None) -> list[Pair]:
    """One pair per chest image that exists: its question-answer pairs joined as statements."""
    by_image: dict[str, list[VqaRadQuestion]] = {}
    for item in read_vqa_rad(questions_json, image_dir):
        if item.is_chest:
            by_image.setdefault(item.image_name, []).append(item)
    return [Pair(items[0].image_path, " ".join(f"{q.question.rstrip('?')}? {q.answer}." for q in items),
                 items[0].group, "vqa-rad")
            for _, items in sorted(by_image.items()) if items[0].image_path.is_file()]
