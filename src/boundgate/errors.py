"""Every error the API can return, rendered in OpenAI's error shape.

The tree (status in brackets)::

    BoundgateError [500]
    ├── InvalidRequestError [400]          bad JSON, schema, parameter values
    │   └── ContextLengthExceededError [400]
    ├── AuthenticationError [401]
    ├── PermissionDeniedError [403]
    ├── NotFoundError [404]
    │   └── ModelNotFoundError [404]
    ├── PayloadTooLargeError [413]
    ├── RateLimitError [429]               requests per minute, daily tokens
    ├── UpstreamError [502]                upstream 5xx / connection failure after retries
    ├── ServiceUnavailableError [503]      local model queue full, not ready
    └── UpstreamTimeoutError [504]

Clients see ``{"error": {"message", "type", "param", "code"}}``; the gateway never
lets a traceback out (unexpected exceptions become a generic 500 in the same shape).
Errors that tell the client when to come back carry ``retry_after`` (seconds).
"""

from __future__ import annotations

from typing import Any


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
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


class ContextLengthExceededError(InvalidRequestError):
    default_code = "context_length_exceeded"


class AuthenticationError(BoundgateError):
    status_code = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(BoundgateError):
    status_code = 403
    type = "permission_error"
    default_code = "admin_required"


class NotFoundError(BoundgateError):
    status_code = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PayloadTooLargeError(BoundgateError):
    status_code = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(BoundgateError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamError(BoundgateError):
    status_code = 502
    type = "upstream_error"
    default_code = "upstream_error"


class ServiceUnavailableError(BoundgateError):
    status_code = 503
    type = "server_error"
    default_code = "overloaded"


class UpstreamTimeoutError(BoundgateError):
    status_code = 504
    type = "upstream_error"
    default_code = "upstream_timeout"


class UpstreamClientError(BoundgateError):
    """A 4xx from the upstream, passed through with its status and body."""

    type = "invalid_request_error"

    def __init__(self, status_code: int, body: dict[str, Any] | None, message: str) -> None:
        err = (body or {}).get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        super().__init__(
            str(err.get("message") or message),
            param=err.get("param"),
            code=err.get("code"),
        )
        self.status_code = status_code
        self.type = str(err.get("type") or self.type)
