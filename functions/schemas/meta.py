"""Health, errors and the OpenAPI document itself."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    details: dict[str, Any] | None = None


class Error(BaseModel):
    """Every non-2xx answer: ``{"error": {"code", "message", "details"?}}``."""

    model_config = ConfigDict(frozen=True)

    error: ErrorDetail


class Health(BaseModel):
    """Liveness (``/api/health``: ``checks`` is ``{"process": "ok"}``, nothing else is called) or readiness
    (``/api/health/ready``: ``tables``, ``queues`` and, when configured, ``keyVault``, each ``ok`` or the failing
    check's code; the result is at most a few seconds old)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "unhealthy"]
    checks: dict[str, str]


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document (described loosely: it describes itself)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    openapi: str
