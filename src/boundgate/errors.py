"""Every error the API can return, rendered in OpenAI's error shape.

The tree (status in brackets)::

    BoundgateError [500]
    ├── InvalidRequestError [400]          bad JSON, schema, parameter values
    │   └── ContextLengthExceededError [400]
    ├── AuthenticationError [401]
    ├── PermissionDeniedError [403]
    ├── NotFoundError [404]
    │   └── ModelNotFoundError [404]
    ├── ConflictError [409]                an Idempotency-Key reused with other parameters
    ├── PayloadTooLargeError [413]
    ├── RateLimitError [429]               requests per minute, daily (reasoning) tokens
    ├── UpstreamError [502]                upstream 5xx / connection failure after retries,
    │                                      an upstream's 404 (the model configured unknown)
    ├── ServiceUnavailableError [503]      local model queue full, not ready, the store
    │                                      (PostgreSQL) unreachable
    ├── UpstreamTimeoutError [504]
    └── NotStoredError [504]               Cache-Control: only-if-cached, nothing stored fits

Clients see ``{"error": {"message", "type", "param", "code"}}``; the gateway never
lets a traceback out (unexpected exceptions become a generic 500 in the same shape).
Errors that tell the client when to come back carry ``retry_after`` (seconds).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every ``code`` the gateway sets in an error body, declared once (docs/api.md lists
    each; a test checks it). An upstream's own 4xx passes through with the upstream's code."""

    INVALID_HTTP = "invalid_http"  # 400: a request the HTTP/1.1 parser cannot read
    INVALID_JSON = "invalid_json"  # 400: malformed JSON, or not Unicode text
    INVALID_VALUE = "invalid_value"  # 400: schema or value errors
    MISSING_REQUIRED_PARAMETER = "missing_required_parameter"  # 400: OpenAI's code for it
    UNSUPPORTED_PARAMETER = "unsupported_parameter"  # 400
    UNKNOWN_PARAMETER = "unknown_parameter"  # 400: a misspelled parameter name
    UNTRUSTED_HOST = "untrusted_host"  # 400: open local mode, a Host not this machine's
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"  # 400
    NOT_A_REUSE = "not_a_reuse"  # 400: feedback on an answer that was not reused
    INVALID_API_KEY = "invalid_api_key"  # 401
    INVALID_METRICS_TOKEN = "invalid_metrics_token"  # 401: /metrics with its token set
    ADMIN_REQUIRED = "admin_required"  # 403
    CROSS_ORIGIN = "cross_origin"  # 403: open local mode, a web page of another origin
    NOT_FOUND = "not_found"  # 404
    MODEL_NOT_FOUND = "model_not_found"  # 404
    REUSE_DISABLED = "reuse_disabled"  # 404: reuse routes while reuse is off
    METHOD_NOT_ALLOWED = "http_405"  # 405
    REQUEST_TIMEOUT = "request_timeout"  # 408: the body's next part did not come in time
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"  # 409: the key made another request's
    REQUEST_TOO_LARGE = "request_too_large"  # 413
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"  # 429: requests per minute
    DAILY_TOKEN_BUDGET_EXCEEDED = "daily_token_budget_exceeded"  # 429
    NOVELTY_BUDGET_EXHAUSTED = "novelty_budget_exhausted"  # 429
    DAILY_REASONING_BUDGET_EXCEEDED = "daily_reasoning_budget_exceeded"  # 429
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"  # 429: the upstream's, after retries
    INTERNAL_ERROR = "internal_error"  # 500
    SIGNING_KEY_MISMATCH = "signing_key_mismatch"  # 500: a replica signs with another key
    UPSTREAM_ERROR = "upstream_error"  # 502
    OVERLOADED = "overloaded"  # 503
    STORE_UNAVAILABLE = "store_unavailable"  # 503: the store (PostgreSQL) cannot be reached
    SHUTTING_DOWN = "server_shutting_down"  # 503: stopped by the server's shutdown
    UPSTREAM_TIMEOUT = "upstream_timeout"  # 504
    NOT_STORED = "not_stored"  # 504: Cache-Control only-if-cached, and no stored answer fits


SHOWN_NAME_CHARS = 100  # shown(): how much of a name the client sent an error quotes
MESSAGE_MAX_CHARS = 2000  # the longest error message sent (BoundgateError.to_dict)


def shown(name: object) -> str:
    """``name`` as an error message quotes what the client sent: at most
    ``SHOWN_NAME_CHARS`` characters, then "…" (a 100,000-character model name was echoed
    whole)."""
    text = str(name)
    return text if len(text) <= SHOWN_NAME_CHARS else text[:SHOWN_NAME_CHARS] + "…"


class BoundgateError(Exception):
    status_code = 500
    type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after
        self.recorded = False  # set once a ledger row has been written for it

    @property
    def permanent(self) -> bool:
        """Whether the same request can never succeed, whenever it is sent again: a refusal of
        the request itself, a 4xx (e.g. a 400 ``invalid_value`` for a worst case above a whole
        daily budget, a 401 for a revoked key, a 404 for a model gone), except those that say
        to try again later (408, 409, 429: the limits allow it once their window has moved).
        A 5xx is not (the backend may recover). Background work drops what is refused for
        good instead of retrying it (``scheduler/runner.py``)."""
        return 400 <= self.status_code < 500 and self.status_code not in (408, 409, 429)

    def to_dict(self) -> dict[str, Any]:
        """The body in OpenAI's shape; a message longer than ``MESSAGE_MAX_CHARS`` is cut
        there (a value the client sent, quoted whole, made 100 KB errors: a re-check)."""
        message = self.message
        if len(message) > MESSAGE_MAX_CHARS:
            message = message[:MESSAGE_MAX_CHARS] + "…"
        return {
            "error": {
                "message": message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}


class InvalidRequestError(BoundgateError):
    status_code = 400
    type = "invalid_request_error"
    # a value the request may not carry, unless a narrower code says more (docs/api.md)
    default_code: str | None = ErrorCode.INVALID_VALUE


class ContextLengthExceededError(InvalidRequestError):
    default_code: str | None = ErrorCode.CONTEXT_LENGTH_EXCEEDED


class AuthenticationError(BoundgateError):
    status_code = 401
    type = "authentication_error"
    default_code: str | None = ErrorCode.INVALID_API_KEY

    def headers(self) -> dict[str, str]:
        # a 401 names the scheme that would succeed (RFC 9110 §11.6.1)
        return {**super().headers(), "WWW-Authenticate": 'Bearer realm="boundgate"'}


class PermissionDeniedError(BoundgateError):
    status_code = 403
    type = "permission_error"
    default_code: str | None = ErrorCode.ADMIN_REQUIRED


class NotFoundError(BoundgateError):
    status_code = 404
    type = "invalid_request_error"
    default_code: str | None = ErrorCode.NOT_FOUND


class ModelNotFoundError(NotFoundError):
    default_code: str | None = ErrorCode.MODEL_NOT_FOUND


class ConflictError(BoundgateError):
    status_code = 409
    type = "invalid_request_error"
    default_code: str | None = ErrorCode.IDEMPOTENCY_KEY_REUSED

    def headers(self) -> dict[str, str]:
        # the OpenAI SDKs retry a 409 unless told not to (``x-should-retry``): this one says
        # the same request can never succeed (a trial: 3 requests and 1.3 s before the
        # caller saw it)
        return {**super().headers(), "x-should-retry": "false"}


class RequestTimeoutError(BoundgateError):
    """408: the request body stopped arriving; the connection is closed with the answer (its
    unread rest cannot be told from the next request)."""

    status_code = 408
    type = "invalid_request_error"
    default_code: str | None = ErrorCode.REQUEST_TIMEOUT

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "connection": "close"}


class PayloadTooLargeError(BoundgateError):
    status_code = 413
    type = "invalid_request_error"
    default_code: str | None = ErrorCode.REQUEST_TOO_LARGE


class RateLimitError(BoundgateError):
    status_code = 429
    type = "rate_limit_error"
    default_code: str | None = ErrorCode.RATE_LIMIT_EXCEEDED


class UpstreamError(BoundgateError):
    status_code = 502
    type = "server_error"  # OpenAI's type for failures on its side
    default_code: str | None = ErrorCode.UPSTREAM_ERROR


class UpstreamRateLimitError(UpstreamError):
    """The upstream still answered 429 once its retries were spent: a 429 to the client with
    the upstream's ``Retry-After`` (its rate limit, not the key's), as OpenAI-compatible
    clients expect to back off on; an upstream failure to the gateway's own handling (not
    permanent: background work tries again)."""

    status_code = 429
    type = "rate_limit_error"
    default_code: str | None = ErrorCode.UPSTREAM_RATE_LIMITED


class ServiceUnavailableError(BoundgateError):
    status_code = 503
    type = "server_error"
    default_code: str | None = ErrorCode.OVERLOADED


class UpstreamTimeoutError(BoundgateError):
    status_code = 504
    type = "server_error"
    default_code: str | None = ErrorCode.UPSTREAM_TIMEOUT


class NotStoredError(BoundgateError):
    """``Cache-Control: only-if-cached`` and no stored answer the request could have received:
    504, as RFC 9111 §5.2.1.7 says a cache answers then; the model is not run."""

    status_code = 504
    type = "server_error"  # as every 5xx (docs/api.md)
    default_code: str | None = ErrorCode.NOT_STORED

    def __init__(
        self, message: str, *, param: str | None = None, reuse: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, param=param)
        # the lookup's reuse headers (``x-boundgate-reuse``, ``-veto``, the scores): why no
        # stored answer fitted, as a request without only-if-cached is told (a new user's
        # 504 did not say that a look-alike was vetoed)
        self.reuse = reuse or {}

    def headers(self) -> dict[str, str]:
        # the OpenAI SDKs retry every 5xx unless told not to: an SDK trial's one miss became
        # three requests and 1.4 s of back-off, and nothing is stored the sooner for it
        return {**super().headers(), **self.reuse, "x-should-retry": "false"}


class UpstreamClientError(BoundgateError):
    """A 4xx from the upstream (but a 404: an :class:`UpstreamError`), passed through with
    its status and body."""

    type = "invalid_request_error"

    def __init__(self, status_code: int, body: dict[str, Any] | None, message: str) -> None:
        err = (body or {}).get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        said = err.get("message")
        super().__init__(
            said if isinstance(said, str) and said.strip() else message,
            param=_string_or_none(err.get("param")),
            code=_string_or_none(err.get("code")),
        )
        self.status_code = status_code
        self.type = _string_or_none(err.get("type")) or self.type


def _string_or_none(value: Any) -> str | None:
    """An upstream error's ``param``, ``code`` or ``type`` as OpenAI's shape has it, a string
    or null: a number in words, anything else (an object, a list) none. A re-check's
    upstream answered ``"code": {"x": 1}``: passed through, the ledger could not store it and
    the client got a 500; ``"type": 5`` reached the client as a number."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
