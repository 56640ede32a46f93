"""A tiny FunctionApp used only by the local host tests: one function per behaviour under test."""

from __future__ import annotations

import json
import threading
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# What the functions saw, for the tests to read (the host runs them in this process).
processed: list[dict[str, Any]] = []
failed_attempts: list[int] = []
timer_fires: list[bool] = []
lock = threading.Lock()


@app.route(route="items/{id:int}/{name?}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    """Echo what the host handed over: method, route params, query, one header, body."""
    body = {
        "method": req.method,
        "route": dict(req.route_params),
        "query": dict(req.params),
        "header": req.headers.get("x-sample"),
        "body": req.get_body().decode("utf-8"),
        "url": req.url,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json", headers={"x-correlation-id": "c1"})


@app.route(route="items/special", methods=["GET"])
def special(req: func.HttpRequest) -> func.HttpResponse:
    """A literal route that must win over items/{id} style templates."""
    return func.HttpResponse("special")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    """Always raises, with a message that must not reach the caller."""
    raise RuntimeError("secret-internal-detail")


@app.route(route="hello-async", methods=["GET"])
async def hello_async(req: func.HttpRequest) -> func.HttpResponse:
    """An async function, run by the host with asyncio."""
    return func.HttpResponse("hello from async")


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    """Puts the request body on the work queue through an output binding."""
    out.set(req.get_body().decode("utf-8"))
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    """Records each message it is given."""
    with lock:
        processed.append({"body": msg.get_body().decode("utf-8"), "dequeue_count": msg.dequeue_count, "id": msg.id})


@app.queue_trigger(arg_name="msg", queue_name="sample-fail", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    """Fails every time, recording the attempt's dequeue count."""
    with lock:
        failed_attempts.append(msg.dequeue_count)
    raise ValueError("cannot handle this message")


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    """Records each firing."""
    with lock:
        timer_fires.append(timer.past_due)
