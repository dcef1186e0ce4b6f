"""Find, build or download the ``weaviate-server`` binary the embedded mode runs.

Order: ``MEDRAG_WEAVIATE_BIN``, then the medrag cache (``<cache>/weaviate-<version>/weaviate-server``),
then a one-time ``go install`` into that cache when Go is on PATH, then weaviate-client's own
embedded download (machines with internet and no Go).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from medrag.config import Config
from medrag.store.errors import BinaryNotFound

MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"
# Release builds set the version through the linker; without it /v1/meta and metrics report none.
VERSION_VARIABLE = "github.com/weaviate/weaviate/usecases/build.Version"


@dataclasses.dataclass(frozen=True)
class WeaviateBinary:
    path: Path
    version: str
    origin: str
    """How it was found: "MEDRAG_WEAVIATE_BIN", "cache", "built with go", "downloaded"."""


def cached_binary_path(config: Config) -> Path:
    return config.cache_dir / f"weaviate-{config.weaviate.version}" / "weaviate-server"


def find_binary(config: Config) -> WeaviateBinary | None:
    """The binary configured or cached, without building anything."""
    configured = config.weaviate.bin
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise BinaryNotFound(
                f"MEDRAG_WEAVIATE_BIN={configured} is not an executable file; point it at a "
                f"weaviate-server {config.weaviate.version} binary or unset it to use the medrag cache"
            )
        return WeaviateBinary(configured, config.weaviate.version, "MEDRAG_WEAVIATE_BIN")
    cached = cached_binary_path(config)
    if cached.is_file() and os.access(cached, os.X_OK):
        return WeaviateBinary(cached, config.weaviate.version, "cache")
    return None


def build_with_go(config: Config, log: Callable[[str], None] = print) -> WeaviateBinary:
    """``go install`` the server into the cache (several minutes the first time; Go caches make re-builds quick)."""
    go = shutil.which("go")
    if go is None:
        raise BinaryNotFound("Go is not on PATH, so weaviate-server cannot be built here")
    version = config.weaviate.version
    target = cached_binary_path(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": gobin}
        command = [go, "install", "-trimpath", "-ldflags", f"-s -w -X {VERSION_VARIABLE}={version}",
                   f"{MODULE}@v{version}"]
        log(f"building weaviate-server {version} with Go into {target} (first time: several minutes)")
        result = subprocess.run(command, env=env, check=False)
        if result.returncode != 0:
            raise BinaryNotFound(
                f"`{' '.join(command)}` failed with exit code {result.returncode}; check that the Go module "
                "proxy is reachable and Go is at least the version weaviate's go.mod asks for"
            )
        os.replace(Path(gobin) / "weaviate-server", target)  # atomic: a half-built file is never cached
    return WeaviateBinary(target, version, "built with go")


def download_with_client(config: Config, log: Callable[[str], None] = print) -> WeaviateBinary:
    """Use weaviate-client's embedded downloader (needs internet access to GitHub releases)."""
    from weaviate.embedded import EmbeddedOptions, EmbeddedV4

    version = config.weaviate.version
    folder = config.cache_dir / f"weaviate-{version}" / "download"
    folder.mkdir(parents=True, exist_ok=True)
    log(f"downloading weaviate {version} with weaviate-client into {folder}")
    options = EmbeddedOptions(binary_path=str(folder), persistence_data_path=str(folder / "unused"),
                              version=version)
    try:
        embedded = EmbeddedV4(options)
        embedded.ensure_weaviate_binary_exists()
    except Exception as error:  # the client raises bare Exceptions and network errors of several kinds
        raise BinaryNotFound(f"weaviate-client could not download weaviate {version}: {error}") from error
    target = cached_binary_path(config)
    shutil.copy2(embedded._weaviate_binary_path, target)
    return WeaviateBinary(target, version, "downloaded")


def install_binary(config: Config, log: Callable[[str], None] = print) -> WeaviateBinary:
    """Return a usable binary, building or downloading it once if needed."""
    found = find_binary(config)
    if found is not None:
        return found
    if shutil.which("go"):
        return build_with_go(config, log)
    try:
        return download_with_client(config, log)
    except BinaryNotFound as error:
        raise BinaryNotFound(
            f"no weaviate-server binary: not in MEDRAG_WEAVIATE_BIN, not at {cached_binary_path(config)}, "
            f"Go is not installed, and {error}. Install Go >= 1.26 and run `make setup`, or set "
            "MEDRAG_WEAVIATE_BIN, or MEDRAG_WEAVIATE_URL to use an existing Weaviate"
        ) from error
