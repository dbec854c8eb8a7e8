"""The request pipeline, with no HTTP in it.

For every request: pick the backend, admit it against the tenant's budgets, run it inside a
meter, turn energy into carbon for the configured grid zone, write the ledger row (committed
before the caller may answer the client), and settle the budget. Errors and cancellations get
a ledger row too. The HTTP layer (``server/``) only translates shapes.

``pipeline.py`` (``Gateway``: its entry points, ``complete`` and ``stream``) and its parts,
built on each other over ``state.py``'s ``GatewayState``: ``admission.py`` (defaults, the
limits and the budgets' holds), ``metering.py`` (energy, write-ahead notes, error rows),
``reusing.py`` (lookup, coalescing, a hit's commit, remembering), ``routed.py`` (its
``model: "auto"`` side) and ``embeddings.py`` (``embed``); ``context.py`` (the request-scoped
types).
"""

from ..settings import EMBEDDING_MODEL
from .context import (
    Finished,
    RequestContext,
    Result,
    estimated_prompt_tokens,
    listed_models,
    new_request_id,
    refuse_over_context,
)
from .pipeline import Gateway

__all__ = [
    "EMBEDDING_MODEL",
    "Finished",
    "Gateway",
    "RequestContext",
    "Result",
    "estimated_prompt_tokens",
    "listed_models",
    "new_request_id",
    "refuse_over_context",
]
