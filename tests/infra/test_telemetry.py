"""Request telemetry cannot record the webhook function key (`?code=` on /api/graph/*) or the
OAuth `code`/`state` of the consent and sign-in callbacks.

What records requests on Flex Consumption: the Functions host's Application Insights
integration writes one request item per invocation. Its WebJobsTelemetryInitializer strips
the query string from the request URL unless `logging.applicationInsights.enableQueryStringTracing`
is true (Azure/azure-webjobs-sdk, Initializers/WebJobsTelemetryInitializer.cs and
ApplicationInsightsLoggerOptions.EnableQueryStringTracing, added by PR #3026, default false);
the host's own "Executing HTTP request" log carries the path only (Azure/azure-functions-host,
Middleware/SystemTraceMiddleware.cs). Graph only echoes the notification URL it was given, so
the key must stay in the query string; the fix is to pin that sanitising at its root:
host.json says it explicitly (an app setting could otherwise flip it), the host stays in its
Application Insights telemetry mode (the OpenTelemetry mode does not go through that
initializer), and no app setting turns on the Python worker's own request telemetry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.infra import bicep_text

ROOT = Path(__file__).resolve().parents[2]
# Routes whose query strings carry secrets: the function key (Graph echoes it on every POST)
# and the OAuth authorization code and state of the redirects.
SECRET_QUERY_ROUTES = {
    "functions/webhooks.py": ["graph/notifications", "graph/lifecycle"],
    "functions/integration.py": ["integration/consent/callback"],
    "functions/connections.py": ["me/connection/callback"],
}
# App settings that would change what request telemetry records.
TELEMETRY_SWITCHES = re.compile(
    r"^(PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY|PYTHON_ENABLE_OPENTELEMETRY|OTEL_.*|APPLICATIONINSIGHTS_ENABLE_AGENT"
    r"|AzureFunctionsJobHost__logging__applicationInsights__.*|AzureFunctionsJobHost__telemetryMode)$",
    re.I,
)


def _host_json() -> dict[str, object]:
    data = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_routes_with_secrets_in_the_query_exist() -> None:
    """The routes this guards are the app's real webhook and callback routes (so the test cannot go stale)."""
    for rel, routes in SECRET_QUERY_ROUTES.items():
        text = (ROOT / rel).read_text(encoding="utf-8")
        for route in routes:
            assert f'"{route}"' in text, (rel, route)


def test_host_strips_query_strings_from_request_telemetry() -> None:
    """host.json sets logging.applicationInsights.enableQueryStringTracing to false explicitly."""
    logging = _host_json()["logging"]
    assert isinstance(logging, dict)
    app_insights = logging["applicationInsights"]
    assert isinstance(app_insights, dict)
    assert app_insights.get("enableQueryStringTracing") is False


def test_host_stays_in_application_insights_telemetry_mode() -> None:
    """No telemetryMode switch to OpenTelemetry, whose request spans bypass the sanitising initializer."""
    mode = _host_json().get("telemetryMode", "ApplicationInsights")
    assert str(mode).lower() == "applicationinsights"


def test_no_app_setting_changes_request_telemetry() -> None:
    """The Bicep sets no app setting that enables worker telemetry or overrides host.json's logging."""
    switches = [name for name in bicep_text.app_settings() if TELEMETRY_SWITCHES.match(name)]
    assert switches == []


def test_the_seeded_unsafe_settings_are_caught() -> None:
    """The setting filter recognises the switches it exists for (a self-check of the regex)."""
    for name in ("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "AzureFunctionsJobHost__logging__applicationInsights__enableQueryStringTracing"):
        assert TELEMETRY_SWITCHES.match(name), name
    assert not TELEMETRY_SWITCHES.match("APPLICATIONINSIGHTS_CONNECTION_STRING")
