"""Retrieval metrics on real data in a real Weaviate: PubMedQA questions and covid cases.

- PubMedQA (any file in its JSON format, keyed by PMID): each question should find its own abstract.
  BM25 only, dense only, hybrid over an alpha sweep (all on PubMed articles), then the retriever
  over every source without routing (equal weights, best alpha) and with a router's searches.
- covid cases (any ``metadata.csv``-format file): a case's de-identified clinical note searches the
  radiology reports, and its image searches the other cases by the joint vector. The finding class
  defines relevance (see :func:`report_is_relevant` and :func:`evaluate_covid`); base-rate baselines
  are reported beside every precision, because a few classes dominate both collections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluation.ir import compare_rankings, significance_lines
from evaluation.joint import joint_split
from medrag.config import Config
from medrag.datasets.covid import INFECTION_MESH, CovidCase, covid_cases, report_is_relevant
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import Split
from medrag.encode.joint import JointEncoder
from medrag.encode.text import TextEncoder
from medrag.imaging.radiograph import load_image_file
from medrag.ingest.pipeline import Ingestor, IngestSummary
from medrag.metrics import KS, id_metrics, mean_metrics, rank_metrics
from medrag.reporting import pyplot, save_figure, write_json_and_markdown
from medrag.retrieve.retriever import Retriever, SourceSearch
from medrag.sources import collections
from medrag.store import ARTICLES, CASES, REPORTS, Hit, Store
from medrag.vectors import JOINT_VECTOR, TEXT_VECTOR

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
IMAGE_BATCH = 32

PIPELINE = "routed + rerank"
RouteFn = Callable[[str, np.ndarray], Sequence[SourceSearch]]
"""A question and its text vector -> the searches to run
(e.g. ``lambda q, v: router.route(Query(question=q), embedding=v).searches``)."""
Ranked = list[tuple[str, str]]
"""A ranking as (collection, source id), best first."""


# --- PubMedQA --------------------------------------------------------------------------------------------------------

def _article_searches(store: Store, tenant: str, alphas: Sequence[float],
                      k: int) -> dict[str, Callable[[str, np.ndarray], Ranked]]:
    """The single-collection baselines on PubMed articles: BM25, dense, hybrid per alpha."""
    def ranked(hits: Iterable[Hit]) -> Ranked:
        return [(hit.collection, hit.source_id) for hit in hits]

    searches = {
        "bm25": lambda q, v: ranked(store.bm25(ARTICLES, q, limit=k, tenant=tenant)),
        "dense": lambda q, v: ranked(store.near_vector(ARTICLES, v, target_vector=TEXT_VECTOR, limit=k, tenant=tenant)),
    }
    for alpha in alphas:
        searches[hybrid_name(alpha)] = lambda q, v, a=alpha: ranked(
            store.hybrid(ARTICLES, q, v, alpha=a, target_vector=TEXT_VECTOR, limit=k, tenant=tenant))
    return searches


def hybrid_name(alpha: float) -> str:
    return f"hybrid alpha={alpha:.2f}"


def _run_methods(questions: Mapping[str, str], vectors: np.ndarray,
                 methods: Mapping[str, Callable[[str, np.ndarray], Ranked]], desc: str, progress: bool,
                 rankings: dict[str, dict[str, Ranked]]) -> dict[str, dict[str, float]]:
    """Every method on every question; relevance is the question's own PMID among the articles. Each method's
    rankings are kept in ``rankings[method][pmid]`` for the paired comparison."""
    per_method: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    seconds: Counter[str] = Counter()
    items = list(zip(questions.items(), vectors, strict=True))
    for (pmid, question), vector in tqdm(items, desc=desc, unit="q", disable=not progress):
        for name, search in methods.items():
            started = time.perf_counter()
            ranked = search(question, vector)
            seconds[name] += time.perf_counter() - started
            per_method[name].append(id_metrics(ranked, {(ARTICLES, pmid)}))
            rankings.setdefault(name, {})[pmid] = ranked
    return {name: {**mean_metrics(rows), "latency_ms": 1000 * seconds[name] / max(len(rows), 1)}
            for name, rows in per_method.items()}


def _retriever_search(retriever: Retriever, tenant: str, k: int,
                      sources: RouteFn) -> Callable[[str, np.ndarray], Ranked]:
    """A method that runs the full retriever (weighted RRF over sources) with the given searches."""
    def search(question: str, vector: np.ndarray) -> Ranked:
        rankings = retriever.rankings(question, sources(question, vector), text_vector=vector, tenant=tenant)
        return [(item.collection, item.source_id) for item in retriever.merge(question, rankings, k)]
    return search


def evaluate_pubmedqa(retriever: Retriever, questions_json: Path, *, tenant: str,
                      alphas: Sequence[float] = ALPHAS, router: RouteFn | None = None,
                      pipeline: Callable[[str, np.ndarray], Ranked] | None = None, k: int = 10,
                      progress: bool = True) -> dict[str, Any]:
    """Whether each question finds its own abstract (PMID), per method; the articles must be ingested in ``tenant``.

    ``pipeline``: the product's whole search (routed, then reranked by the configured reranker, e.g.
    ``Assistant.search``), scored as "routed + rerank" beside the methods it is built from."""
    store = retriever.store
    questions = {record.pmid: record.question for record in read_pubmedqa(questions_json)}
    vectors = retriever.text_encoder.encode(list(questions.values()), progress=progress)
    stored = store.stored_hashes(ARTICLES, list(questions), tenant=tenant)
    rankings: dict[str, dict[str, Ranked]] = {}
    methods = _run_methods(questions, vectors, _article_searches(store, tenant, alphas, k), "pubmedqa articles",
                           progress, rankings)
    sweep = [{"alpha": alpha, **methods[hybrid_name(alpha)]} for alpha in alphas]
    best = max(sweep, key=lambda row: (row["recall@5"], row["mrr"]))["alpha"]
    unrouted = [SourceSearch(collection, weight=1.0, alpha=best) for collection in collections()]
    fused = {"unrouted": _retriever_search(retriever, tenant, k, lambda _question, _vector: unrouted)}
    routes: Counter[str] = Counter()
    if router is not None:
        def routed(question: str, vector: np.ndarray) -> Sequence[SourceSearch]:
            searches = router(question, vector)
            routes[" + ".join(search.collection for search in searches)] += 1
            return searches
        fused["routed"] = _retriever_search(retriever, tenant, k, routed)
    if pipeline is not None:
        fused[PIPELINE] = pipeline
    for name, search in fused.items():
        # One method at a time on an emptied result cache: the routed run must not reuse unrouted results
        # (that would change its latency, never its ranking).
        for collection in collections():
            retriever.cache.invalidate(collection)
        methods |= _run_methods(questions, vectors, {name: search}, f"pubmedqa {name}", progress, rankings)
    return {
        "file": str(questions_json), "questions": len(questions), "k": k,
        "questions_without_stored_abstract": len(questions) - len(stored),
        "collections": {name: store.count(name, tenant=tenant) for name in collections()},
        "methods": methods, "alpha_sweep": sweep, "best_alpha": best,
        "unrouted_sources": [dataclasses.asdict(search) for search in unrouted],
        "routes": dict(routes.most_common()),
        "comparison": compare_rankings(rankings, {pmid: {(ARTICLES, pmid)} for pmid in questions}),
        "recall_curve": recall_curve(rankings, questions, k),
    }


def recall_curve(rankings: Mapping[str, Mapping[str, Ranked]], questions: Collection[str],
                 k: int) -> dict[str, list[float]]:
    """recall@1..k of each method: the share of questions whose own abstract is in the top j (one relevant item
    per question, so recall@j is hit@j)."""
    curve = {}
    for name, by_question in rankings.items():
        ranks = [next((rank for rank, item in enumerate(by_question.get(pmid, ()), 1) if item == (ARTICLES, pmid)),
                      None) for pmid in questions]
        curve[name] = [float(np.mean([rank is not None and rank <= j for rank in ranks])) for j in range(1, k + 1)]
    return curve


# --- covid cases -----------------------------------------------------------------------------------------------------

def _report_mesh(store: Store, tenant: str) -> list[list[str]]:
    """The MeSH terms of every stored report (for base rates)."""
    return [list(item.get("mesh") or []) for item in store.properties(REPORTS, ["mesh"], tenant=tenant)]


def _with_baseline(per_query: list[dict[str, float]], baselines: list[float], classes: list[str]) -> dict[str, Any]:
    """Mean metrics and the base-rate precision of a random ranking, overall and per finding class."""
    by_class = {name: mean_metrics([m for m, c in zip(per_query, classes, strict=True) if c == name])
                | {"random_precision": float(np.mean([b for b, c in zip(baselines, classes, strict=True)
                                                      if c == name]))}
                for name in sorted(set(classes))}
    return {**mean_metrics(per_query), "random_precision": float(np.mean(baselines)) if baselines else 0.0,
            "by_class": by_class}


def note_to_reports(retriever: Retriever, cases: Sequence[CovidCase], *, tenant: str, alpha: float = 0.5,
                    k: int = 10, progress: bool = True) -> dict[str, Any]:
    """Hybrid search of the reports with each distinct (note, finding class); relevance by :func:`report_is_relevant`.

    The note alone is the query: the case's "Finding: ..." summary never is, so the label cannot leak.
    ``random_precision`` is the share of stored reports relevant to the query's class.
    """
    queries = list(dict.fromkeys((case.note, case.finding_class) for case in cases if case.note and case.finding_class))
    meshes = _report_mesh(retriever.store, tenant)
    totals = {name: sum(report_is_relevant(name, mesh) for mesh in meshes) for name in {c for _, c in queries}}
    vectors = retriever.text_encoder.encode([note for note, _ in queries], progress=progress)
    per_query, baselines = [], []
    items = list(zip(queries, vectors, strict=True))
    for (note, name), vector in tqdm(items, desc="covid note->reports", unit="q", disable=not progress):
        hits = retriever.store.hybrid(REPORTS, note, vector, alpha=alpha, target_vector=TEXT_VECTOR, limit=k,
                                      tenant=tenant)
        per_query.append(rank_metrics([report_is_relevant(name, hit.properties.get("mesh") or []) for hit in hits],
                                      totals[name]))
        baselines.append(totals[name] / len(meshes) if meshes else 0.0)
    return {"alpha": alpha, "reports": len(meshes), "relevant_reports": totals,
            **_with_baseline(per_query, baselines, [name for _, name in queries])}


def _image_vectors(encoder: JointEncoder, cases: Sequence[CovidCase], progress: bool) -> np.ndarray:
    """Joint image vectors, read and encoded a batch at a time so memory stays flat."""
    batches = [cases[i:i + IMAGE_BATCH] for i in range(0, len(cases), IMAGE_BATCH)]
    chunks = [encoder.encode_images([load_image_file(case.image_path) for case in batch])
              for batch in tqdm(batches, desc="covid images", unit="batch", disable=not progress)]
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)


def image_to_cases(retriever: Retriever, cases: Sequence[CovidCase], *, tenant: str, k: int = 10,
                   held_out_groups: Collection[str] = (), progress: bool = True) -> dict[str, Any]:
    """Joint-vector search of the cases with each labelled case's image.

    Candidates are the labelled cases of other patient groups (the query itself, its patient's other
    images and unlabelled cases are removed from the ranking before cutting at k); a candidate is
    relevant when its finding class equals the query's. ``random_precision`` is the share of relevant
    candidates; ``majority_precision`` that of a ranking filled with the most common class.
    ``held_out`` repeats the means over the queries from ``held_out_groups``.
    """
    if retriever.joint_encoder is None:
        raise ValueError("image -> cases needs a joint encoder on the retriever")
    labelled = [case for case in cases if case.finding_class and case.image_path.is_file()]
    by_id = {case.source_id: case for case in labelled}
    stored = retriever.store.count(CASES, tenant=tenant)
    vectors = _image_vectors(retriever.joint_encoder, labelled, progress)
    majority = Counter(case.finding_class for case in labelled).most_common(1)[0][0] if labelled else None
    rows: list[tuple[CovidCase, dict[str, float], float]] = []
    for query, vector in tqdm(list(zip(labelled, vectors, strict=True)), desc="covid image->cases", unit="q",
                              disable=not progress):
        eligible = [case for case in labelled if case.group != query.group]
        relevant = sum(case.finding_class == query.finding_class for case in eligible)
        # Deep enough that k eligible cases remain even if every ineligible case ranks first.
        hits = retriever.store.near_vector(CASES, vector, target_vector=JOINT_VECTOR, tenant=tenant,
                                           limit=k + max(stored - len(eligible), 0))
        ranked = [by_id[hit.source_id] for hit in hits
                  if hit.source_id in by_id and by_id[hit.source_id].group != query.group][:k]
        metrics = rank_metrics([case.finding_class == query.finding_class for case in ranked], relevant)
        rows.append((query, metrics, relevant / len(eligible) if eligible else 0.0))

    def summary(chosen: list[tuple[CovidCase, dict[str, float], float]]) -> dict[str, Any]:
        classes = [query.finding_class or "" for query, _, _ in chosen]
        return {"majority_precision": float(np.mean([name == majority for name in classes])) if classes else 0.0,
                **_with_baseline([m for _, m, _ in chosen], [b for _, _, b in chosen], classes)}

    held_out = [row for row in rows if row[0].group in held_out_groups]
    return {"cases": len(labelled), "stored_cases": stored, "majority_class": majority, **summary(rows),
            "held_out": summary(held_out)}


def evaluate_covid(retriever: Retriever, metadata_csv: Path, *, tenant: str, alphas: Sequence[float] = ALPHAS,
                   k: int = 10, split: Split | None = None, progress: bool = True) -> dict[str, Any]:
    """Note -> reports (over the alpha sweep; the best by P@5 is reported) and image -> cases on a
    metadata.csv-format file whose cases are ingested in ``tenant``.

    Image -> cases also reports ``held_out``: the query patients in the test part of ``split``, the split
    named in the joint model's card, which that model never trained on; the figure over all cases is
    optimistic for it. Without a split (a model medrag did not train) ``held_out`` has no queries.
    """
    cases = covid_cases(metadata_csv)
    held_out = {case.group for case in cases if split is not None and split.part(case.group) == "test"}
    sweep = [note_to_reports(retriever, cases, tenant=tenant, alpha=alpha, k=k, progress=progress)
             for alpha in alphas]
    return {
        "file": str(metadata_csv), "cases": len(cases), "k": k,
        "note_to_reports": max(sweep, key=lambda row: (row["precision@5"], row["mrr"])),
        "note_alpha_sweep": [{key: row[key] for key in ("alpha", "hit@1", "hit@5", "mrr", "precision@5")}
                             for row in sweep],
        "image_to_cases": image_to_cases(retriever, cases, tenant=tenant, k=k, held_out_groups=held_out,
                                         progress=progress),
        "held_out_split": split.name if split is not None else None,
    }


# --- the whole run ---------------------------------------------------------------------------------------------------

def _ingest_counts(summary: IngestSummary) -> dict[str, int]:
    return {"read": summary.read, "written": summary.written, "unchanged": summary.unchanged,
            "skipped": len(summary.skipped), "failed": len(summary.failed)}


def _with_file(paths: Sequence[Path], extra: Path | None) -> list[Path]:
    """``paths`` plus ``extra`` unless it is None or one of them already holds it (so no file is read twice)."""
    inside = extra is None or any(Path(extra).resolve().is_relative_to(Path(path).resolve()) for path in paths)
    return list(paths) if inside else [*paths, extra]


def ingest_knowledge(config: Config, store: Store, tenant: str, questions_json: Path | None,
                     metadata_csv: Path | None,
                     *, text_encoder: TextEncoder, joint_encoder: JointEncoder | None,
                     pubmed_paths: Sequence[Path] | None = None, report_paths: Sequence[Path] | None = None,
                     progress: bool = True) -> dict[str, IngestSummary]:
    """Ingest what the evaluations search into ``tenant`` (idempotent: a re-run only checks).

    ``pubmed_paths`` (default: every PubMed source in ``config.data_dir/pubmed``) and the questions file
    itself (when given); with ``metadata_csv`` also ``report_paths`` (default: the IU reports) and its cases.
    """
    store.ensure_schema()
    store.create_tenant(tenant)
    ingestor = Ingestor(config, store, text_encoder=text_encoder, joint_encoder=joint_encoder,
                        joint=joint_encoder is not None, tenant=tenant, progress=progress)
    ingested = {ARTICLES: ingestor.pubmed(_with_file(pubmed_paths or [config.data_dir / "pubmed"], questions_json))}
    if metadata_csv is not None:
        default_reports = [config.data_dir / "reports" / "iu-openi" / "NLMCXR_reports.tgz"]
        ingested[REPORTS] = ingestor.reports(report_paths or default_reports)
        ingested[CASES] = ingestor.images([metadata_csv])
    return ingested


def run_retrieval_eval(
    config: Config,
    questions_json: Path,
    metadata_csv: Path | None = None,
    *,
    tenant: str = "eval",
    out_dir: Path | None = None,
    router: RouteFn | None = None,
    pipeline: Callable[[str, np.ndarray], Ranked] | None = None,
    alphas: Sequence[float] = ALPHAS,
    k: int = 10,
    pubmed_paths: Sequence[Path] | None = None,
    report_paths: Sequence[Path] | None = None,
    store: Store | None = None,
    text_encoder: TextEncoder | None = None,
    joint_encoder: JointEncoder | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Ingest the knowledge into ``tenant`` (``ingest_knowledge``) and run the PubMedQA (and, with
    ``metadata_csv``, covid) evaluations. Without ``metadata_csv`` the unrouted search has only articles to
    search. ``store``: an open store to use instead of opening one.
    Writes ``retrieval.json``, ``retrieval.md`` and ``retrieval_alpha.png`` to ``out_dir`` when given.
    """
    started = time.perf_counter()
    with contextlib.nullcontext(store) if store is not None else Store.open(config) as opened:
        text_encoder = text_encoder or TextEncoder(config.text_model)
        if metadata_csv is not None and joint_encoder is None:
            joint_encoder = JointEncoder.load(config.joint_model)
        ingested = ingest_knowledge(config, opened, tenant, questions_json, metadata_csv, text_encoder=text_encoder,
                                    joint_encoder=joint_encoder, pubmed_paths=pubmed_paths,
                                    report_paths=report_paths, progress=progress)
        retriever = Retriever(opened, text_encoder, joint_encoder)
        report: dict[str, Any] = {
            "tenant": tenant,
            "ingested": {name: _ingest_counts(summary) for name, summary in ingested.items()},
            "pubmedqa": evaluate_pubmedqa(retriever, questions_json, tenant=tenant, alphas=alphas, router=router,
                                          pipeline=pipeline, k=k, progress=progress),
        }
        if metadata_csv is not None:
            report["covid"] = evaluate_covid(retriever, metadata_csv, tenant=tenant, alphas=alphas, k=k,
                                             split=joint_split(config), progress=progress)
    report["seconds"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report


# --- report files ----------------------------------------------------------------------------------------------------

def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(f"{cell:.3f}" if isinstance(cell, float) else str(cell) for cell in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    return [_row(header), _row("---" for _ in header), *map(_row, rows)]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown tables: PubMedQA methods, then the covid tasks with their baselines."""
    qa = report["pubmedqa"]
    labels = {"unrouted": f"unrouted (all sources, equal weight, alpha={qa['best_alpha']:.2f})",
              "routed": "routed (router's sources and weights)",
              PIPELINE: "routed + rerank (the product's search: router, retriever, configured reranker)"}
    lines = [
        "# Retrieval evaluation", "",
        f"## PubMedQA: own abstract among the top {qa['k']}", "",
        f"{qa['questions']} questions from `{qa['file']}` ({qa['questions_without_stored_abstract']} without a stored "
        f"abstract); tenant `{report['tenant']}` holding " + ", ".join(f"{n} {c}" for c, n in qa["collections"].items())
        + ".", "",
        *_table(["method", "recall@1", "recall@5", "recall@10", "MRR", "nDCG@10", "ms/query"],
                [[labels.get(name, name), m["recall@1"], m["recall@5"], m["recall@10"], m["mrr"], m["ndcg@10"],
                  f"{m['latency_ms']:.1f}"] for name, m in qa["methods"].items()]),
        "", f"Best hybrid alpha by recall@5: {qa['best_alpha']:.2f}. Unrouted ties in reciprocal-rank fusion "
        "(equal ranks in different sources) go to the source listed first, PubMed articles.",
    ]
    if "comparison" in qa:
        comparison = qa["comparison"]
        lines += ["", f"### MRR with 95% bootstrap intervals and paired p-values ({comparison['test']}, "
                  f"{comparison['permutations']} permutations, {comparison['queries']} queries)", "",
                  *significance_lines(comparison)]
    if qa["routes"]:
        lines += ["", "Routes taken: " + "; ".join(f"{route or 'none'}: {n}" for route, n in qa["routes"].items())
                  + "."]
    if "covid" in report:
        lines += ["", *_covid_markdown(report["covid"])]
    lines += ["", f"Total time {report['seconds']} s, ingestion included."]
    return "\n".join(lines) + "\n"


def _covid_markdown(covid: Mapping[str, Any]) -> list[str]:
    notes, images = covid["note_to_reports"], covid["image_to_cases"]
    tasks = {"note -> reports": notes, "image -> cases": images,
             "image -> cases, held-out query patients": images["held_out"]}
    header = ["task", "queries", "hit@1", "hit@5", "hit@10", "MRR", "P@1", "P@5", "P@10", "random P", "majority P"]
    rows = [[name, m["queries"], *(m.get(key, "-") for key in ("hit@1", "hit@5", "hit@10", "mrr", "precision@1",
                                                               "precision@5", "precision@10", "random_precision",
                                                               "majority_precision"))]
            for name, m in tasks.items() if m["queries"]]
    by_class = [[task, name, m["queries"], m["precision@5"], m["mrr"], m["random_precision"]]
                for task, result in tasks.items() for name, m in result.get("by_class", {}).items()]
    return [
        f"## Covid cases: `{covid['file']}` ({covid['cases']} images), top {covid['k']}", "",
        *_table(header, rows), "",
        f"Note -> reports: each distinct de-identified clinical note (never the finding) searches the "
        f"{notes['reports']} reports (hybrid, alpha={notes['alpha']:.2f}). A report is relevant to COVID-19 and "
        "other pneumonia when a MeSH head is one of " + ", ".join(sorted(INFECTION_MESH))
        + "; to no finding when its only MeSH head is normal. Random P: the share of relevant reports. "
        "Alpha sweep (P@5): " + ", ".join(f"{row['alpha']:.2f}: {row['precision@5']:.3f}"
                                          for row in covid.get("note_alpha_sweep", [])) + ".", "",
        f"Image -> cases: each labelled image searches the {images['stored_cases']} stored cases by the joint vector; "
        "the query, its patient's other images and unlabelled cases are removed; a case of the same finding class "
        f"is relevant. Random P: the share of relevant candidates; majority P: always {images['majority_class']}. "
        f"Held-out: query patients in the test part of split {covid.get('held_out_split')}, named in the joint "
        "model's card: patients it never trained on.", "",
        *_table(["task", "finding class", "queries", "P@5", "MRR", "random P"], by_class),
    ]


def plot_alpha_sweep(report: Mapping[str, Any], path: Path) -> Path:
    """recall@1/5/10 and MRR of hybrid search against alpha (0 = BM25 only, 1 = dense only)."""
    qa = report["pubmedqa"]
    alphas = [row["alpha"] for row in qa["alpha_sweep"]]
    figure, axes = pyplot().subplots(figsize=(6, 4))
    lowest = 1.0
    for name in (*(f"recall@{k}" for k in KS), "mrr"):
        values = [row[name] for row in qa["alpha_sweep"]]
        lowest = min(lowest, *values)
        axes.plot(alphas, values, marker="o", label=name)
    # Zoomed to the data: on easy sets every curve sits near 1 and a 0..1 axis would hide the differences.
    axes.set(xlabel="alpha (0 = BM25, 1 = dense)", ylabel="score", ylim=(max(0.0, lowest - 0.05), 1.005),
             title=f"hybrid search on {Path(qa['file']).name} ({qa['questions']} questions)")
    axes.axvline(qa["best_alpha"], color="grey", linestyle=":", label="best alpha (recall@5)")
    axes.legend(loc="lower left")
    return save_figure(figure, path)


def plot_recall_curves(report: Mapping[str, Any], path: Path) -> Path:
    """recall@k against k for BM25, dense, the best hybrid and the fused methods (the other alphas are in the
    alpha plot)."""
    qa = report["pubmedqa"]
    shown = ["bm25", "dense", hybrid_name(qa["best_alpha"]), "unrouted", "routed", PIPELINE]
    figure, axes = pyplot().subplots(figsize=(6, 4))
    for name in shown:
        if name in qa["recall_curve"]:
            values = qa["recall_curve"][name]
            axes.plot(range(1, len(values) + 1), values, marker=".", label=name)
    axes.set(xlabel="k", ylabel="recall@k (own abstract in the top k)",
             title=f"PubMedQA own-abstract retrieval ({qa['questions']} questions)")
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(figure, path)


def write_report(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """``retrieval.json``, ``retrieval.md``, ``retrieval_alpha.png`` and ``retrieval_recall_at_k.png`` in
    ``out_dir``."""
    written = [*write_json_and_markdown(report, render_markdown(report), out_dir, "retrieval"),
               plot_alpha_sweep(report, out_dir / "retrieval_alpha.png")]
    if "recall_curve" in report["pubmedqa"]:
        written.append(plot_recall_curves(report, out_dir / "retrieval_recall_at_k.png"))
    return written
