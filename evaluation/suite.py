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
from medrag.sources import collections
from medrag.store import Store, StoreError

SEED = 0
VQA_QUESTIONS = 60
"""Closed chest questions asked in a full run (each is a whole ``Assistant.ask``, about 5-10 s here)."""
LATENCY_REQUESTS = 40
"""Requests of each kind (text question, note + image) timed one at a time in a full run."""
ABLATION_SEEDS = (0,)
"""One seed per fusion variant keeps the suite inside its time; ``medrag eval ablate`` runs three."""
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


def _interval(value: float, interval: Any, se: float | None = None) -> dict[str, Any]:
    row = {"value": float(value), "ci95": [float(bound) for bound in interval] if interval is not None else None}
    return row if se is None else {**row, "se": float(se)}


def _retrieval_suite(assistant: Assistant, questions: Path, metadata: Path | None, reports: list[Path],
                     tenant: str, progress: bool) -> Suite:
    """PubMedQA own-abstract retrieval over the questions' abstracts; with an image + note CSV and reports, the
    covid tasks too."""
    def run(out: Path) -> dict[str, Any]:
        from evaluation.retrieval import run_retrieval_eval
        from medrag.route.features import Query

        def route(question: str, vector: np.ndarray) -> Any:
            return assistant.router.route(Query(question=question), embedding=vector).searches

        def pipeline(question: str, _vector: np.ndarray) -> list[tuple[str, str]]:
            return [(item.collection, item.source_id)
                    for item in assistant.search(question=question, tenant=tenant).evidence]

        report = run_retrieval_eval(assistant.config, questions, metadata, tenant=tenant, out_dir=out,
                                    router=route, pipeline=pipeline, pubmed_paths=[questions],
                                    report_paths=reports or None,
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
            "yes/no/maybe accuracy (MIRAGE setting: question-only retrieval, ± binomial SE)":
                _interval(decision["accuracy"], decision.get("accuracy_ci95"), decision["accuracy_binomial_se"]),
            "zero-shot reader accuracy (same evidence)": _interval(
                report["zero_shot_reader_decision"]["accuracy"],
                report["zero_shot_reader_decision"].get("accuracy_ci95")),
            "yes/no/maybe macro-F1": _interval(decision["macro_f1"], None),
            f"majority class ({majority['label']}) accuracy": _interval(majority["accuracy"], None),
            "generated answers: citation precision as written": _interval(
                generated["citation_precision"], generated["ci95"]["citation_precision"]),
            "generated answers: supported sentence share": _interval(
                generated["supported_sentence_share"], generated["ci95"]["supported_sentence_share"]),
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


def _routing_suite(assistant: Assistant, inputs: DataInputs, limit: int | None) -> Suite:
    """The router on labelled queries built from every input it can read (``training.labelled_queries``), kept
    to the groups in the test part of the split the router trained on."""
    def run(out: Path) -> dict[str, Any]:
        from evaluation.routing import evaluate_router
        from training.labelled_queries import labelled_queries, write_queries

        queries = [query for query in labelled_queries(pubmedqa=inputs.pubmedqa, vqa_rad=inputs.vqa_rad,
                                                       reports=inputs.reports, covid=inputs.covid_metadata,
                                                       seed=SEED)
                   if DEFAULT_SPLIT.part(query.group) == "test"]
        if limit is not None:
            by_intent: dict[str, list[Any]] = {}
            for query in queries:
                by_intent.setdefault(query.intent, []).append(query)
            queries = [query for group in by_intent.values() for query in group[:limit]]
        out.mkdir(parents=True, exist_ok=True)
        path = out / "held_out_queries.jsonl"
        write_queries(queries, path)
        report = evaluate_router(assistant.config, path, out, text_encoder=assistant.text_encoder)
        majority = report["majority_baseline"]
        return {"headline": {
            "intent accuracy": _interval(report["accuracy"], report["accuracy_ci95"]),
            "intent macro-F1": _interval(report["macro_f1"], None),
            f"always {majority['intent']}: accuracy": _interval(majority["accuracy"], None),
            "misrouted but still searching the primary source": _interval(report["primary_source_recall"], None),
        }, "baseline": "majority intent", "queries": report["queries"]}
    return run


def _ablate_suite(assistant: Assistant, questions: Path, metadata: Path | None, reports: list[Path], tenant: str,
                  progress: bool) -> Suite:
    """The fusion design rules, one seed each, on the held-out queries of the fusion checkpoint's split; beside
    them, the joint model's regularisers as measured when it was trained (its ``ablation.json``)."""
    def run(out: Path) -> dict[str, Any]:
        from evaluation.fusion import FULL, NO_FUSION, ablate, write_ablation
        from evaluation.retrieval import ingest_knowledge
        from medrag.encode.joint import DEFAULT_CHECKPOINT as JOINT_CHECKPOINT
        from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT
        from training.fusion_data import fusion_data

        # Only what the data folder holds, as the retrieval suite ingests it: the tenant, and so every suite after
        # this one, must not depend on the order the suites ran in.
        ingest_knowledge(assistant.config, assistant.store, tenant, questions, metadata,
                         text_encoder=assistant.text_encoder,
                         joint_encoder=assistant.joint_encoder if metadata else None, pubmed_paths=[questions],
                         report_paths=reports or None, progress=progress)
        # The candidates the fusion module learns from are the retrieval order, as `medrag train fusion` builds
        # them: an Assistant on the same store and models with the reranker off.
        unranked = Assistant(assistant.config.replace(reranker="retrieval"), assistant.store,
                             text_encoder=assistant.text_encoder,
                             joint_encoder=assistant.joint_encoder if metadata else None)
        data = fusion_data(unranked, questions, metadata, tenant=tenant, cache_dir=assistant.config.cache_dir,
                           progress=progress)
        report = ablate(data, assistant.config.fusion_model or DEFAULT_CHECKPOINT, seeds=ABLATION_SEEDS,
                        progress=progress)
        joint = Path(assistant.config.joint_model or JOINT_CHECKPOINT) / "ablation.json"
        if metadata and joint.is_file():
            report["joint_model_regularisers"] = {
                "source": str(joint), "measured": "when the joint model was trained: mean recall@5 of both "
                "directions on its validation part, 3 seeds (rerun with `medrag train joint --ablate`)",
                "results": json.loads(joint.read_text())}
        write_ablation(report, out)
        headline = {}
        for task, metrics in report["fusion_gain"].items():
            row = metrics["mrr"]
            headline[f"{task} MRR, {NO_FUSION}"] = _interval(row[NO_FUSION], row[f"{NO_FUSION} ci95"])
            headline[f"{task} MRR, fusion ({FULL})"] = _interval(row[FULL], row[f"{FULL} ci95"])
            headline[f"{task} MRR gain of fusion (paired)"] = _interval(row["gain"], row["gain ci95"])
        for name, result in report["results"].items():
            if name not in (FULL, NO_FUSION) and "covid" in result:
                headline[f"covid MRR, {name}"] = _interval(result["covid"]["mrr"]["mean"], None)
        for name, result in report.get("joint_model_regularisers", {}).get("results", {}).items():
            headline[f"joint model recall@5 (validation, recorded), {name}"] = _interval(result["mean"], None)
        return {"headline": headline, "baseline": f"{NO_FUSION}; the full fusion model",
                "seeds": list(ABLATION_SEEDS)}
    return run


def _latency_suite(assistant: Assistant, questions: Path | None, metadata: Path | None, tenant: str, count: int,
                   progress: bool) -> Suite:
    def run(out: Path) -> dict[str, Any]:
        from evaluation.latency import END_TO_END, evaluate_latency
        from medrag.datasets.covid import covid_cases

        texts = [record.question for record in read_pubmedqa(questions)][:count] if questions else []
        cases = [(case.note, case.image_path) for case in covid_cases(metadata)
                 if case.note and case.image_path.is_file()][:count] if metadata else []
        report = evaluate_latency(assistant, texts, cases, tenant=tenant, out_dir=out, progress=progress)
        headline = {}
        for kind, stages in report["kinds"].items():
            for q in (50, 95, 99):
                figure = stages[END_TO_END][f"p{q}_ms"]
                headline[f"{kind}, end to end p{q} ms"] = _interval(figure["value"], figure["ci95"])
        return {"headline": headline, "baseline": "per-stage split in latency.md; benchmarks/ for cold start and "
                "concurrency", "requests": {kind: stages[END_TO_END]["count"]
                                            for kind, stages in report["kinds"].items()}}
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
    planned["routing"] = (_routing_suite(assistant, inputs, limit)
                          if inputs.pubmedqa or inputs.vqa_rad or inputs.reports or inputs.covid_metadata
                          else missing.format("labelled-query source (PubMedQA, VQA-RAD, IU reports, covid CSV)"))
    planned["qa"] = (_qa_suite(assistant, questions, tenant, generate, progress) if questions
                     else missing.format("PubMedQA-format"))
    # The ablation trains a fusion module per design rule on the train part of the split: a smoke run's few
    # held-out questions have no train part.
    planned["ablate"] = ("not in a smoke run: it trains one fusion module per design rule; run `medrag eval ablate`"
                         if limit is not None
                         else _ablate_suite(assistant, questions, covid, inputs.reports, tenant, progress)
                         if questions else missing.format("PubMedQA-format"))
    # The read is always scored on the whole file: its held-out part is found by the file's hash in the model's
    # card, so a cut copy of the training file would be scored in-sample.
    planned["read"] = (_read_suite(assistant, inputs.covid_metadata[0], progress) if inputs.covid_metadata
                       else missing.format("image + note CSV (metadata.csv-format)"))
    planned["report"] = (_report_suite(assistant, inputs, limit, progress)
                         if inputs.reports and inputs.report_splits and inputs.chexpert_labeller
                         else missing.format("IU XML reports + R2Gen split + CheXpert labeller"))
    planned["vqa"] = (_vqa_suite(assistant, inputs.vqa_rad[0], tenant, limit or VQA_QUESTIONS, progress)
                      if inputs.vqa_rad else missing.format("VQA-RAD-format"))
    metadata = inputs.covid_metadata[0] if inputs.covid_metadata else None
    planned["latency"] = (_latency_suite(assistant, questions, metadata, tenant, limit or LATENCY_REQUESTS, progress)
                          if questions or metadata else missing.format("PubMedQA-format or image + note CSV"))
    return planned


def _tenant_objects(store: Store, tenant: str) -> dict[str, int]:
    """Objects per collection in ``tenant`` (0 where the collection or the tenant does not exist): what the suites
    searched, since objects from an earlier run or another command stay in the tenant and count too."""
    counts = {}
    for name in collections():
        try:
            present = tenant in store.tenants(name)
        except StoreError:  # the collection was never created on this server
            present = False
        counts[name] = store.count(name, tenant=tenant) if present else 0
    return counts


def run_all(assistant: Assistant, data_dir: Path, out_dir: Path, *, tenant: str = "eval", limit: int | None = None,
            generate: int = 20, only: tuple[str, ...] = (), progress: bool = True) -> dict[str, Any]:
    """Run every suite ``data_dir`` supports into ``out_dir/<suite>/`` and write ``out_dir/index.{json,md}``.

    With ``only``, the named suites are rerun and an index already in ``out_dir`` keeps the other suites' entries;
    the rerun is listed under ``reruns`` (suites, commit, date) so a reader sees which figures are newer."""
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
    searched = _tenant_objects(assistant.store, tenant)
    index = {"data_dir": str(data_dir), "limit": limit, "found": inputs.found(), "suites": results,
             "tenant": {"name": tenant, "objects": searched},
             "seconds": round(time.perf_counter() - started, 1),
             "provenance": provenance(assistant.config, inputs.paths(), seeds={"bootstrap": SEED},
                                      models=models)}
    previous = out_dir / "index.json"
    if only and previous.is_file():
        kept = json.loads(previous.read_text())
        index["suites"] = {**kept["suites"], **results}
        index["reruns"] = [*kept.get("reruns", []), {"suites": list(results), "seconds": index["seconds"],
                                                     "commit": index["provenance"]["medrag_commit"],
                                                     "date": time.strftime("%Y-%m-%d", time.gmtime())}]
        index["seconds"] = kept["seconds"]
    write_json_and_markdown(index, render_index(index), out_dir, "index")
    return index


def _defined(value: float | None) -> bool:
    """Whether a figure has a value: NaN in a fresh run, None once read back from strict JSON (a kept suite)."""
    return value is not None and not np.isnan(value)


def _figure(row: Mapping[str, Any]) -> str:
    interval = row.get("ci95")
    if not _defined(row["value"]):
        return "n/a"
    figure = f"{row['value']:.3f}" + (f" ± {row['se']:.3f}" if _defined(row.get("se")) else "")
    if interval is None or not all(_defined(bound) for bound in interval):
        return figure
    return f"{figure} [{interval[0]:.3f}, {interval[1]:.3f}]"


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
    for rerun in index.get("reruns", []):
        lines += [f"Rerun on {rerun['date']} at commit {rerun['commit']} ({rerun['seconds']} s): "
                  f"{', '.join(rerun['suites'])}.", ""]
    if "tenant" in index:
        objects = ", ".join(f"{count} {name}" for name, count in index["tenant"]["objects"].items())
        lines += [f"Tenant `{index['tenant']['name']}` searched, at the end of the run: {objects}.", ""]
    lines += ["## Inputs", "", "| input | sha256 |", "|---|---|",
              *(f"| `{path}` | `{digest[:16]}` |" for path, digest in index["provenance"]["inputs_sha256"].items()),
              "", "Machine: " + ", ".join(f"{key} {value}" for key, value in index["provenance"]["machine"].items())
              + f"; commit {index['provenance']['medrag_commit']}."]
    return "\n".join(lines) + "\n"
