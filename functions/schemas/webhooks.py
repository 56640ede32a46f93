"""Microsoft Graph webhooks (change and lifecycle notifications)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from functions.schemas.common import Query

MAX_VALIDATION_TOKEN_CHARS = 2048


class WebhookQuery(Query):
    """``validationToken`` on the handshake; ``code`` (the function key) and anything Graph echoes are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Length is checked by the handshake (400, not 422): Graph only ever sends short tokens.
    validationToken: Annotated[str, StringConstraints(max_length=64 * 1024)] | None = None


class _GraphModel(BaseModel):
    # Graph adds properties over time; unknown ones are kept out of our hands, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ResourceData(_GraphModel):
    odata_type: str | None = Field(default=None, alias="@odata.type", max_length=256)
    odata_id: str | None = Field(default=None, alias="@odata.id", max_length=2048)
    odata_etag: str | None = Field(default=None, alias="@odata.etag", max_length=512)
    id: str | None = Field(default=None, max_length=512)


class ChangeNotification(_GraphModel):
    subscriptionId: str = Field(max_length=128)
    subscriptionExpirationDateTime: datetime | None = None
    clientState: str | None = Field(default=None, max_length=256)
    changeType: str | None = Field(default=None, max_length=64)
    # Any string: new lifecycle event types are added over time and must not make Graph's
    # whole POST invalid; functions/webhooks.py drops (and counts) the ones it does not know.
    lifecycleEvent: str | None = Field(default=None, max_length=128)
    resource: str | None = Field(default=None, max_length=2048)
    tenantId: str | None = Field(default=None, max_length=64)
    resourceData: ResourceData | None = None


class NotificationBatch(_GraphModel):
    """The body Graph POSTs: ``{"value": [...]}``, possibly several subscriptions' notifications."""

    value: Annotated[list[ChangeNotification], Field(min_length=1, max_length=1000)]
    validationTokens: list[Any] | None = None
