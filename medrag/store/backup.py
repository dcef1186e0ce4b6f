"""Back up and restore collections, every tenant included, with one of Weaviate's backup modules.

The embedded server enables ``backup-filesystem`` (``BACKUP_FILESYSTEM_PATH`` = ``<data dir>/backups``). Weaviate
1.39 takes filesystem backups on a single node only: on a cluster it refuses them, and a hospital's cluster
enables ``backup-s3`` (any S3-compatible store), ``backup-gcs`` or ``backup-azure`` on every node and passes that
backend here. A restore needs the collections gone first: Weaviate refuses to restore over an existing one, so
:func:`restore` says to drop them rather than guess.
"""

from __future__ import annotations

from collections.abc import Sequence

from weaviate.backup.backup import BackupStatus, BackupStorage
from weaviate.exceptions import WeaviateBaseError

from medrag.store.errors import StoreError
from medrag.store.store import Store

CLUSTER_REFUSAL = "not viable for backing up a node cluster"
"""What Weaviate answers when asked for a filesystem backup or restore on more than one node."""


def _failed(action: str, backup_id: str, error: WeaviateBaseError, fix: str) -> StoreError:
    if CLUSTER_REFUSAL in str(error):
        return StoreError(f"{action} of backup {backup_id!r} refused: Weaviate takes filesystem backups on a single "
                          "node only. On a cluster enable backup-s3 (any S3-compatible store), backup-gcs or "
                          "backup-azure on every node and pass that backend (docs/cluster.md)")
    return StoreError(f"{action} of backup {backup_id!r} failed: {error}. {fix}")


def _finished(action: str, backup_id: str, result: object) -> None:
    status = getattr(result, "status", None)
    if status != BackupStatus.SUCCESS:
        raise StoreError(
            f"{action} of backup {backup_id!r} ended {status}: {getattr(result, 'error', None) or 'no reason given'}. "
            "Check that every node enables the backup module with the same location and has space left, and read "
            "the nodes' weaviate.log"
        )


def backup(store: Store, backup_id: str, collections: Sequence[str], backend: str = "filesystem") -> None:
    """Write a backup of ``collections`` (all their tenants and vectors) and wait until every node has written it."""
    try:
        result = store.client.backup.create(backup_id, BackupStorage(backend), include_collections=list(collections),
                                            wait_for_completion=True)
    except WeaviateBaseError as error:
        raise _failed("creation", backup_id, error, "A backup id can be used once: choose a new one if it exists. "
                      f"Collections: {', '.join(collections)}; server {store.url}") from None
    _finished("creation", backup_id, result)


def restore(store: Store, backup_id: str, collections: Sequence[str], backend: str = "filesystem") -> None:
    """Restore ``collections`` from a backup; they must not exist (drop them first, e.g. after data loss)."""
    existing = [name for name in collections if store.client.collections.exists(name)]
    if existing:
        raise StoreError(f"cannot restore {', '.join(existing)} from backup {backup_id!r}: the collection exists. "
                         "Delete it first (client.collections.delete) if the backup is to replace it")
    try:
        result = store.client.backup.restore(backup_id, BackupStorage(backend), include_collections=list(collections),
                                             wait_for_completion=True)
    except WeaviateBaseError as error:
        raise _failed("restore", backup_id, error, f"Check that backup {backup_id!r} exists in the {backend} "
                      f"backend. Collections: {', '.join(collections)}; server {store.url}") from None
    _finished("restore", backup_id, result)
