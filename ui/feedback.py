"""Clinicians' feedback on an answer, appended as one JSON line per verdict.

A line holds what a developer needs to reproduce and judge the answer (the configuration, the model behind each
step, the route, the evidence and citation ids, the de-identified question) and no PHI: the note and the image
are never written, and the free text is scrubbed like any other text before it is saved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from medrag.config import Config
from medrag.deid.text import scrub_text
from medrag.types import Answer

VERDICTS = ("correct", "incorrect", "wrong evidence")


def feedback_record(answer: Answer, verdict: str, comment: str, config: Config, mode: str, k: int) -> dict[str, Any]:
    """The JSON line for ``verdict`` on ``answer``; ValueError for an unknown verdict."""
    if verdict not in VERDICTS:
        raise ValueError(f"feedback verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verdict": verdict,
        "comment": scrub_text(comment).strip(),
        "question": answer.search.query.question,
        "had_note": bool(answer.search.query.note),
        "had_image": answer.search.query.image is not None,
        "answer": answer.text,
        "mode": answer.mode,
        "insufficient_evidence": answer.insufficient,
        "decision": answer.decision.label if answer.decision else None,
        "route": {"intent": answer.route.intent, "sources": [s.collection for s in answer.route.searches]},
        "evidence": [f"{item.collection}/{item.source_id}" for item in answer.evidence],
        "citations": [{"number": c.number, "source": f"{c.collection}/{c.source_id}",
                       "sentence_index": c.sentence_index} for c in answer.citations],
        "models": answer.models,
        "request": {"mode": mode, "k": k},
        "config": _config_summary(config),
    }


def _config_summary(config: Config) -> dict[str, Any]:
    """The settings that change answers (paths reduced to names, the server address and secrets left out)."""
    fields = ("text_model", "joint_model", "router_model", "fusion_model", "reranker", "rerank_depth",
              "generator_model", "decision_model", "answer_mode", "max_new_tokens", "temperature",
              "evidence_sentences", "min_relevance", "routing_table")
    summary: dict[str, Any] = {name: _plain(getattr(config, name)) for name in fields}
    summary["retrieval"] = dataclasses.asdict(config.retrieval)
    summary["answer"] = dataclasses.asdict(config.answer)
    summary["tenant"] = config.weaviate.tenant
    return summary


def _plain(value: Any) -> Any:
    return value.name if isinstance(value, Path) else value


def save_feedback(record: dict[str, Any], path: Path) -> None:
    """Append one line (the folder is made if needed); earlier lines are never rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
