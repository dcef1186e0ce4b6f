"""Errors of the vector store layer. Every message names the cause and the fix."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The vector store could not do what was asked."""


class BinaryNotFound(StoreError):
    """No weaviate-server binary could be found, built or downloaded."""


class ServerStartError(StoreError):
    """The embedded Weaviate server did not come up."""


class ConnectionFailed(StoreError):
    """Weaviate could not be reached, or refused our credentials."""


class UnknownTenant(StoreError):
    """A call named a tenant that does not exist in the collection."""


class AccessDenied(StoreError):
    """Weaviate's role-based access control refused a request (HTTP 403): the key's role does not allow it."""

    def __init__(self, message: str, *, user: str | None, permission: str | None, tenant: str | None) -> None:
        super().__init__(message)
        self.user = user
        self.permission = permission
        self.tenant = tenant


class ImportFailed(StoreError):
    """Some objects of a batch import were rejected; ``failures`` lists each with its reason."""

    def __init__(self, collection: str, failures: list[tuple[str, str]], written: int) -> None:
        self.collection = collection
        self.failures = failures
        self.written = written
        shown = "; ".join(f"{source_id}: {reason}" for source_id, reason in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(
            f"{len(failures)} object(s) rejected by Weaviate in {collection} ({written} written): {shown}{more}"
        )
