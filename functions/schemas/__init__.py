"""Pydantic models of the HTTP contract (docs/api.md): what routes validate and what OpenAPI publishes.

One model per request body, query string, path and response. Request models refuse
unknown fields and are strict about JSON types (no "5" for 5, no 1700000000 for a
date-time); field names are the contract's camelCase. The OpenAPI document is built
from these same classes (``functions/openapi.py``), so the two cannot drift.
"""
