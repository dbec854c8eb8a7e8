"""What the OpenAPI schema says each operation answers (issue #12.5).

Every route declares, with ``responses=``, each error status it can actually return, in
OpenAI's error shape (``ErrorResponse``), and the media types it really sends (SSE beside
JSON for the generation endpoints, Prometheus text for ``/metrics``). FastAPI's default 422
is taken out of the schema (``truthful_openapi``): validation errors are answered with 400
``invalid_value``, never 422. ``tests/test_openapi.py`` runs schemathesis against a live
gateway to keep this true.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from .common import authenticator

Responses = dict[int | str, dict[str, Any]]


class ErrorObject(BaseModel):
    """OpenAI's error object. ``code`` is one of ``boundgate.errors.ErrorCode``, or an
    upstream's own code when its 4xx is passed through."""

    model_config = ConfigDict(extra="forbid", title="Error")
    message: str = Field(description="what went wrong, for people")
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, "
        "rate_limit_error, or server_error"
    )
    param: str | None = Field(description="the parameter at fault, e.g. messages[0].role")
    code: str | None = Field(description="machine-readable code, e.g. invalid_value")


class ErrorResponse(BaseModel):
    """Every error body: ``{"error": {"message", "type", "param", "code"}}``."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorObject


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}

# what each status means on any route; routes add their own cases with ``notes``
_WHEN: dict[int, str] = {
    400: "Invalid request: malformed JSON (`invalid_json`), a schema or value error "
    "(`invalid_value`; `param` names the field)",
    401: "Missing, invalid or revoked API key (`invalid_api_key`), once any key exists",
    403: "The route needs an admin key (`admin_required`)",
    404: "Not found (`not_found`)",
    409: "The `Idempotency-Key` was used before with other parameters (`idempotency_key_reused`)",
    413: "Request body over `server.max_body_bytes` (`request_too_large`)",
    429: "Requests-per-minute (`rate_limit_exceeded`) or daily token budget "
    "(`daily_token_budget_exceeded`) spent",
    502: "Upstream 5xx or unreachable after retries, or an upstream answer without a "
    "`finish_reason` (`upstream_error`)",
    503: "Local model queue full, or the model still loading (`overloaded`)",
    504: "Upstream timed out after retries (`upstream_timeout`)",
}


def errors(*statuses: int, notes: dict[int, str] | None = None) -> Responses:
    """``responses=`` entries for these error statuses, each with ``ErrorResponse``;
    ``notes`` adds a route's own cases to a status's description."""
    out: Responses = {}
    for status in statuses:
        text = _WHEN[status]
        if notes and status in notes:
            text = f"{text}; {notes[status]}"
        entry: dict[str, Any] = {"model": ErrorResponse, "description": text}
        if status in (429, 503):
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


# one server-sent event (before OpenAPI 3.2, the ``schema`` of ``text/event-stream`` describes
# each event, not the whole stream)
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "a chunk as JSON (`chat.completion.chunk` or `text_completion`), "
            'an error as JSON (`{"error": {...}}`), or `[DONE]`',
        },
        "event": {"type": "string"},
    },
}


def json_or_sse(model: type[BaseModel]) -> Responses:
    """The 200 of a generation endpoint: ``model`` as JSON, or server-sent events with
    ``stream``."""
    return {
        200: {
            "model": model,
            "description": "The completion as JSON, or with `stream: true` as server-sent "
            "events (`data: {chunk}` lines, then `data: [DONE]`; an error after the stream "
            'started arrives as a last `data: {"error": {...}}` event)',
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        }
    }


def ok(model: type[BaseModel], description: str = "Successful Response") -> Responses:
    """The 200 of a JSON operation whose handler builds its body itself (the model declares
    it; the tests check the server keeps to it, and the hot path does not validate it)."""
    return {200: {"model": model, "description": description}}


# statuses the generation endpoints can answer (the backend's own failures included)
GENERATION_ERRORS = errors(
    400,
    401,
    404,
    413,
    429,
    502,
    503,
    504,
    notes={
        400: "an unsupported parameter (`unsupported_parameter`), a prompt longer than the "
        "model's context (`context_length_exceeded`), a request larger than the key's whole "
        "daily budget (`invalid_value`); an upstream's own 4xx passes through with its "
        "status and code",
        404: "unknown model (`model_not_found`, `param: model`)",
        429: "or the tenant's novelty budget (`novelty_budget_exhausted`), or the key's daily "
        "reasoning-token budget on reasoning models (`daily_reasoning_budget_exceeded`)",
    },
)


SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`boundgate keys create`). Optional in open local mode, "
        "while no key exists; a request then must name this machine as its Host (else 400 "
        "`untrusted_host`) and carry no other origin's Origin header (else 403 `cross_origin`)",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token named by `server.metrics_token_env`, when it is set",
    },
}


# paths answered whether or not the store can be reached (``server/local.py``): every other
# operation may answer 503 ``store_unavailable`` (PostgreSQL out of reach)
STORELESS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# the body of every error answer declared here: OpenAI's shape
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
STORE_UNAVAILABLE = {
    "description": "The store (PostgreSQL) cannot be reached: `store_unavailable`, with "
    "`Retry-After`",
    "content": ERROR_CONTENT,
}


# what any path may answer, whatever its route: the checks before the routes (``local.py``'s
# open local mode, ``app.py``'s NUL in the path or query)
ANY_PATH_ERRORS = {
    "400": "a NUL in the path or a query parameter (`invalid_value`); in open local mode (no "
    "API key exists), a Host that is not this machine's (`untrusted_host`)",
    "403": "in open local mode (no API key exists), a request from a web page of another "
    "origin (`cross_origin`)",
}


def _declare_any_path_errors(responses: dict[str, Any]) -> None:
    """Add :data:`ANY_PATH_ERRORS` to an operation's ``responses``: to the description of a
    status it declares, or as a status of its own (a docs trial: ``GET /v1/models`` answered
    403 ``cross_origin`` and 400 ``untrusted_host``, which it did not declare)."""
    for status, text in ANY_PATH_ERRORS.items():
        entry = responses.get(status)
        if entry is None:
            responses[status] = {
                "description": text[0].upper() + text[1:],
                "content": ERROR_CONTENT,
            }
        else:
            entry["description"] = f"{entry.get('description', '')}; or {text}"


def truthful_openapi(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Build the schema of ``app`` (its API ``routers``) without FastAPI's 422 answers (the
    gateway never sends one: request validation fails with 400 ``invalid_value``) and without
    the validation-error components only they used; declare the 503 ``store_unavailable``
    every operation but the probes and ``/metrics`` may answer, and the 400 and 403 any path may
    answer (``ANY_PATH_ERRORS``); say which operations take an API key
    (optional: none is needed in open local mode) and that ``/metrics`` may take a token."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            paths = schema.get("paths", {})
            for path, operations in paths.items():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    if path not in STORELESS_PATHS:
                        responses.setdefault("503", STORE_UNAVAILABLE)
                    _declare_any_path_errors(responses)
            for route in (r for router in routers for r in router.routes):
                # the schema names a path without its parameters' convertors ("{id:path}")
                if not isinstance(route, APIRoute) or route.path_format not in paths:
                    continue
                scheme = "apiKey" if authenticator(route.dependant) else None
                if route.path == "/metrics":
                    scheme = "metricsToken"
                for method in route.methods if scheme and route.methods else ():
                    operation = paths[route.path_format].get(method.lower())
                    if operation is not None:
                        operation["security"] = [{scheme: []}, {}]
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            components["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
