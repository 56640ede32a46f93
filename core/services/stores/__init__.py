"""Repositories: the only code in ``core/services`` that speaks the ``TableStore`` port.

One module per table family; every key starts with the tenant id (PartitionKey), so a
read can never cross tenants. Services speak these repositories, never ``TableStore``.
Values are decoded by one codec (``codec.py``: ``as_datetime``, ``opt_str``, ``as_int``);
keys are encoded by the adapters (``core/domain/keys.py``), never here.

    sessions.py        sessions, their per-user and start-time indexes, the event-id index
    integrations.py    the integration record, its consent row, the tenant registry
    connections.py     delegated connections (per-user, service account): metadata only
    pairings.py        pairings and their membership index
    access_tests.py    access-test reports and the latest pointer
    subscriptions.py   Graph subscription records and the renewal-bucket index
    oauth_states.py    single-use OAuth states (hashed)
    alerts.py          owner-alert claims and sent markers
    audit.py           the admin audit trail
    secrets.py         the registry of a tenant's secret names (values live in the secret store)
"""
