"""The Azure Functions app: creates the FunctionApp and registers the blueprints. Nothing else."""

import azure.functions as func

from core.bootstrap import check_settings_at_startup
from functions import health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.bp)

check_settings_at_startup()
