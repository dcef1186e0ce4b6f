"""``medrag eval all --data DIR``: every suite the data supports, one index page, one provenance record.

Each suite is the same function its own ``medrag eval <suite>`` command runs, so a figure on the index page is the
figure a researcher gets from that command. Inputs are found by format (``evaluation.inputs.discover``), never by
name. A suite that fails is recorded on the index with its error and the rest go on. ``limit`` cuts every suite
to its first few items (the CI smoke run); a limited run says so on every page.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.inputs import DataInputs, discover, provenance
from medrag.assistant import Assistant
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.reporting import write_json_and_markdown

SEED = 0
VQA_QUESTIONS = 60
"""Closed chest questions asked in a full run (each is a whole ``Assistant.ask``, about 5-10 s here)."""
Suite = Callable[[Path], dict[str, Any]]
"""Runs one suite writing into the folder given; returns its headline rows."""


def _subset_pubmedqa(path: Path, limit: int, work: Path) -> Path:
    """About ``limit`` questions of a PubMedQA-format file from the test part of the shared split (no medrag model
    trained on them), every label kept when it has them."""
    records = read_pubmedqa(path)
    held_out = [r for r in records if DEFAULT_SPLIT.part(r.group) == "test"] or records
    by_label: dict[str, list[str]] = {}
    for record in held_out:
        by_label.setdefault(record.final_decision or "", []).append(record.pmid)
    chosen = {pmid for pmids in by_label.values() for pmid in pmids[: max(limit // len(by_label), 1)]}
    entries = json.loads(path.read_text(encoding="utf-8"))
    out = work / f"pubmedqa-{limit}-held-out-{path.stem}.json"
    out.write_text(json.dumps({pmid: entry for pmid, entry in entries.items() if pmid in chosen}))
    return out


def _interval(value: float, interval: Any) -> dict[str, Any]:
    return {"value": float(value), "ci95": [float(bound) for bound in interval] if interval is not None else None}


def _retrieval_suite(assistant: Assistant, questions: Path, metadata: Path | None, reports: list[Path],
                     tenant: str, progress: bool) -> Suite:
    """PubMedQA own-abstract retrieval over the questions' abstracts; with an image + note CSV and reports, the
    covid tasks too."""
    def run(out: Path) -> dict[str, Any]:
        from evaluation.retrieval import run_retrieval_eval
        from medrag.route.features import Query

        def route(question: str, vector: np.ndarray) -> Any:
            return assistant.router.route(Query(question=question), embedding=vector).searches

        report = run_retrieval_eval(assistant.config, questions, metadata, tenant=tenant, out_dir=out,
                                    router=route, pubmed_paths=[questions], report_paths=reports or None,
                                    store=assistant.store,
                                    text_encoder=assistant.text_encoder, joint_encoder=assistant.joint_encoder,
                                    progress=progress)
        methods = report["pubmedqa"]["comparison"]["methods"]
        return {"headline": {f"PubMedQA own-abstract MRR, {name}": _interval(m["mrr"]["mean"], m["mrr"]["interval"])
                             for name, m in methods.items()},
                "baseline": "bm25"}
    return run


def _qa_suite(assistant: Assistant, questions: Path, tenant: str, generate: int, progress: bool) -> Suite:
    """The yes/no/maybe decision and generated answers on the questions no medrag model trained on."""
    def run(out: Path) -> dict[str, Any]:
        from evaluation.answers import evaluate_answers
        from evaluation.retrieval import ingest_knowledge

        # The abstracts the questions are about (idempotent: after the retrieval suite this only checks).
        ingest_knowledge(assistant.config, assistant.store, tenant, None, None, pubmed_paths=[questions],
                         text_encoder=assistant.text_encoder, joint_encoder=None, progress=progress)
        report = evaluate_answers(assistant, questions, tenant=tenant, generate=generate, held_out_only=True,
                                  out_dir=out, progress=progress)
        decision, majority = report["extractive_decision"], report["majority_baseline"]
        generated = report["generative"]
        return {"headline": {
            "yes/no/maybe accuracy": _interval(decision["accuracy"], decision.get("accuracy_ci95")),
            "yes/no/maybe macro-F1": _interval(decision["macro_f1"], None),
            f"majority class ({majority['label']}) accuracy": _interval(majority["accuracy"], None),
            "generated answers: citation precision as written": _interval(generated["citation_precision"], None),
            "generated answers: supported sentence share": _interval(generated["supported_sentence_share"], None),
        }, "baseline": "majority class", "questions": report["count"], "generated": generated["answers"]}
    return run


def _read_suite(assistant: Assistant, metadata: Path, progress: bool) -> Suite:
    def run(out: Path) -> dict[str, Any]:
        from evaluation.read import INPUTS, evaluate_read

        report = evaluate_read(assistant.config, metadata, out=out, progress=progress)
        figures = report["figures"]
        return {"headline": {f"COVID-19 vs other pneumonia AUC, {inputs}":
                             _interval(figures[inputs]["auc"], figures[inputs]["auc_ci95"]) for inputs in INPUTS},
                "baseline": "chance AUC 0.5", "scored": report["scored"]}
    return run


def _report_suite(assistant: Assistant, inputs: DataInputs, limit: int | None, progress: bool) -> Suite:
    def run(out: Path) -> dict[str, Any]:
        from evaluation.report_generation import evaluate_report_generation

        report = evaluate_report_generation(inputs.reports, inputs.report_splits[0], inputs.chexpert_labeller[0],
                                            encoder=assistant.text_encoder, count=limit, seed=SEED, out_dir=out,
                                            progress=progress)
        return {"headline": report_headline(report), "baseline": "normal template; nearest other study's impression"}
    return run


def _vqa_suite(assistant: Assistant, questions: Path, tenant: str, count: int, progress: bool) -> Suite:
    def run(out: Path) -> dict[str, Any]:
        from evaluation.vqa import evaluate_vqa

        report = evaluate_vqa(assistant, questions, tenant=tenant, count=count, out_dir=out, progress=progress)
        return {"headline": {
            "closed chest questions: accuracy": _interval(report["accuracy"], report["accuracy_ci95"]),
            f"always {report['majority_answer']!r}: accuracy": _interval(report["majority_accuracy"],
                                                                       report["majority_accuracy_ci95"]),
            "coverage (answered yes or no)": _interval(report["coverage"], None),
        }, "baseline": "majority answer", "questions": report["questions"]}
    return run


def report_headline(report: Mapping[str, Any]) -> dict[str, Any]:
    """BLEU-4, ROUGE-L, CIDEr and finding micro-F1 of each report-generation method, with intervals."""
    return {f"{method}: {metric}": _interval(result["metrics"][metric], result["ci95"][metric])
            for method, result in report["results"].items()
            for metric in ("bleu_4", "rouge_l", "cider", "finding_f1_micro")}


def suites(assistant: Assistant, inputs: DataInputs, *, tenant: str, work: Path, limit: int | None,
           generate: int, progress: bool) -> dict[str, Suite | str]:
    """Each suite this data supports, or why it cannot run."""
    questions = inputs.pubmedqa[0] if inputs.pubmedqa else None
    if limit is not None and questions:
        questions = _subset_pubmedqa(questions, limit, work)
    missing = "no {} file in the data folder"
    planned: dict[str, Suite | str] = {}
    # A smoke run leaves out the covid retrieval tasks: they ingest every report first.
    covid = inputs.covid_metadata[0] if limit is None and inputs.covid_metadata and inputs.reports else None
    planned["retrieval"] = (_retrieval_suite(assistant, questions, covid, inputs.reports, tenant, progress)
                            if questions
                            else missing.format("PubMedQA-format"))
    planned["qa"] = (_qa_suite(assistant, questions, tenant, generate, progress) if questions
                     else missing.format("PubMedQA-format"))
    # The read is always scored on the whole file: its held-out part is found by the file's hash in the model's
    # card, so a cut copy of the training file would be scored in-sample.
    planned["read"] = (_read_suite(assistant, inputs.covid_metadata[0], progress) if inputs.covid_metadata
                       else missing.format("image + note CSV (metadata.csv-format)"))
    planned["report"] = (_report_suite(assistant, inputs, limit, progress)
                         if inputs.reports and inputs.report_splits and inputs.chexpert_labeller
                         else missing.format("IU XML reports + R2Gen split + CheXpert labeller"))
    planned["vqa"] = (_vqa_suite(assistant, inputs.vqa_rad[0], tenant, limit or VQA_QUESTIONS, progress)
                      if inputs.vqa_rad else missing.format("VQA-RAD-format"))
    return planned


def run_all(assistant: Assistant, data_dir: Path, out_dir: Path, *, tenant: str = "eval", limit: int | None = None,
            generate: int = 20, only: tuple[str, ...] = (), progress: bool = True) -> dict[str, Any]:
    """Run every suite ``data_dir`` supports into ``out_dir/<suite>/`` and write ``out_dir/index.{json,md}``."""
    out_dir = Path(out_dir)
    work = out_dir / "inputs"
    work.mkdir(parents=True, exist_ok=True)
    inputs = discover(data_dir)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name, suite in suites(assistant, inputs, tenant=tenant, work=work, limit=limit, generate=generate,
                              progress=progress).items():
        if only and name not in only:
            continue
        if isinstance(suite, str):
            results[name] = {"status": "not run", "why": suite}
            continue
        stamp = time.perf_counter()
        try:
            results[name] = {"status": "ok", **suite(out_dir / name)}
        except Exception as error:  # one failing suite is reported on the index; the rest run
            results[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc(limit=5)}
        results[name]["seconds"] = round(time.perf_counter() - stamp, 1)
    models = {"text": assistant.config.text_model, "joint": assistant.config.joint_model,
              "reader": assistant.config.generator_model, "decision": assistant.config.decision_model}
    index = {"data_dir": str(data_dir), "limit": limit, "found": inputs.found(), "suites": results,
             "seconds": round(time.perf_counter() - started, 1),
             "provenance": provenance(assistant.config, inputs.paths(), seeds={"bootstrap": SEED},
                                      models=models)}
    write_json_and_markdown(index, render_index(index), out_dir, "index")
    return index


def _figure(row: Mapping[str, Any]) -> str:
    interval = row.get("ci95")
    if interval is None or any(np.isnan(bound) for bound in interval):
        return f"{row['value']:.3f}"
    return f"{row['value']:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def render_index(index: Mapping[str, Any]) -> str:
    lines = ["# medrag evaluation", "",
             f"Data: `{index['data_dir']}`" + (f"; **smoke run: the first {index['limit']} items of each input**"
                                              if index["limit"] else "") + f"; {index['seconds']} s in all.", ""]
    for name, result in index["suites"].items():
        if result["status"] != "ok":
            lines += [f"## {name}: {result['status']}", "", result.get("why") or result.get("error", ""), ""]
            continue
        lines += [f"## [{name}]({name}/) ({result['seconds']} s; baseline: {result['baseline']})", "",
                  "| figure | value [95% CI] |", "|---|---|",
                  *(f"| {label} | {_figure(row)} |" for label, row in result["headline"].items()), ""]
    lines += ["## Inputs", "", "| input | sha256 |", "|---|---|",
              *(f"| `{path}` | `{digest[:16]}` |" for path, digest in index["provenance"]["inputs_sha256"].items()),
              "", f"Machine: {index['provenance']['machine']}; commit {index['provenance']['medrag_commit']}."]
    return "\n".join(lines) + "\n"
