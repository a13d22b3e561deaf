"""Domain exceptions and their single mapping to RFC 9457 problem details.

Every error the API returns is ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and a stable snake_case ``code``; 422 adds
``errors``. Services raise :class:`DomainError` subclasses; this
module is the only place that turns exceptions into HTTP responses.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Base of the ``type`` URIs; ``about:blank`` semantics are not used so that
#: each ``code`` has its own stable identifier (RFC 9457 §3.1.1).
PROBLEM_TYPE_BASE = "https://storefront.example/problems/"


class DomainError(Exception):
    """Base of the errors services raise; mapped to problem+json by :func:`install_error_handlers`.

    Subclasses set ``status`` (HTTP status code), ``code`` (stable snake_case
    identifier) and ``title`` (short human summary); instances carry ``detail``
    and optional ``extra`` members that are added to the problem object.
    """

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extra = extra


class ForbiddenError(DomainError):
    """An authenticated caller lacks the right for this call (not an admin, another user's resource): 403."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFoundError(DomainError):
    """A resource does not exist (or is soft-deleted): 404."""

    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(DomainError):
    """The request conflicts with the resource's current state: 409."""

    status = 409
    code = "conflict"
    title = "Conflict"


class UnprocessableError(DomainError):
    """Syntactically valid input that the service refuses: 422 (RFC 9110 §15.5.21)."""

    status = 422
    code = "validation_error"
    title = "Unprocessable content"

    def __init__(self, detail: str, *, field: tuple[str | int, ...] = (), **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.extra.setdefault("errors", [{"loc": list(field), "msg": detail, "type": "value_error"}])


class ServiceUnavailableError(DomainError):
    """A dependency (the database) cannot be reached: 503."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot be reached (outage, fail-over, network): 503 ``database_unavailable``.

    Raised by :func:`backend_app.core.db.run_in_transaction`; the driver's own
    connection errors raised anywhere else are mapped to the same problem by
    :func:`install_error_handlers`. Carries ``Retry-After: 1``.
    """

    code = "database_unavailable"
    title = "Database unavailable"

    def __init__(self, detail: str = "The database is unreachable; retry shortly.") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class TransactionConflictError(ServiceUnavailableError):
    """A transaction kept losing write conflicts until its retry budget ran out: 503 ``write_conflict``.

    E.g. the documents it writes are held by a transaction that a crashed
    process left open, until the server reaps it. Retry later.
    """

    code = "write_conflict"
    title = "Write conflict"

    def __init__(self, detail: str = "The data is busy with a concurrent change; retry shortly.") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class ValidationIssue(BaseModel):
    """One entry of a 422 problem's ``errors`` list: a field path and a message."""

    loc: list[str | int] = Field(description="Path to the offending field, e.g. ['body', 'items', 0, 'qty'].")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details object, as every error response of this API."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[ValidationIssue] | None = None


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build an ``application/problem+json`` response.

    Args:
        status: HTTP status code.
        code: stable snake_case identifier, also the last segment of ``type``.
        detail: human-readable explanation of this occurrence.
        title: short summary; defaults to the status code's reason phrase.
        instance: the request path, when known.
        headers: extra response headers (e.g. ``WWW-Authenticate``).
        extra: extension members (RFC 9457 §3.2), e.g. ``errors``.
    """
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def _code_for_status(status: int) -> str:
    return _HTTP_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def _validation_issues(exc: RequestValidationError) -> list[dict[str, Any]]:
    issues = []
    for err in exc.errors():
        issues.append({"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")})
    return issues


async def _domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).description
    if status == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    elif status == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(
        status=status,
        code=_code_for_status(status),
        detail=detail,
        instance=request.url.path,
        headers=getattr(exc, "headers", None),
    )


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = _validation_issues(exc)
    first = issues[0] if issues else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem_response(
        status=422,
        code="validation_error",
        title="Unprocessable content",
        detail=f"{where}: {first['msg']}" if where else str(first["msg"]),
        instance=request.url.path,
        errors=issues,
    )


async def _database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """A driver ``ConnectionFailure`` (server selection timeout, lost connection, network timeout) → 503."""
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return await _domain_error_handler(request, DatabaseUnavailableError())


async def unhandled_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The 500 problem for an exception nothing else handled, never revealing a traceback.

    The traceback goes to the log only.
    """
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="The server could not complete the request.",
        instance=request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app`` (the one exception mapping).

    Covers :class:`DomainError`, Starlette/FastAPI ``HTTPException`` (404 for
    unknown routes, 405, 413, ...), request validation (422 with ``errors``), the
    driver's ``ConnectionFailure`` (503 ``database_unavailable``) and any
    other exception (500, no traceback or driver text in the body). Also makes
    the app's OpenAPI document declare the problem responses every operation
    can produce (:func:`complete_problem_responses`).
    """
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    # ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout are ConnectionFailures (503, never 500).
    app.add_exception_handler(ConnectionFailure, _database_unavailable_handler)
    app.add_exception_handler(Exception, unhandled_error_response)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete_problem_responses(generate_openapi())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_response_spec(status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or HTTPStatus(status).phrase,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem+json bodies for ``statuses``.

    Used on every route so the published schema lists its error responses.
    Only ``application/problem+json`` is declared, the one media
    type errors are sent with; the ``Problem`` schema is added to the
    document's components by :func:`complete_problem_responses`.
    """
    return {status: _problem_response_spec(status) for status in statuses}


#: Problems any operation can answer with, whatever its route declares.
_ALWAYS = {
    429: "Too many requests: the caller's rate limit is exhausted (see Retry-After).",
    500: "Internal server error.",
    503: "The database is unreachable (`database_unavailable`); retry shortly.",
}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def complete_problem_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document (as FastAPI generated it) declare the problems the middleware can send.

    For every operation: ``429`` and ``500``; ``401`` when it has a security
    requirement; ``400`` (unreadable body) and ``413`` when it takes a request body; and ``422`` as a
    problem (replacing FastAPI's default ``HTTPValidationError`` body, which
    this API never sends). Adds the ``Problem`` and ``ValidationIssue``
    schemas to ``components``. Modifies and returns ``schema``.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}:
                continue
            responses = operation.setdefault("responses", {})
            wanted = dict(_ALWAYS)
            if operation.get("security"):
                wanted[401] = "Not authenticated, or the bearer token is invalid."
            if "requestBody" in operation:
                wanted[400] = "The request body could not be read (e.g. not valid UTF-8)."
                wanted[413] = "The request body is larger than the configured limit."
            if operation.get("parameters") or "requestBody" in operation:
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]
                wanted[422] = "The request is invalid (see `errors`)."
            for status, description in wanted.items():
                responses.setdefault(str(status), _problem_response_spec(status, description))
    if "/HTTPValidationError'" not in str(schema.get("paths", {})):
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            components.pop(name, None)
    return schema
