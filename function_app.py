"""The Azure Functions app: creates the FunctionApp and registers the blueprints. Nothing else."""

import azure.functions as func

from core.bootstrap import check_settings_at_startup
from functions import (
    availability,
    connections,
    event_jobs,
    health,
    integration,
    integration_jobs,
    meta,
    offered_hours,
    pairings,
    product_webhooks,
    series,
    sessions,
    sync_jobs,
    webhooks,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (health, meta, integration, connections, pairings, availability, sessions, webhooks, offered_hours,
                  product_webhooks, series):
    app.register_functions(blueprint.bp)
app.register_functions(event_jobs.bp)
app.register_functions(integration_jobs.bp)
app.register_functions(sync_jobs.bp)

check_settings_at_startup()
