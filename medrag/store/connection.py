"""Open a weaviate-client connection: to an external cluster, or to an embedded server we start."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, GrpcConfig, Timeout
from weaviate.exceptions import (
    AuthenticationFailedError,
    UnexpectedStatusCodeError,
    WeaviateBaseError,
)

from medrag.config import Config
from medrag.store.binary import install_binary
from medrag.store.errors import ConnectionFailed
from medrag.store.server import EmbeddedServer

WAIT_FOR_READY = ("grpc.service_config", json.dumps({"methodConfig": [{"name": [{}], "waitForReady": True}]}))
"""Every gRPC call waits for the server up to its own deadline instead of failing at once with UNAVAILABLE. The
client retries UNAVAILABLE with sleeps of 1, 2, 4, 8, 16 and 32 s (about a minute per call, found by the faults
suite); waiting for ready turns a server that is down into DEADLINE_EXCEEDED after ``[weaviate] timeout``, which the
client does not retry, and lets a call ride over a server restart shorter than that."""


def _timeouts(config: Config) -> AdditionalConfig:
    # Bounded everywhere: an unreachable host must become an error, never a hang.
    seconds = config.weaviate.timeout
    return AdditionalConfig(timeout=Timeout(init=min(seconds, 10.0), query=seconds, insert=seconds * 4),
                            grpc_config=GrpcConfig(channel_options=[WAIT_FOR_READY]))


def connect_client(
    http_url: str,
    api_key: str | None,
    config: Config,
    *,
    grpc_host: str | None = None,
    grpc_port: int | None = None,
    secure: bool | None = None,
    key_file: Path | None = None,
) -> weaviate.WeaviateClient:
    """Connect and check liveness and credentials now, turning each failure into one clear message.

    ``key_file``: the hospital key file the key came from (None: MEDRAG_WEAVIATE_API_KEY), named when the server
    rejects the key.
    """
    url = urllib.parse.urlsplit(http_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConnectionFailed(f"Weaviate URL {http_url!r} is not an http(s) URL; fix MEDRAG_WEAVIATE_URL")
    secure = url.scheme == "https" if secure is None else secure
    try:
        return weaviate.connect_to_custom(
            http_host=url.hostname,
            http_port=url.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=grpc_host or url.hostname,
            grpc_port=grpc_port or config.weaviate.grpc_port,
            grpc_secure=secure,
            auth_credentials=Auth.api_key(api_key) if api_key else None,
            additional_config=_timeouts(config),
        )
    except (AuthenticationFailedError, UnexpectedStatusCodeError) as error:
        if "401" in str(error) or "403" in str(error) or isinstance(error, AuthenticationFailedError):
            fix = ("Set MEDRAG_WEAVIATE_API_KEY to a key the server accepts" if key_file is None
                   else f"The key in {key_file} was rotated or its user removed; ask the administrator for a new key "
                   "file (`medrag tenant add NAME --rotate`)")
            raise ConnectionFailed(f"Weaviate at {http_url} rejected the API key (HTTP 401/403). {fix}") from None
        raise ConnectionFailed(f"Weaviate at {http_url} answered with an error: {error}") from None
    except ValueError as error:  # the client validates its settings with pydantic before connecting
        raise ConnectionFailed(
            f"invalid Weaviate connection settings for {http_url}: {error}. Fix MEDRAG_WEAVIATE_URL / "
            "MEDRAG_WEAVIATE_GRPC_HOST / MEDRAG_WEAVIATE_GRPC_PORT"
        ) from None
    except WeaviateBaseError as error:
        raise ConnectionFailed(
            f"cannot reach Weaviate at {http_url} (gRPC {grpc_host or url.hostname}:"
            f"{grpc_port or config.weaviate.grpc_port}): {str(error).splitlines()[0]}. Check that the server "
            "runs and MEDRAG_WEAVIATE_URL / MEDRAG_WEAVIATE_GRPC_PORT are right, or unset MEDRAG_WEAVIATE_URL "
            "to use the embedded server"
        ) from None


def start_embedded(config: Config, log: Callable[[str], None] = print) -> EmbeddedServer:
    """Start the embedded server on the configured data directory (building the binary once if needed)."""
    binary = install_binary(config, log)
    server = EmbeddedServer(
        binary.path,
        config.weaviate_data_dir,
        port=config.weaviate.port,
        hostname=config.weaviate.hostname,
        api_key=config.weaviate.api_key,
        startup_timeout=config.weaviate.startup_timeout,
        rbac=config.weaviate.rbac,
    )
    return server.start()
