"""medrag: multimodal retrieval-augmented assistant for chest radiography (command line)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from medrag.config import ConfigError, load_config
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


def _server_install(args: argparse.Namespace) -> int:
    from medrag.store.binary import install_binary

    binary = install_binary(args.config)
    print(f"weaviate-server {binary.version}: {binary.path} ({binary.origin})")
    return 0


def _server_run(args: argparse.Namespace) -> int:
    """Run the embedded server in the foreground, for other processes (the UI, notebooks) to share."""
    from medrag.store.connection import start_embedded

    server = start_embedded(args.config)
    print(f"Weaviate {args.config.weaviate.version} on {server.url} (gRPC port {server.grpc_port}), "
          f"data in {server.data_dir}, log {server.log_path}")
    print(f"connect with MEDRAG_WEAVIATE_URL={server.url} MEDRAG_WEAVIATE_GRPC_PORT={server.grpc_port} "
          f"MEDRAG_WEAVIATE_API_KEY=<the key in {server.data_dir}/medrag-api-key>; Ctrl-C stops it")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medrag", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", dest="config_path",
                        help="TOML config file (default: $MEDRAG_CONFIG or ./medrag.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("doctor", help="show versions and where Weaviate, models and data were found").set_defaults(
        run=_doctor
    )
    commands.add_parser("demo", help="ingest the demo knowledge base and answer a question").set_defaults(run=_demo)

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

    server = commands.add_parser("server", help="the embedded Weaviate server").add_subparsers(
        dest="server_command", required=True, metavar="ACTION"
    )
    server.add_parser("install", help="find or build the weaviate-server binary (once)").set_defaults(
        run=_server_install
    )
    server.add_parser("run", help="run the embedded server in the foreground").set_defaults(run=_server_run)
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
