"""One Weaviate key per hospital, limited by the server to that hospital's tenant (role-based access control).

Why the server: ``tenant=`` is an argument any caller of the Python API can set, so code of ours that checks it
protects nothing from code that does not. A database user whose role grants data access to one tenant cannot read
another tenant's objects whatever it sends: Weaviate 1.39 answers 403 ("forbidden action ... Tenant: B") to every
search, fetch, aggregate or write naming another tenant, and logs the denial. docs/tenants.md lists what the role
grants and what it does not cover.

Names: the tenant is the hospital's name (``[A-Za-z0-9_-]``, at most 48 characters, so that the role and user names
derived from it stay within Weaviate's limits), the role is ``medrag-tenant-<name>``, the user ``hospital-<name>``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import weaviate
from weaviate.classes.rbac import Permissions

from medrag.store.errors import StoreError

TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")
ROLE_PREFIX = "medrag-tenant-"
USER_PREFIX = "hospital-"
KEY_DIR = "tenant-keys"
"""Folder of ``<home>`` where ``medrag tenant add`` writes the key files (mode 0700, files 0600)."""


def check_tenant_name(name: str) -> str:
    """The name, or a StoreError naming the rule: it becomes part of a role and a user name on the server."""
    if not TENANT_NAME.fullmatch(name):
        raise StoreError(f"tenant name {name!r} is not allowed for a hospital key: use 1 to 48 letters, digits, '-' "
                         "or '_' (it names the tenant, the role medrag-tenant-<name> and the user hospital-<name>)")
    return name


def key_path(home: Path, tenant: str) -> Path:
    """Where ``medrag tenant add`` keeps a hospital's key file by default."""
    return home / KEY_DIR / f"{check_tenant_name(tenant)}.json"


@dataclasses.dataclass(frozen=True)
class TenantKey:
    """A hospital's credentials: its tenant, the database user and role the server knows, and the API key.

    The key is left out of ``repr`` so that a logged or printed TenantKey never shows it.
    """

    tenant: str
    user: str
    role: str
    key: str = dataclasses.field(repr=False)

    def save(self, path: Path) -> Path:
        """Write the key file with mode 0600 (its folder 0700), replacing an older one in one step."""
        path = Path(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(dataclasses.asdict(self), handle)
            handle.write("\n")
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: Path) -> TenantKey:
        """Read a key file, refusing one that others than its owner may read (a key is a password)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise StoreError(f"hospital key file {path} (MEDRAG_WEAVIATE_KEY_FILE) does not exist; the administrator "
                             "writes it with `medrag tenant add NAME`") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StoreError(f"hospital key file {path} may be read by other users (mode {stat.S_IMODE(mode):o}); "
                             f"run `chmod 600 {path}`, and rotate the key (`medrag tenant add NAME --rotate`) if "
                             "someone else could have read it")
        try:
            values = json.loads(path.read_text())
            return cls(**{field.name: str(values[field.name]) for field in dataclasses.fields(cls)})
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(f"hospital key file {path} is not a medrag key file ({type(error).__name__}: missing or "
                             "malformed field); write it again with `medrag tenant add NAME --rotate`") from None


def role_permissions(tenant: str, collections: Sequence[str], *, write: bool) -> list[Any]:
    """What a hospital's role grants, all limited to ``collections`` and (where Weaviate scopes it) ``tenant``.

    - data of the tenant: read (every search, fetch and aggregate), and create + update when it ingests (a batch
      upsert needs update as well as create); never delete, and nothing of any other tenant;
    - the collections' configuration, read only: the store reads the schema to name the properties it returns,
      and ingest checks that the collections exist;
    - the tenant itself, read only: listing tenants shows it alone, so ingest finds it and creates nothing.
    """
    return [
        Permissions.data(collection=list(collections), tenant=tenant, read=True, create=write, update=write),
        Permissions.collections(collection=list(collections), read_config=True),
        Permissions.tenants(collection=list(collections), tenant=tenant, read=True),
    ]


def provision(client: weaviate.WeaviateClient, tenant: str, collections: Sequence[str], *, write: bool,
              rotate: bool) -> TenantKey:
    """Make (or remake) the tenant's role with the current collections, then create its user or rotate its key.

    ``client`` must be the root user's. A user that exists already keeps its key unless ``rotate``: a rotated key
    replaces the old one at once, so a leaked key is revoked by rotating it.
    """
    role, user = f"{ROLE_PREFIX}{tenant}", f"{USER_PREFIX}{tenant}"
    existing = client.users.db.get(user_id=user)
    if existing is not None and not rotate:
        raise StoreError(f"hospital {tenant!r} already has a key (database user {user!r}); pass --rotate "
                         "(rotate=True) to issue a new one: the old key stops working at once")
    if client.roles.exists(role):
        client.roles.delete(role)
    client.roles.create(role_name=role, permissions=role_permissions(tenant, collections, write=write))
    key = client.users.db.rotate_key(user_id=user) if existing is not None else client.users.db.create(user_id=user)
    client.users.db.assign_roles(user_id=user, role_names=[role])
    return TenantKey(tenant=tenant, user=user, role=role, key=key)
