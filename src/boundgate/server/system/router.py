"""Models, health, metrics and the admin views of the ledger."""

from __future__ import annotations

import contextlib
import hmac
import logging
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...backends.base import Backend
from ...errors import AuthenticationError, ErrorCode
from ...gateway import EMBEDDING_MODEL, Gateway, RequestContext
from ...reuse.embedder import MAX_TOKENS
from ...routing.ladder import Router
from ...store import StoreUnavailableError
from ..common import (
    StrictJSONRoute,
    admin_context,
    context,
    gateway_of,
    refuse_unknown_query,
    scheme_and_credentials,
)
from ..openapi import ErrorResponse, errors, ok
from .protocol import Model, ModelList

router = APIRouter(route_class=StrictJSONRoute)
log = logging.getLogger("boundgate.server")


@router.get(
    "/v1/models",
    tags=["models"],
    response_model=None,
    responses={**ok(ModelList), **errors(401)},
)
async def list_models(
    request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    """The models, each with boundgate's details: backend, version, whether it reasons, and
    its energy profile (measured on this host, or the labelled per-token estimate); then the
    auto names (model ladders) and, with reuse on, the embeddings model (``dimensions``):
    ``Gateway.model_ids``, what a 404 ``model_not_found`` names as available."""
    gw = gateway_of(request)
    created = int(request.app.state.started)
    await gw.profiles.refresh()  # a profile measured while serving shows at once
    return {"object": "list", "data": [_model(gw, m, created) for m in gw.model_ids()]}


def _model(gw: Gateway, model_id: str, created: int) -> dict[str, Any]:
    """The model object of a name (an id ``GET /v1/models`` lists, an alias, or the
    embedder's own name): an auto name's, the embeddings model's, or a backend's. Raises
    ``ModelNotFoundError`` (404) for an unknown name."""
    if gw.router is not None and model_id in gw.router.model_names():
        return _listed(model_id, created, _auto_description(gw.router, model_id))
    if gw.reuse is not None and model_id in (EMBEDDING_MODEL, gw.reuse.embedder.name):
        return _listed(EMBEDDING_MODEL, created, _embedding_description(gw))
    b = gw.resolve(model_id)
    return _backend_model(gw, b.name, b, created)


def _listed(model_id: str, created: int, details: dict[str, Any]) -> dict[str, Any]:
    """A model object of boundgate's own (an auto name, the embeddings model)."""
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "boundgate",
        "boundgate": details,
    }


def _backend_model(gw: Gateway, name: str, b: Backend, created: int) -> dict[str, Any]:
    """A backend's model object, with boundgate's details (``describe``, whether it is the
    default, its energy profile)."""
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "upstream" if b.remote else "boundgate",
        "boundgate": {
            **b.describe(),
            "default": name == gw.default_model,
            "energy_profile": gw.profiles.describe(name),
        },
    }


def _embedding_description(gw: Gateway) -> dict[str, Any]:
    """The model ``/v1/embeddings`` serves: the reuse layer's embedder (no energy profile:
    each request is metered as it runs)."""
    assert gw.reuse is not None
    embedder = gw.reuse.embedder
    return {
        "id": EMBEDDING_MODEL,
        "backend": "onnx",
        "params_b": embedder.params_b,
        "context_length": MAX_TOKENS,
        "version": embedder.name,
        "dimensions": embedder.dim,
        "default": False,
    }


def _auto_description(router: Router, name: str) -> dict[str, Any]:
    """What an auto model name routes over: its ladders (rungs smallest first)."""
    return {"id": name, "backend": "router", "ladders": router.ladders_of(name), "default": False}


@router.get(
    "/v1/models/{model_id:path}",
    tags=["models"],
    response_model=None,
    responses={**ok(Model), **errors(401, 404, notes={404: "unknown model (`model_not_found`)"})},
)
async def get_model(
    model_id: str, request: Request, ctx: Annotated[RequestContext, Depends(context)]
) -> dict[str, Any]:
    """One model, as ``GET /v1/models`` lists it (with boundgate's details); 404
    ``model_not_found`` for an unknown name. A name may hold "/" ("org/model", as upstreams
    name theirs), as it may in a request's ``model``."""
    if not model_id:  # "/v1/models/": a path, not a model's name
        raise StarletteHTTPException(404)
    gw = gateway_of(request)
    await gw.profiles.refresh()
    return _model(gw, model_id, int(request.app.state.started))


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


class Readiness(BaseModel):
    status: Literal["ready", "starting", "store_unreachable"]
    models: dict[str, bool]
    store: Literal["reachable", "unreachable"] | None = None  # None: not asked (starting)


@router.get(
    "/readyz",
    tags=["operations"],
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Starting (not every model is loaded), or the store (PostgreSQL) "
            "cannot be reached: `status` says which",
        }
    },
)
async def readyz(request: Request) -> Response:
    """Readiness: started (the store open, every model loaded) and the store answering now
    (``Store.ping``, bounded by ``store.connect_timeout_s``). A load balancer stops sending
    traffic to a replica whose store is out of reach, and sends it again once it answers;
    liveness (``/healthz``) stays 200 meanwhile: the process is fine, restarting it would not
    bring the database back."""
    gw = gateway_of(request)
    models = {name: b.ready for name, b in gw.backends.items()}
    if not (getattr(request.app.state, "ready", False) and all(models.values())):
        return _readiness("starting", models, None)
    try:
        await gw.store.ping()
    except StoreUnavailableError as exc:
        log.warning("readyz: the store cannot be used: %s", exc)
        return _readiness("store_unreachable", models, "unreachable")
    return _readiness("ready", models, "reachable")


def _readiness(
    status: Literal["ready", "starting", "store_unreachable"],
    models: dict[str, bool],
    store: Literal["reachable", "unreachable"] | None,
) -> JSONResponse:
    body = Readiness(status=status, models=models, store=store)
    return JSONResponse(body.model_dump(), status_code=200 if status == "ready" else 503)


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {
            "model": ErrorResponse,
            "description": "With `server.metrics_token_env` set: no or a wrong bearer token "
            "(`invalid_metrics_token`)",
        },
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition. With ``server.metrics_token_env`` set, it needs
    ``Authorization: Bearer <token>`` (401 otherwise)."""
    token = getattr(request.app.state, "metrics_token", None)
    if token:
        scheme, given = scheme_and_credentials(request.headers.get("authorization", ""))
        # the scheme's name is case-insensitive (RFC 9110 §11.1), as on /v1
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise AuthenticationError(
                "/metrics needs the bearer token named by server.metrics_token_env",
                code=ErrorCode.INVALID_METRICS_TOKEN,
            )
    gw = gateway_of(request)
    if not gw.store.out_of_reach():  # an outage: the gauges keep their last values
        with contextlib.suppress(Exception):  # store not open yet (start-up): gauges report 0
            await gw.metrics.refresh_state_counts()
    return Response(
        gw.metrics.render(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


@router.get("/v1/boundgate/report", tags=["admin"], responses=errors(400, 401, 403))
async def report(
    request: Request,
    ctx: Annotated[RequestContext, Depends(admin_context)],
    since: Annotated[float | None, Query(description="unix seconds", allow_inf_nan=False)] = None,
) -> dict[str, Any]:
    """Totals per tenant and model (admin)."""
    refuse_unknown_query(request, ("since",))
    rows = await gateway_of(request).store.report(since)
    return {"object": "list", "data": [asdict(r) for r in rows]}


@router.get("/v1/boundgate/ledger", tags=["admin"], responses=errors(400, 401, 403))
async def ledger(
    request: Request,
    ctx: Annotated[RequestContext, Depends(admin_context)],
    since: Annotated[float | None, Query(description="unix seconds", allow_inf_nan=False)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """Ledger rows, newest first (admin)."""
    refuse_unknown_query(request, ("since", "limit"))
    rows = await gateway_of(request).store.ledger(since, limit)
    return {"object": "list", "data": [asdict(r) for r in rows]}
