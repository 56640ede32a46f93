"""The function app indexes the way the Functions host will index it."""

from __future__ import annotations

import json

import function_app


def test_app_indexes_without_duplicate_names_or_routes() -> None:
    """get_functions() succeeds (bindings valid) and names and (method, route) pairs are unique."""
    function_app.app.functions_bindings = {}  # index afresh, as the Functions worker does once per process
    functions = function_app.app.get_functions()
    names = [f.get_function_name() for f in functions]
    assert "health" in names
    assert len(names) == len(set(names))
    routes = []
    for f in functions:
        for raw in f.get_raw_bindings():
            binding = json.loads(raw)
            if binding.get("type") == "httpTrigger":
                for method in binding.get("methods") or ["*"]:
                    routes.append((method.upper(), binding["route"].lower()))
    assert len(routes) == len(set(routes))
