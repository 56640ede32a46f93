"""The secrets kept for a tenant, by name, so disconnect can delete them all.

The secret-store port cannot list names, so whoever stores a per-tenant secret (the
refresh tokens of per-user and service-account connections...) records its name in the
tenant's partition of ``integrations`` (RowKey ``secret~<name>``): ``SecretRegistry``
keeps those rows, ``TenantSecrets`` stores a secret and its name together and deletes
them together.
"""

from __future__ import annotations

from typing import Final

from core.names import Tables
from core.ports import Entity, SecretStore, TableStore
from core.services.stores.codec import END

SECRET_ROW_PREFIX: Final = "secret~"  # noqa: S105 - a row-key prefix, not a secret


class SecretRegistry:
    """The ``secret~<name>`` rows of a tenant: names only, never values."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def remember(self, tenant_id: str, name: str) -> None:
        self.tables.upsert(Tables.INTEGRATIONS, Entity(tenant_id, SECRET_ROW_PREFIX + name, {"name": name}))

    def forget(self, tenant_id: str, name: str) -> None:
        """Drop one name (its secret is deleted by whoever owns it)."""
        self.tables.delete(Tables.INTEGRATIONS, tenant_id, SECRET_ROW_PREFIX + name)

    def names(self, tenant_id: str) -> list[str]:
        rows = self.tables.query(
            Tables.INTEGRATIONS, tenant_id, row_key_from=SECRET_ROW_PREFIX, row_key_to=SECRET_ROW_PREFIX + END
        )
        return [str(r.data.get("name") or r.row_key[len(SECRET_ROW_PREFIX) :]) for r in rows]


class TenantSecrets:
    """A tenant's secrets: each value in the secret store, each name in the registry."""

    def __init__(self, tables: TableStore, store: SecretStore) -> None:
        self.registry = SecretRegistry(tables)
        self.store = store

    def put(self, tenant_id: str, name: str, value: str) -> None:
        self.registry.remember(tenant_id, name)
        self.store.set(name, value)

    def names(self, tenant_id: str) -> list[str]:
        return self.registry.names(tenant_id)

    def delete_all(self, tenant_id: str) -> int:
        names = self.registry.names(tenant_id)
        for name in names:
            self.store.delete(name)
            self.registry.forget(tenant_id, name)
        return len(names)
