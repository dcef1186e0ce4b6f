"""medrag: multimodal retrieval-augmented assistant for chest radiography (command line)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medrag.config import Config, ConfigError, load_config
from medrag.store.errors import StoreError


def _doctor(args: argparse.Namespace) -> int:
    from medrag.doctor import report

    rows = report(args.config)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 1 if any("MISSING" in value or "ERROR" in value for _, value in rows) else 0


def _demo(args: argparse.Namespace) -> int:
    from medrag.demo import run_demo

    run_demo(args.config)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    """Exit 1 on a broken chain, naming each break; truncation of the newest lines needs an anchor (``head``)."""
    from medrag.audit import verify

    result = verify(args.path or args.config.audit_log)
    for found in result.breaks:
        print(f"medrag: audit trail BROKEN: {found}", file=sys.stderr)
    if not result.ok:
        return 1
    print(f"audit trail OK: {result.lines} lines in {len(result.files)} file(s), head {result.head}; compare the "
          f"head with your last anchor (`medrag audit head`) to rule out removed newest lines")
    return 0


def _audit_head(args: argparse.Namespace) -> int:
    from medrag.audit import AuditError, AuditLog

    path = args.path or args.config.audit_log
    if not path.exists() and not Path(f"{path}.1").exists():
        raise FileNotFoundError(f"no audit log at {path}; give the log's path or set [audit] log / MEDRAG_AUDIT_LOG")
    try:
        print(AuditLog(path).head())
    except AuditError as error:
        print(f"medrag: error: {error}", file=sys.stderr)
        return 2
    return 0


def _tenant_add(args: argparse.Namespace) -> int:
    """Provision a hospital with the root key and write its key file; the key itself is never printed."""
    from medrag.store import Store
    from medrag.store.tenants import key_path

    path = args.out or key_path(args.config.home, args.name)
    if path.exists() and not args.rotate:
        print(f"medrag: error: {path} exists: hospital {args.name!r} has a key already; pass --rotate for a new one "
              "(the old key stops working at once) or --out for another file", file=sys.stderr)
        return 2
    with Store.open(args.config) as store:
        key = store.provision_tenant(args.name, write=not args.read_only, rotate=args.rotate)
    key.save(path)
    access = "search only" if args.read_only else "search and ingest"
    server = (f"MEDRAG_WEAVIATE_URL={args.config.weaviate.url}" if args.config.weaviate.url
              else "MEDRAG_WEAVIATE_RBAC=true")  # embedded: the hospital's process starts the server itself
    print(f"hospital {key.tenant}: database user {key.user}, role {key.role} ({access}, tenant {key.tenant} only)")
    print(f"key file: {path} (mode 0600; give it to that hospital only)")
    print(f"connect with {server} MEDRAG_WEAVIATE_KEY_FILE={path} MEDRAG_WEAVIATE_TENANT={key.tenant}")
    return 0


def _server_install(args: argparse.Namespace) -> int:
    from medrag.store.binary import install_binary

    binary = install_binary(args.config)
    print(f"weaviate-server {binary.version}: {binary.path} ({binary.origin})")
    return 0


def _cluster_run(args: argparse.Namespace) -> int:
    """Run ``--nodes`` Weaviate nodes on loopback as one cluster in the foreground (docs/cluster.md)."""
    from medrag.store.binary import install_binary
    from medrag.store.cluster import LocalCluster, cluster_dir

    binary = install_binary(args.config)
    cluster = LocalCluster(binary.path, cluster_dir(args.config), size=args.nodes,
                           startup_timeout=args.config.weaviate.startup_timeout).start()
    status = cluster.status()
    for node in cluster.nodes:
        print(f"{node.name}: {node.url} (gRPC port {node.grpc_port}), {status['health'].get(node.name)}, "
              f"data in {node.data_dir}")
    print(f"Raft leader: {status['leader']}; connect with MEDRAG_WEAVIATE_URL={cluster.url} "
          f"MEDRAG_WEAVIATE_GRPC_PORT={cluster.nodes[0].grpc_port} MEDRAG_WEAVIATE_REPLICATION_FACTOR={args.nodes} "
          f"MEDRAG_WEAVIATE_API_KEY=<the key in {cluster.root}/medrag-api-key>; Ctrl-C stops it")
    try:
        # Blocked, the signals wait for sigwait; unblocked, SIGTERM would end Python at once and orphan the nodes.
        # Blocked only now: the nodes, started before, must keep SIGTERM for their own clean shutdown.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
    return 0


def _server_run(args: argparse.Namespace) -> int:
    """Run the embedded server in the foreground, for other processes (the UI, notebooks) to share."""
    from medrag.store.connection import start_embedded

    if args.nodes != 1:
        return _cluster_run(args)
    server = start_embedded(args.config)
    print(f"Weaviate {args.config.weaviate.version} on {server.url} (gRPC port {server.grpc_port}), "
          f"data in {server.data_dir}, log {server.log_path}")
    print(f"connect with MEDRAG_WEAVIATE_URL={server.url} MEDRAG_WEAVIATE_GRPC_PORT={server.grpc_port} "
          f"MEDRAG_WEAVIATE_API_KEY=<the key in {server.data_dir}/medrag-api-key>; Ctrl-C stops it")
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # as in _cluster_run
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
    return 0


def streamlit_command(config: Config, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The command that serves the clinicians' app: bound to ``address`` (loopback unless a deployment puts a
    proxy with TLS and sign-in in front), XSRF protection on, the upload cap of ``[ui] max_upload_mb``, no usage
    statistics sent anywhere, no file watcher."""
    spec = importlib.util.find_spec("ui")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the ui package is not installed; run `make setup`")
    app = Path(spec.origin).parent / "app.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", address,
            "--server.port", str(port), "--server.headless", "true", "--server.enableXsrfProtection", "true",
            "--server.maxUploadSize", str(config.ui.max_upload_mb), "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
            "--logger.level", "warning", "--client.showErrorDetails", "type"]


def _ui(args: argparse.Namespace) -> int:
    command = streamlit_command(args.config, args.port, args.address)
    environment = dict(os.environ)
    if args.config_path:
        environment["MEDRAG_CONFIG"] = str(Path(args.config_path).resolve())
    print(f"medrag app on http://{args.address}:{args.port} (Ctrl-C stops it)")
    try:
        return subprocess.call(command, env=environment)
    except KeyboardInterrupt:
        return 0


def _ingest(args: argparse.Namespace) -> int:
    from medrag.ingest.pipeline import Ingestor
    from medrag.store import Store

    with Store.open(args.config) as store:
        ingestor = Ingestor(args.config, store, tenant=args.tenant, progress=not args.no_progress,
                            allow_burned_in=getattr(args, "allow_burned_in", False))
        if args.source == "pubmed":
            summary = ingestor.pubmed(args.paths, mapping=args.mapping)
        elif args.source == "reports":
            summary = ingestor.reports(args.paths, mapping=args.mapping)
        else:
            summary = ingestor.images(args.paths, notes=args.notes, mapping=args.mapping)
    print(summary.render())
    if args.report:
        args.report.write_text(json.dumps(summary.to_dict(), indent=2))
        print(f"full report: {args.report}")
    return 0 if summary.ok else 1


def _train_joint(args: argparse.Namespace) -> int:
    from medrag.encode.joint import DEFAULT_CHECKPOINT
    from training.joint import TrainOptions, ablate, train_joint

    options = TrainOptions(epochs=args.epochs, seed=args.seed, label_smoothing=args.label_smoothing,
                           ib_beta=args.ib_beta, grad_noise=args.grad_noise, text_adaptation=args.text_adaptation)
    data_dir = args.data_dir or args.config.data_dir
    out = args.out or DEFAULT_CHECKPOINT
    if args.ablate:
        variants = {"plain": {}, "label_smoothing=0.1": {"label_smoothing": 0.1},
                    "ib_beta=1e-3": {"ib_beta": 1e-3}, "grad_noise=0.01": {"grad_noise": 0.01},
                    "text_adaptation=0.5": {"text_adaptation": 0.5}}
        table = ablate(args.config, data_dir, variants, base=options)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ablation.json").write_text(json.dumps(table, indent=2))
        for name, row in table.items():
            print(f"{name:22s} validation recall@5 {row['mean']:.3f} +- {row['std']:.3f}")
        return 0
    card = train_joint(args.config, data_dir, out, options)
    print(json.dumps(card["test_metrics"], indent=2))
    print(f"checkpoint, card and loss curve in {out} ({card['seconds']} s)")
    return 0


def _train_read(args: argparse.Namespace) -> int:
    from medrag.read.reader import DEFAULT_MODEL, INPUTS
    from training.read import train_read

    out = args.out or DEFAULT_MODEL
    metadata = args.metadata or (args.data_dir or args.config.data_dir) / "cxr" / "covid" / "metadata.csv"
    card = train_read(args.config, metadata, out, progress=not args.no_progress)
    for inputs in INPUTS:
        row = card["test"][inputs]
        low, high = row["auc_ci95"]
        print(f"{inputs:13s} held-out AUC {row['auc']:.3f} [{low:.3f}, {high:.3f}] on {row['images']} images of "
              f"{row['groups']} patients; Brier {row['brier']:.3f} (prevalence {row['brier_prevalence']:.3f})")
    print(f"models, card, ROC and calibration curves in {out} ({card['seconds']} s)")
    return 0


def _eval_read(args: argparse.Namespace) -> int:
    from evaluation.read import evaluate_read, render_markdown

    report = evaluate_read(args.config, args.metadata, out=args.out, progress=not args.no_progress)
    print(render_markdown(report))
    if args.out:
        print(f"read.json, read.md and the ROC curves in {args.out}")
    return 0


def _eval_attention(args: argparse.Namespace) -> int:
    from evaluation.attention import ReferenceMasks, evaluate_lung_attention, render_markdown, write_report
    from evaluation.joint import joint_split
    from evaluation.retrieval import ingest_knowledge
    from medrag.assistant import Assistant

    masks = ReferenceMasks(args.lung_masks) if args.lung_masks else None
    with Assistant.local(args.config) as assistant:
        ingest_knowledge(args.config, assistant.store, args.tenant, None, args.metadata,
                         text_encoder=assistant.text_encoder, joint_encoder=assistant.joint_encoder,
                         progress=not args.no_progress)
        report = evaluate_lung_attention(assistant, args.metadata, tenant=args.tenant, split=joint_split(args.config),
                                         k=args.k, reference_masks=masks, progress=not args.no_progress)
    print(render_markdown(report))
    if args.out:
        write_report(report, args.out)
        print(f"attention.json, attention.md and attention_examples.png in {args.out}")
    return 0


def _eval_joint(args: argparse.Namespace) -> int:
    from evaluation.joint import evaluate_joint_model

    report = evaluate_joint_model(args.config, args.metadata)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


def _ask(args: argparse.Namespace) -> int:
    from medrag.assistant import Assistant
    from medrag.render import render_answer, render_search
    from medrag.store import Filters
    from medrag.types import Hints

    if not (args.question or args.note or args.image):
        print("medrag: error: give --question, --note or --image", file=sys.stderr)
        return 2
    filters = Filters(year_from=args.year_from, year_to=args.year_to) if args.year_from or args.year_to else None
    hints = Hints(sources=tuple(args.source or ()), intent=args.intent)
    stream = args.stream and not args.json

    def show(piece: str) -> None:
        print(piece, end="", flush=True)

    with Assistant.local(args.config) as assistant:
        try:
            if args.evidence_only:
                result = assistant.search(args.question, args.note, args.image, filters=filters,
                                          tenant=args.tenant, k=args.k, hints=hints)
            else:
                result = assistant.ask(args.question, args.note, args.image, filters=filters, tenant=args.tenant,
                                       k=args.k, hints=hints, mode=args.mode, on_token=show if stream else None)
        except ValueError as error:  # unreadable image, not a radiograph, unknown tenant, empty query, bad mode
            print(f"medrag: error: {error}", file=sys.stderr)
            return 2
    if stream and not args.evidence_only and result.tokens:
        print("\n(grounding check applied below)")
    render = render_search if args.evidence_only else render_answer
    print(json.dumps(result.to_dict(), indent=2) if args.json else render(result, explain=args.explain))
    return 0


def _train_decision(args: argparse.Namespace) -> int:
    from evaluation.retrieval import ingest_knowledge
    from medrag.assistant import Assistant
    from medrag.generate.decision import DEFAULT_MODEL
    from training.decision import train_decision

    questions = args.questions or [(args.data_dir or args.config.data_dir) / "pubmed" / "pubmedqa_pqal_dev.json"]
    out = args.out or DEFAULT_MODEL
    with Assistant.local(args.config) as assistant:
        # The abstracts the questions are about, so the pipeline retrieves them as it would for a user.
        ingest_knowledge(args.config, assistant.store, args.tenant, None, None, pubmed_paths=questions,
                         text_encoder=assistant.text_encoder, joint_encoder=None, progress=not args.no_progress)
        card = train_decision(assistant, questions, out, tenant=args.tenant, seed=args.seed,
                              conclusions=not args.no_conclusions, progress=not args.no_progress)
    cross, test = card["cross_validation"], card["test"]
    low, high = cross["accuracy_ci95"]
    print(f"reader: {card['reader']}; split {card['split']['name']}, train + validation: cross-validated accuracy "
          f"{cross['metrics']['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}), "
          f"macro-F1 {cross['metrics']['macro_f1']:.3f}, ECE {cross['ece']:.3f} ({cross['selected']}); "
          f"majority baseline {card['majority_baseline_accuracy']:.3f}, "
          f"zero-shot reader {card['zero_shot_reader']['accuracy']:.3f}")
    print(f"held-out test ({test['metrics']['queries']} questions): accuracy {test['metrics']['accuracy']:.3f} "
          f"(95% CI {test['accuracy_ci95'][0]:.3f}-{test['accuracy_ci95'][1]:.3f}), macro-F1 "
          f"{test['metrics']['macro_f1']:.3f}; always {test['majority_label']!r}: {test['majority_accuracy']:.3f}")
    abstain = card["abstention"]
    if abstain["threshold"] is None:
        print(f"no confidence reaches accuracy {abstain['target_accuracy']:.2f}: the decider never abstains")
    else:
        print(f"abstains below confidence {abstain['threshold']:.2f}: accuracy {abstain['accuracy']:.3f} on "
              f"{abstain['coverage']:.0%} of questions (cross-validated)")
    print(f"model, card and figures in {out}")
    return 0


def _eval_answers(args: argparse.Namespace) -> int:
    from evaluation.answers import evaluate_answers, render_markdown
    from medrag.assistant import Assistant

    with Assistant.local(args.config) as assistant:
        report = evaluate_answers(assistant, args.questions, tenant=args.tenant, generate=args.generate,
                                  held_out_only=args.held_out, out_dir=args.out, progress=not args.no_progress)
    print(render_markdown(report))
    return 0


def _eval_rerank(args: argparse.Namespace) -> int:
    from evaluation.rerank import evaluate_rerankers, render_markdown, rerank_assistants
    from evaluation.retrieval import ingest_knowledge

    assistants = rerank_assistants(args.config, args.rerankers)
    first = next(iter(assistants.values()))
    try:
        # The abstracts the questions are about, so the pipeline retrieves them as it would for a user.
        ingest_knowledge(args.config, first.store, args.tenant, None, None, pubmed_paths=[args.questions],
                         text_encoder=first.text_encoder, joint_encoder=None, progress=not args.no_progress)
        report = evaluate_rerankers(assistants, args.questions, tenant=args.tenant, k=args.k,
                                    held_out_only=not args.all, count=args.count, out_dir=args.out,
                                    progress=not args.no_progress)
    finally:
        first.close()
    print(render_markdown(report))
    return 0


def _eval_support(args: argparse.Namespace) -> int:
    from evaluation.support import evaluate_support, render_markdown
    from medrag.encode.text import TextEncoder
    from medrag.generate.grounding import CosineSupport, ReaderSupport
    from medrag.lm.load import load_language_model

    encode = TextEncoder(args.config.text_model).encode
    settings = args.config.answer
    reader = load_language_model(args.config.generator_model, args.config.cache_dir, args.config.generator_threads)
    judges = [ReaderSupport(reader, encode, settings.min_entailment), CosineSupport(encode, settings.min_support)]
    report = evaluate_support(judges, encode, args.questions, count=args.count, seed=args.seed, out_dir=args.out,
                              progress=not args.no_progress)
    print(render_markdown(report))
    return 0


def _eval_report(args: argparse.Namespace) -> int:
    from evaluation.report_generation import evaluate_report_generation, render_markdown
    from medrag.encode.text import TextEncoder

    labeller = args.labeller or Path(args.config.data_dir) / "chexpert-labeler"
    report = evaluate_report_generation(args.reports, args.split, labeller, encoder=TextEncoder(args.config.text_model),
                                        labelled_csv=args.labelled_csv, count=args.count, resamples=args.resamples,
                                        seed=args.seed, out_dir=args.out, progress=not args.no_progress)
    print(render_markdown(report))
    return 0


def _eval_all(args: argparse.Namespace) -> int:
    from evaluation.suite import render_index, run_all
    from medrag.assistant import Assistant

    with Assistant.local(args.config) as assistant:
        index = run_all(assistant, args.data or args.config.data_dir, args.out, tenant=args.tenant, limit=args.limit,
                        generate=args.generate, only=tuple(args.only or ()), progress=not args.no_progress)
    print(render_index(index))
    print(f"index.md, index.json and one folder per suite in {args.out}")
    return 1 if any(result["status"] == "failed" for result in index["suites"].values()) else 0


def _train_router(args: argparse.Namespace) -> int:
    from medrag.route.classifier import DEFAULT_CLASSIFIER
    from training.router import train_router

    out = args.out or DEFAULT_CLASSIFIER
    card = train_router(args.config, args.data_dir or args.config.data_dir, out, seed=args.seed)
    for name, row in card["ablation"].items():
        print(f"{name:32s} held-out accuracy {row['accuracy']:.3f}  macro-F1 {row['macro_f1']:.3f}  "
              f"log loss {row['log_loss']:.3f}")
    print(f"model, card, held-out queries and confusion matrix in {out} ({card['seconds']} s)")
    return 0


def _eval_route(args: argparse.Namespace) -> int:
    from evaluation.routing import evaluate_router

    report = evaluate_router(args.config, args.queries, args.out)
    print(json.dumps(report, indent=2))
    return 0


def _eval_retrieval(args: argparse.Namespace) -> int:
    import numpy as np

    from evaluation.retrieval import render_markdown, run_retrieval_eval
    from medrag.encode.text import TextEncoder
    from medrag.retrieve.retriever import SourceSearch
    from medrag.route.features import Query
    from medrag.route.router import Router

    encoder = TextEncoder(args.config.text_model)
    router = Router.load(args.config, encoder.encode)

    def route(question: str, vector: np.ndarray) -> Sequence[SourceSearch]:
        return router.route(Query(question=question), embedding=vector).searches

    report = run_retrieval_eval(args.config, args.questions, args.metadata, tenant=args.tenant, out_dir=args.out,
                                router=route, text_encoder=encoder, progress=not args.no_progress)
    print(render_markdown(report))
    if args.out:
        print(f"retrieval.json, retrieval.md and the alpha plot in {args.out}")
    return 0


def _fusion_data(args: argparse.Namespace, questions: Path | None, metadata: Path | None) -> Any:
    """Ingest the sources into ``--tenant`` if needed, then build (or reuse) the fusion supervision."""
    from evaluation.retrieval import ingest_knowledge
    from medrag.assistant import Assistant
    from training.fusion_data import fusion_data

    progress = not args.no_progress
    with Assistant.local(args.config.replace(reranker="retrieval")) as assistant:
        ingest_knowledge(args.config, assistant.store, args.tenant, questions, metadata,
                         text_encoder=assistant.text_encoder,
                         joint_encoder=assistant.joint_encoder if metadata else None, progress=progress)
        return fusion_data(assistant, questions, metadata, tenant=args.tenant, cache_dir=args.config.cache_dir,
                           candidates=args.candidates, rebuild=args.rebuild, progress=progress)


def _train_fusion(args: argparse.Namespace) -> int:
    from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT
    from training.fusion import TrainOptions, train_fusion

    data_dir = args.data_dir or args.config.data_dir
    questions = args.questions or data_dir / "pubmed" / "pubmedqa_pqal_dev.json"
    metadata = args.metadata or data_dir / "cxr" / "covid" / "metadata.csv"
    data = _fusion_data(args, questions, metadata)
    out = args.out or DEFAULT_CHECKPOINT
    card = train_fusion(data, out, TrainOptions(epochs=args.epochs, seed=args.seed), progress=not args.no_progress)
    for method, tasks in card["test"].items():
        for task, metrics in tasks.items():
            print(f"{method:10s} {task:9s} " + "  ".join(f"{name} {value:.3f}" for name, value in metrics.items()))
    print(f"checkpoint, card and loss curve in {out} (best epoch {card['best_epoch']}, {card['seconds']} s)")
    return 0


def _eval_ablate(args: argparse.Namespace) -> int:
    from evaluation.fusion import ablate, render_markdown, write_ablation
    from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT
    from training.fusion import TrainOptions

    data = _fusion_data(args, args.questions, args.metadata)
    report = ablate(data, args.config.fusion_model or DEFAULT_CHECKPOINT, seeds=tuple(args.seeds),
                    options=TrainOptions(epochs=args.epochs), progress=not args.no_progress)
    print(render_markdown(report))
    if args.out:
        print("written: " + ", ".join(str(path) for path in write_ablation(report, args.out)))
    return 0


def _fusion_data_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--metadata", type=Path, help="covid metadata.csv-format file (image + note queries)")
    command.add_argument("--tenant", default="eval", help="tenant to ingest into and search (default eval)")
    command.add_argument("--candidates", type=int, default=20, help="retrieved candidates per query (default 20)")
    command.add_argument("--epochs", type=int, default=12)
    command.add_argument("--rebuild", action="store_true", help="rebuild the cached training data")
    command.add_argument("--no-progress", action="store_true", help="no progress bars")


def _training_command(train: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """``medrag train NAME`` with the options every training command shares."""
    command = train.add_parser(name, help=help_text)
    command.add_argument("--data-dir", type=Path, help="shared data folder (default: config data_dir)")
    command.add_argument("--out", type=Path, help="model folder (default: the packaged model)")
    command.add_argument("--seed", type=int, default=0)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medrag", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", dest="config_path",
                        help="TOML config file (default: $MEDRAG_CONFIG or ./medrag.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("doctor", help="show versions and where Weaviate, models and data were found").set_defaults(
        run=_doctor
    )
    commands.add_parser("demo", help="ingest the demo knowledge base and answer a question").set_defaults(run=_demo)
    ui = commands.add_parser("ui", help="the clinicians' app (Streamlit) on http://127.0.0.1:8501")
    ui.add_argument("--port", type=int, default=8501)
    ui.add_argument("--address", default="127.0.0.1",
                    help="address to listen on (default loopback; put a TLS proxy with sign-in in front otherwise)")
    ui.set_defaults(run=_ui)

    ingest = commands.add_parser("ingest", help="de-identify, encode and store knowledge sources").add_subparsers(
        dest="source", required=True, metavar="SOURCE"
    )
    for source, what in (
        ("pubmed", "MEDLINE/PubMed XML (.xml, .xml.gz), PubTator, PubMedQA JSON; files or folders"),
        ("reports", "Open-i/IU ecgen XML or its .tgz, CSV exports (with --mapping)"),
        ("images", "DICOM files or folders, PNG/JPEG, image+note CSVs (metadata.csv style)"),
    ):
        command = ingest.add_parser(source, help=what)
        command.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        command.add_argument("--mapping", help="field-mapping file (YAML/JSON) or built-in mapping name")
        command.add_argument("--tenant", help="tenant (hospital) to ingest into; created if missing")
        command.add_argument("--report", type=Path, help="write the full summary as JSON here")
        command.add_argument("--no-progress", action="store_true", help="no progress bar")
        if source == "images":
            command.add_argument("--notes", type=Path, help="CSV of notes for the images, joined by file name")
            command.add_argument("--allow-burned-in", action="store_true",
                                 help="accept images flagged BurnedInAnnotation=YES (check the pixels first)")
        command.set_defaults(run=_ingest)

    ask = commands.add_parser("ask", help="answer a question/note/image with cited evidence")
    ask.add_argument("--question", help="the question")
    ask.add_argument("--note", help="clinical note (de-identified before use)")
    ask.add_argument("--image", type=Path, help="chest radiograph: DICOM (de-identified before use), PNG or JPEG")
    ask.add_argument("--explain", action="store_true", help="show the route, its reason, models and timings")
    ask.add_argument("--json", action="store_true", help="print the whole result as JSON")
    ask.add_argument("--mode", choices=("auto", "extractive", "generative"),
                     help="extractive quotes the evidence; generative lets the language model write; auto (default, "
                          "config answer_mode) follows the routing table")
    ask.add_argument("--stream", action="store_true", help="print generated text as it is written")
    ask.add_argument("--evidence-only", action="store_true", help="stop after the search: the ranked evidence")
    ask.add_argument("-k", type=int, default=10, help="how many evidence items (default 10)")
    ask.add_argument("--tenant", help="tenant (hospital) to search; default from the config")
    ask.add_argument("--source", action="append", choices=("PubmedArticle", "RadiologyReport", "ImagingCase"),
                     help="search only this source (repeatable); overrides the scheduler")
    ask.add_argument("--intent", choices=("literature", "imaging", "clinical"),
                     help="treat the query as this intent; overrides the scheduler's classifier")
    ask.add_argument("--year-from", type=int, help="only evidence from this year on")
    ask.add_argument("--year-to", type=int, help="only evidence up to this year")
    ask.set_defaults(run=_ask)

    train = commands.add_parser("train", help="train medrag's own models").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    joint = _training_command(train, "joint", "the joint image-text space (LiT heads; a minute or two on a CPU)")
    joint.add_argument("--epochs", type=int, default=60)
    joint.add_argument("--label-smoothing", type=float, default=0.0)
    joint.add_argument("--ib-beta", type=float, default=0.0, help="information-bottleneck weight")
    joint.add_argument("--grad-noise", type=float, default=0.0, help="initial std of gradient noise")
    joint.add_argument("--text-adaptation", type=float, default=0.0, help="weight of IU findings<->impression loss")
    joint.add_argument("--ablate", action="store_true", help="compare the options on validation over 3 seeds")
    joint.set_defaults(run=_train_joint)

    _training_command(train, "router", "the scheduler's intent model (about a minute on a CPU)").set_defaults(
        run=_train_router)

    fusion = _training_command(train, "fusion", "the cross-attention fusion reranker on PubMedQA and covid cases "
                               "(ingests them into --tenant first; about 10 minutes on a CPU)")
    fusion.add_argument("--questions", type=Path, help="PubMedQA-format JSON (default: the shared dev set)")
    _fusion_data_options(fusion)
    fusion.set_defaults(run=_train_fusion)

    read = _training_command(train, "read", "the model's read of the image, COVID-19 vs other pneumonia (a few "
                             "minutes on a CPU)")
    read.add_argument("--metadata", type=Path, help="metadata.csv-format file (default: DATA_DIR/cxr/covid/"
                      "metadata.csv)")
    read.add_argument("--no-progress", action="store_true", help="no progress bar")
    read.set_defaults(run=_train_read)

    decision = _training_command(train, "decision", "the yes/no/maybe model on PubMedQA questions searched in --tenant "
                                 "(ingest them first: `medrag eval retrieval` or `medrag ingest pubmed`)")
    decision.add_argument("--questions", type=Path, nargs="+",
                          help="PubMedQA-format JSON files (default: the shared dev set); any labelled set")
    decision.add_argument("--no-conclusions", action="store_true",
                          help="do not add the authors' conclusions as extra training rows")
    decision.add_argument("--tenant", default="eval", help="tenant holding the abstracts (default eval)")
    decision.add_argument("--no-progress", action="store_true", help="no progress bar")
    decision.set_defaults(run=_train_decision)

    evaluate = commands.add_parser("eval", help="evaluation on a named dataset").add_subparsers(
        dest="task", required=True, metavar="TASK")
    eval_all = evaluate.add_parser(
        "all", help="every suite the data supports (inputs found by format, not by name), an index page linking "
        "them with baselines, 95%% intervals and the sha256 of every input")
    eval_all.add_argument("--data", type=Path, help="folder of evaluation files (default: the config's data_dir)")
    eval_all.add_argument("--out", type=Path, default=Path("results"), help="output folder (default results/)")
    eval_all.add_argument("--limit", type=int, help="first N items of each input only (a smoke run)")
    eval_all.add_argument("--generate", type=int, default=20, help="questions answered generatively (default 20)")
    eval_all.add_argument("--only", nargs="+",
                          help="suites to run (retrieval, routing, qa, ablate, read, report, vqa, latency); an index "
                          "already in --out keeps the other suites' entries")
    eval_all.add_argument("--tenant", default="eval", help="tenant to ingest into and search (default eval)")
    eval_all.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_all.set_defaults(run=_eval_all)

    eval_report = evaluate.add_parser(
        "report", help="draft impressions from the indication (normal template, nearest-study retrieval, top-3 "
        "vote) scored against the real IU impressions: BLEU-1..4, ROUGE-L, METEOR, CIDEr, CheXpert finding P/R/F1")
    eval_report.add_argument("reports", type=Path, nargs="+",
                             help="IU ecgen XML files or folders, NLMCXR_reports.tgz or indiana_reports.csv")
    eval_report.add_argument("--split", type=Path, required=True,
                             help="R2Gen-format annotation JSON (train/val/test lists of {id, image_path})")
    eval_report.add_argument("--labeller", type=Path,
                             help="CheXpert labeller folder (phrases/, patterns/); default: chexpert-labeler in the "
                             "data dir")
    eval_report.add_argument("--labelled-csv", type=Path, help="gold labels in labeled_reports.csv format (default: "
                             "the one in the labeller folder, if any)")
    eval_report.add_argument("--count", type=int, help="only the first N test studies (a smoke run)")
    eval_report.add_argument("--resamples", type=int, default=200,
                             help="bootstrap resamples of the corpus-level metrics (default 200)")
    eval_report.add_argument("--seed", type=int, default=0)
    eval_report.add_argument("--out", type=Path, help="folder for report.json, report.md and report.png")
    eval_report.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_report.set_defaults(run=_eval_report)
    eval_joint = evaluate.add_parser("joint", help="retrieval and zero-shot AUC of the joint model")
    eval_joint.add_argument("metadata", type=Path, help="a metadata.csv-format file with its images folder")
    eval_joint.add_argument("--out", type=Path, help="write the JSON report here")
    eval_joint.set_defaults(run=_eval_joint)

    eval_read = evaluate.add_parser(
        "read", help="the model's read of the image: AUC of image, image + note and note alone with patient-"
        "bootstrap intervals, Brier score, ROC curves")
    eval_read.add_argument("metadata", type=Path, help="a metadata.csv-format file with its images folder")
    eval_read.add_argument("--out", type=Path, help="folder for read.json, read.md and read_roc.png")
    eval_read.add_argument("--no-progress", action="store_true", help="no progress bar")
    eval_read.set_defaults(run=_eval_read)

    eval_attention = evaluate.add_parser(
        "attention", help="share of the fusion's image attention on the lungs against a uniform map, for the covid "
        "cases of held-out patients; ingests what it needs into --tenant first")
    eval_attention.add_argument("metadata", type=Path, help="a metadata.csv-format file with its images folder")
    eval_attention.add_argument("--lung-masks", type=Path, help="zip or folder of lung masks named like the images "
                                "(e.g. torchxrayvision's data/semantic_masks_v7labs_lungs.zip); default: the "
                                "classical segmentation")
    eval_attention.add_argument("--k", type=int, default=5, help="evidence items whose maps count (default 5)")
    eval_attention.add_argument("--tenant", default="eval", help="tenant to ingest into and search (default eval)")
    eval_attention.add_argument("--out", type=Path, help="folder for attention.json, attention.md and the figure")
    eval_attention.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_attention.set_defaults(run=_eval_attention)

    eval_route = evaluate.add_parser("route", help="routing accuracy and confusion matrix on labelled queries")
    eval_route.add_argument("queries", type=Path, help="labelled queries, JSON Lines (e.g. the model's "
                            "test_queries.jsonl)")
    eval_route.add_argument("--out", type=Path, help="folder for routing.json and routing_confusion.png")
    eval_route.set_defaults(run=_eval_route)

    eval_retrieval = evaluate.add_parser(
        "retrieval", help="PubMedQA own-abstract retrieval (BM25, dense, hybrid alpha sweep, routed) and covid "
        "note->reports / image->cases; ingests what it needs into --tenant first")
    eval_retrieval.add_argument("questions", type=Path, help="PubMedQA-format JSON (PMID -> QUESTION, CONTEXTS)")
    eval_retrieval.add_argument("--metadata", type=Path, help="covid metadata.csv-format file (adds the case tasks)")
    eval_retrieval.add_argument("--tenant", default="eval", help="tenant to ingest into and search (default eval)")
    eval_retrieval.add_argument("--out", type=Path, help="folder for retrieval.json, retrieval.md and the plot")
    eval_retrieval.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_retrieval.set_defaults(run=_eval_retrieval)

    eval_ablate = evaluate.add_parser(
        "ablate", help="fusion design rules (R1, R2, R4, R6, R7) vs the full model and no fusion, on the held-out "
        "queries of the split named in the fusion model's card, over seeds: ablation.json, ablation.md, ablation.png")
    eval_ablate.add_argument("questions", type=Path, help="PubMedQA-format JSON (PMID -> QUESTION, CONTEXTS)")
    _fusion_data_options(eval_ablate)
    eval_ablate.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    eval_ablate.add_argument("--out", type=Path, help="folder for the table and the bar chart")
    eval_ablate.set_defaults(run=_eval_ablate)

    eval_support = evaluate.add_parser(
        "support", help="precision and recall of the grounding check (reader and cosine) on real evidence sentences "
        "and their negated, reversed and number-changed variants")
    eval_support.add_argument("questions", type=Path, help="any PubMedQA-format JSON (its abstracts give sentences)")
    eval_support.add_argument("--count", type=int, default=100, help="evidence sentences, one per abstract")
    eval_support.add_argument("--seed", type=int, default=0)
    eval_support.add_argument("--out", type=Path, help="folder for support.json and support.md")
    eval_support.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_support.set_defaults(run=_eval_support)

    eval_answers = evaluate.add_parser(
        "answers", help="yes/no/maybe accuracy and macro-F1 (extractive vs generative), citation precision, "
        "supported sentences, insufficient-evidence rate, tokens/s on a PubMedQA-format file")
    eval_answers.add_argument("questions", type=Path, help="PubMedQA-format JSON whose abstracts are in --tenant")
    eval_answers.add_argument("--tenant", default="eval", help="tenant holding the abstracts (default eval)")
    eval_answers.add_argument("--generate", type=int, default=50,
                              help="questions answered in full generative mode (about 6 s each; default 50)")
    eval_answers.add_argument("--held-out", action="store_true",
                              help="only the questions in the test part of the models' split (never trained on)")
    eval_answers.add_argument("--out", type=Path, help="folder for answers.json, answers.md and the plots")
    eval_answers.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_answers.set_defaults(run=_eval_answers)

    eval_rerank = evaluate.add_parser(
        "rerank", help="retrieval order, fusion and the reader as rerankers on the same questions: hit@1, MRR, ms")
    eval_rerank.add_argument("questions", type=Path, help="PubMedQA-format JSON (any file in the format)")
    eval_rerank.add_argument("--rerankers", nargs="+", default=["retrieval", "fusion", "reader", "fusion+reader"],
                             help="registered rerankers to compare (default: these four)")
    eval_rerank.add_argument("--tenant", default="eval", help="tenant to hold the abstracts (default eval)")
    eval_rerank.add_argument("-k", type=int, default=10, help="results per question (default 10)")
    eval_rerank.add_argument("--all", action="store_true",
                             help="every question, not only the test part of the fusion checkpoint's split")
    eval_rerank.add_argument("--count", type=int, help="at most this many questions")
    eval_rerank.add_argument("--out", type=Path, help="folder for rerank.json, rerank.md and rerank.png")
    eval_rerank.add_argument("--no-progress", action="store_true", help="no progress bars")
    eval_rerank.set_defaults(run=_eval_rerank)

    audit = commands.add_parser("audit", help="the hash-chained audit trail of requests").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION")
    for action, run, what in (
        ("verify", _audit_verify, "check the chain over the log and its rotated files; exit 1 naming each break"),
        ("head", _audit_head, "print the last seq and hash, to anchor elsewhere (detects removed newest lines)"),
    ):
        command = audit.add_parser(action, help=what)
        command.add_argument("path", nargs="?", type=Path, metavar="PATH",
                             help="the audit log (default: [audit] log, <home>/audit/audit.jsonl)")
        command.set_defaults(run=run)

    server = commands.add_parser("server", help="the embedded Weaviate server").add_subparsers(
        dest="server_command", required=True, metavar="ACTION"
    )
    server.add_parser("install", help="find or build the weaviate-server binary (once)").set_defaults(
        run=_server_install
    )
    server_run = server.add_parser("run", help="run the embedded server (or a local cluster) in the foreground")
    server_run.add_argument("--nodes", type=int, default=1,
                            help="nodes on this machine: more than 1 runs a Raft cluster on loopback (docs/cluster.md)")
    server_run.set_defaults(run=_server_run)

    tenant = commands.add_parser("tenant", help="hospitals: one tenant and one server-enforced key each")
    tenant_actions = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    tenant_add = tenant_actions.add_parser(
        "add", help="create a hospital's tenant, a role limited to it and a key (needs the root key, RBAC on)")
    tenant_add.add_argument("name", help="the tenant (hospital) name: letters, digits, '-' or '_'")
    tenant_add.add_argument("--read-only", action="store_true", help="search only: the key may not ingest")
    tenant_add.add_argument("--rotate", action="store_true",
                            help="issue a new key to an existing hospital (its old key stops working at once)")
    tenant_add.add_argument("--out", type=Path, help="key file (default <home>/tenant-keys/NAME.json, mode 0600)")
    tenant_add.set_defaults(run=_tenant_add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.config = load_config(args.config_path)
        return args.run(args)
    except (ConfigError, StoreError, FileNotFoundError) as error:
        print(f"medrag: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
