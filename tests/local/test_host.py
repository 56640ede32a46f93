"""The local Functions host against Azurite: HTTP routing, CORS, static files, queues, timers."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from azure.storage.queue import QueueClient

from local.azurite import Azurite
from local.host import Host
from tests.local import sample_app

pytestmark = pytest.mark.azurite

ALLOWED_ORIGIN = "http://localhost:5173"
HOST_JSON = {
    "version": "2.0",
    "extensions": {
        "http": {"routePrefix": "api"},
        "queues": {
            "maxPollingInterval": "00:00:01",
            "visibilityTimeout": "00:00:01",
            "batchSize": 4,
            "maxDequeueCount": 2,
        },
    },
}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (the host works on other threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "secret.txt").write_text("outside the web folder")
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>console</title>")
    (dist / "assets" / "app.js").write_text("console.log('hi')")
    return dist


@pytest.fixture(scope="module")
def host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory, web_dir: Path) -> Iterator[Host]:
    host_json = tmp_path_factory.mktemp("hostjson") / "host.json"
    host_json.write_text(json.dumps(HOST_JSON))
    env = {
        "SAMPLE_QUEUE": "sample-work",
        "SAMPLE_SCHEDULE": "*/1 * * * * *",
        "CORS_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
    }
    instance = Host(
        sample_app.app,
        env=env,
        host_json=host_json,
        port=0,
        storage_connection_string=azurite.connection_string,
        web_dir=web_dir,
    )
    instance.start()
    yield instance
    instance.stop()


def queue(azurite: Azurite, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- HTTP ------------------------------------------------------------------------------


def test_route_params_query_headers_and_body_reach_the_function(host: Host) -> None:
    """A templated route gets its params, the first value of each query key, headers and the body."""
    resp = requests.post(
        f"{host.url}/api/items/42/alice?x=1&x=2&empty=",
        data=b'{"a": 1}',
        headers={"x-sample": "yes"},
        timeout=5,
    )
    assert resp.status_code == 200
    echoed = resp.json()
    assert echoed["method"] == "POST"
    assert echoed["route"] == {"id": "42", "name": "alice"}
    assert echoed["query"] == {"x": "1", "empty": ""}
    assert echoed["header"] == "yes"
    assert echoed["body"] == '{"a": 1}'
    assert echoed["url"].endswith("/api/items/42/alice?x=1&x=2&empty=")
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["x-correlation-id"] == "c1"


def test_optional_param_may_be_absent_and_match_is_case_insensitive(host: Host) -> None:
    """``{name?}`` can be left out, and literal segments match in any case, as on Azure."""
    resp = requests.get(f"{host.url}/API/Items/7", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["route"] == {"id": "7"}


def test_percent_encoded_params_are_decoded(host: Host) -> None:
    """Route values are URL-decoded; an encoded slash stays inside the parameter."""
    resp = requests.get(f"{host.url}/api/items/7/a%2Fb%20c", timeout=5)
    assert resp.json()["route"]["name"] == "a/b c"


def test_literal_route_wins_over_a_parameter(host: Host) -> None:
    """items/special goes to its own function even though items/{id} style routes exist."""
    resp = requests.get(f"{host.url}/api/items/special", timeout=5)
    assert resp.status_code == 200
    assert resp.text == "special"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_constraint_mismatch_is_not_found(host: Host) -> None:
    """A value breaking the route constraint ({id:int}) matches no route: 404 envelope."""
    resp = requests.get(f"{host.url}/api/items/abc", timeout=5)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_unknown_path_gets_the_404_envelope(host: Host) -> None:
    """A path no function serves answers with the JSON error envelope."""
    resp = requests.get(f"{host.url}/api/nothing-here", timeout=5)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == {"error": {"code": "not_found", "message": "No function serves this path."}}


def test_wrong_method_gets_405_with_allow(host: Host) -> None:
    """A route that exists with other methods answers 405 naming the allowed ones."""
    resp = requests.delete(f"{host.url}/api/items/1", timeout=5)
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
    assert resp.headers["Allow"] == "GET, POST"


def test_oversized_body_is_refused_before_it_is_read(host: Host) -> None:
    """A Content-Length over 1 MB gets 413 without the host waiting for the body."""
    conn = http.client.HTTPConnection("127.0.0.1", int(host.url.rsplit(":", 1)[1]), timeout=5)
    conn.putrequest("POST", "/api/items/1")
    conn.putheader("Content-Length", str(5 * 1024 * 1024))
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"]["code"] == "payload_too_large"
    conn.close()


def test_exception_becomes_500_envelope_without_details(host: Host) -> None:
    """An exception in a function gives a bare internal_error: no traceback or message leaks."""
    resp = requests.get(f"{host.url}/api/boom", timeout=5)
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "internal_error", "message": "Something went wrong on our side."}}
    assert "secret-internal-detail" not in resp.text
    assert "Traceback" not in resp.text


def test_async_functions_are_awaited(host: Host) -> None:
    """``async def`` functions run and their response is returned."""
    resp = requests.get(f"{host.url}/api/hello-async", timeout=5)
    assert resp.status_code == 200
    assert resp.text == "hello from async"


# -- CORS ------------------------------------------------------------------------------


def test_preflight_from_an_allowed_origin_is_answered(host: Host) -> None:
    """OPTIONS with Origin and Access-Control-Request-Method gets 204 and the CORS answers."""
    resp = requests.options(
        f"{host.url}/api/items/1",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-correlation-id",
        },
        timeout=5,
    )
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization, content-type, x-correlation-id"
    assert int(resp.headers["Access-Control-Max-Age"]) > 0


def test_preflight_from_another_origin_gets_no_cors_headers(host: Host) -> None:
    """An origin not in CORS_ALLOWED_ORIGINS gets no Access-Control-* headers at all."""
    resp = requests.options(
        f"{host.url}/api/items/1",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


def test_actual_request_from_allowed_origin_carries_cors_headers(host: Host) -> None:
    """Responses to an allowed origin name it, vary on Origin and expose Location/Retry-After/correlation id."""
    resp = requests.get(f"{host.url}/api/items/3", headers={"Origin": ALLOWED_ORIGIN}, timeout=5)
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Origin" in resp.headers["Vary"]
    exposed = resp.headers["Access-Control-Expose-Headers"]
    assert "Location" in exposed and "Retry-After" in exposed and "x-correlation-id" in exposed


def test_actual_request_from_other_origin_has_no_cors_headers(host: Host) -> None:
    """Responses to an unlisted origin carry no Access-Control-Allow-Origin."""
    resp = requests.get(f"{host.url}/api/items/3", headers={"Origin": "https://evil.example"}, timeout=5)
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


# -- static files ------------------------------------------------------------------------


def test_static_files_are_served_with_their_content_type(host: Host) -> None:
    """Files of the web folder are served at / with a correct Content-Type."""
    resp = requests.get(f"{host.url}/assets/app.js", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert resp.text == "console.log('hi')"


def test_client_routes_fall_back_to_index_html(host: Host) -> None:
    """An unknown path without an extension serves index.html (client-side routing); with one, 404."""
    page = requests.get(f"{host.url}/integrations/settings", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "console" in page.text
    assert requests.get(f"{host.url}/missing.js", timeout=5).status_code == 404


CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
               "connect-src 'self'; frame-src 'none'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'; object-src 'none'")


@pytest.mark.parametrize("path", ["/", "/assets/app.js", "/integrations/settings", "/missing.js"])
def test_every_static_response_carries_the_consoles_security_headers(host: Host, path: str) -> None:
    """Pages, assets, client routes and static 404s all carry the strict CSP, no-referrer and DENY framing."""
    resp = requests.get(f"{host.url}{path}", timeout=5)
    assert resp.headers["Content-Security-Policy"] == CONSOLE_CSP
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_the_console_page_carries_no_looser_policy_of_its_own() -> None:
    """web/index.html has no meta CSP (one looser than the header would only confuse; the header rules)."""
    html = (Path(__file__).resolve().parents[2] / "web" / "index.html").read_text(encoding="utf-8")
    assert 'http-equiv="Content-Security-Policy"' not in html


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"])
def test_static_files_never_escape_the_web_folder(host: Host, path: str) -> None:
    """Directory traversal, raw or percent-encoded, never reads a file outside the folder."""
    conn = http.client.HTTPConnection("127.0.0.1", int(host.url.rsplit(":", 1)[1]), timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert b"outside the web folder" not in body
    assert resp.status in (200, 404)


# -- queues ------------------------------------------------------------------------------


def test_queue_message_is_decoded_and_processed_once(host: Host, azurite: Azurite) -> None:
    """A base64 message reaches the function decoded, with dequeue_count 1, and is deleted after."""
    queue(azurite, "sample-work").send_message(b64('{"hello": "world"}'))
    assert wait_for(lambda: any(p["body"] == '{"hello": "world"}' for p in sample_app.processed))
    seen = next(p for p in sample_app.processed if p["body"] == '{"hello": "world"}')
    assert seen["dequeue_count"] == 1
    assert wait_for(lambda: queue(azurite, "sample-work").get_queue_properties().approximate_message_count == 0)


def test_failing_message_reaches_poison_after_max_dequeue_count(host: Host, azurite: Azurite) -> None:
    """A message that always fails is tried exactly maxDequeueCount (2) times, then moved unchanged to -poison."""
    encoded = b64("poison me")
    queue(azurite, "sample-fail").send_message(encoded)
    poison = queue(azurite, "sample-fail-poison")
    assert wait_for(lambda: poison.get_queue_properties().approximate_message_count == 1, timeout=15)
    assert sample_app.failed_attempts == [1, 2]
    moved = poison.receive_message()
    assert moved is not None
    assert moved.content == encoded
    assert queue(azurite, "sample-fail").get_queue_properties().approximate_message_count == 0


def test_message_that_is_not_base64_goes_straight_to_poison(host: Host, azurite: Azurite) -> None:
    """A message the host cannot base64-decode is never given to the function and lands in -poison."""
    before = len(sample_app.processed)
    queue(azurite, "sample-work").send_message("not base64 at all!")
    poison = queue(azurite, "sample-work-poison")
    assert wait_for(lambda: poison.get_queue_properties().approximate_message_count >= 1)
    assert len(sample_app.processed) == before


def test_queue_output_binding_sends_on_success(host: Host) -> None:
    """A func.Out queue output set by an HTTP function is delivered (and then triggers the worker)."""
    resp = requests.post(f"{host.url}/api/enqueue", data=b"via output binding", timeout=5)
    assert resp.status_code == 202
    assert wait_for(lambda: any(p["body"] == "via output binding" for p in sample_app.processed))


# -- timers ------------------------------------------------------------------------------


def test_timer_fires_on_its_ncrontab_schedule(host: Host) -> None:
    """The %SAMPLE_SCHEDULE% timer (every second) fires repeatedly, on time (not past due)."""
    assert wait_for(lambda: len(sample_app.timer_fires) >= 2, timeout=5)
    assert False in sample_app.timer_fires
