"""GET /api/openapi.json: the OpenAPI 3.1 document of this contract, built from the route registry."""

from __future__ import annotations

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, RequestContext, endpoint
from functions.http import json_response

bp = func.Blueprint()
M = Models("functions.schemas.meta")


@endpoint(bp, "GET", "openapi.json", auth=Auth.ANONYMOUS, response=M.OpenApiDocument,
          summary="This API's OpenAPI 3.1 document", tags=("meta",))
def openapi_json(ctx: RequestContext[None]) -> func.HttpResponse:
    """Generated from the same models the routes validate with, so it cannot drift."""
    from functions.openapi import openapi_document

    return json_response(openapi_document(), 200, {"Cache-Control": "public, max-age=300"})
