"""Declaring an endpoint, and the work every view shares.

``endpoint`` registers a view together with what the OpenAPI document needs
(summary, roles, request schema, query parameters, responses) and does the work
every view shares: authenticate, authorize, read and validate the JSON body.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, current_app, g, jsonify, request

from app.edges.console import sessions
from app.platform import auth
from app.platform.db import get_db, normalize_time
from app.platform.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType, field_error
from app.platform.schemas import catalogue, parse_json

ALL_ROLES = auth.ROLES
READERS = ("admin", "analyst", "channel")


@dataclass(frozen=True)
class Param:
    """A query parameter: how it is parsed and checked, and what the OpenAPI document says."""

    name: str
    description: str
    type: str = "string"
    required: bool = False
    repeated: bool = False
    enum: tuple[str, ...] | None = None
    format: str | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Spec:
    """What one route does, who may call it, and what it takes and returns."""

    summary: str
    roles: tuple[str, ...] | None  # None: no authentication
    tag: str
    body: str | None = None
    query: tuple[Param, ...] = ()
    responses: dict[int, str] = field(default_factory=dict)
    response_schema: str | None = None
    check_body: bool = True
    optional_body: bool = False


def endpoint(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    summary: str,
    roles: tuple[str, ...] | None,
    body: str | None = None,
    query: tuple[Param, ...] = (),
    responses: dict[int, str] | None = None,
    response_schema: str | None = None,
    check_body: bool = True,
    optional_body: bool = False,
) -> Callable:
    """Register a view on ``bp`` with its spec; the view gets ``body=`` when a schema is named.

    ``check_body=False`` hands the view the parsed JSON unchecked, for views that
    validate it themselves with a richer validator (rulesets). ``optional_body=True``
    (actions whose fields all have defaults): no body at all counts as ``{}``.
    """
    spec = Spec(
        summary=summary,
        roles=roles,
        tag=bp.name,
        body=body,
        query=query,
        responses=responses or {200: "OK"},
        response_schema=response_schema,
        check_body=check_body,
        optional_body=optional_body,
    )

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(**kwargs):
            check_path(kwargs)
            if roles is not None:
                principal = caller()
                auth.authorize(principal, roles)
                g.principal = principal
            if body is not None:
                if optional_body and _no_body():
                    kwargs["body"] = {}
                else:
                    kwargs["body"] = read_body(body if check_body else None)
            return view(**kwargs)

        wrapper.spec = spec
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
        return wrapper

    return decorate


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def caller() -> auth.Principal:
    """Who sent the request: the bearer key's principal, or, from the console (no
    Authorization header, a session cookie), the session's, whose changes must carry
    the session's CSRF token."""
    header = request.headers.get("Authorization")
    token = request.cookies.get(sessions.COOKIE) if header is None else None
    if not token:
        return auth.authenticate(get_db(), header)
    principal, csrf = sessions.session_of(get_db(), token)
    if request.method not in SAFE_METHODS:
        sessions.check_csrf(csrf, request.headers.get(sessions.CSRF_HEADER))
    return principal


# The documented pattern of every id (common.schema.json#/$defs/id), and the widest
# integer a path or query takes.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
MAX_PARAM_INTEGER = 2**31 - 1


def check_path(values: dict) -> None:
    """422 for a path id that breaks the id pattern, or a number out of range, before
    anything reads or stores it: such an id could never be referenced again."""
    problems = []
    for name, value in values.items():
        if isinstance(value, str) and not ID.fullmatch(value):
            problems.append(
                field_error(
                    (name,),
                    "must be 1 to 64 letters, digits and . _ : -, starting with a letter or digit",
                )
            )
        elif isinstance(value, int) and not 0 <= value <= MAX_PARAM_INTEGER:
            problems.append(field_error((name,), f"must be at most {MAX_PARAM_INTEGER}"))
    if problems:
        raise InvalidInput(problems, "the path has invalid parameters")


def _no_body() -> bool:
    """Whether the request came without a body (not even an empty chunked one)."""
    if request.content_length is not None:
        return request.content_length == 0
    return "chunked" not in request.headers.get("Transfer-Encoding", "").lower()


def read_body(schema: str | None):
    """Return the request's JSON body after checking type, syntax and (if named) schema."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.mimetype or 'no content type'}"
        )
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None:
        # A chunked body has no length to check up front: read one byte past the limit,
        # so a body that is too large is refused (413) rather than cut and parsed.
        raw = request.environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    else:
        raw = request.get_data(cache=True)
    document = parse_json(raw)
    if schema is not None:
        schemas().validate(schema, document)
    return document


def schemas():
    """The schema catalogue of this service."""
    return catalogue(current_app.config["SCHEMAS_DIR"])


def principal() -> auth.Principal:
    return g.principal


def version_to_simulate(db, ruleset: str, draft: dict | None, number: int | None) -> dict:
    """The version a simulation of ``ruleset`` runs under: an inline draft (at
    ``/draft_ruleset``, of the ruleset's kind), a stored version, or the active one. A
    channel asks what the live rules decide; trying rules is an analyst's tool."""
    from app.machinery.rules import kinds, registry, runtime
    from app.platform.errors import Forbidden

    if g.principal.role == "channel" and (draft is not None or number is not None):
        raise Forbidden("channel keys simulate under the active ruleset only")
    if number is not None:
        return registry.get(db, ruleset, number)
    if draft is None:
        return runtime.active_version(db, ruleset)
    version = runtime.check_draft(draft, schemas(), "/draft_ruleset")
    if kinds.of(draft).name != ruleset:
        message = f"must be {ruleset}: a {kinds.of(draft).name} ruleset decides something else"
        raise InvalidInput([field_error(("draft_ruleset", "kind"), message)])
    return version


def query_args(params: tuple[Param, ...]) -> dict:
    """Parse the query string by ``params``; problems point into the parameters as an object."""
    values: dict = {}
    problems = []
    for param in params:
        raw = request.args.getlist(param.name)
        if not raw:
            if param.required:
                problems.append(field_error((param.name,), "is required"))
            continue
        converted = []
        for text in raw:
            try:
                value = _convert(param.type, text)
            except ValueError:
                problems.append(field_error((param.name,), f"must be a {param.type}"))
                continue
            problem = _out_of_range(param, value)
            if problem:
                problems.append(field_error((param.name,), problem))
            else:
                converted.append(value)
        values[param.name] = converted if param.repeated else converted[-1] if converted else None
    known = {p.name for p in params}
    problems.extend(
        field_error((name,), "is not a known parameter")
        for name in request.args
        if name not in known
    )
    if problems:
        raise InvalidInput(problems, "the query string has invalid parameters")
    return values


def _out_of_range(param: Param, value) -> str | None:
    """What is wrong with a parsed value by the parameter's enum, format and bounds."""
    if param.enum and value not in param.enum:
        return f"must be one of {', '.join(param.enum)}"
    if param.format == "date-time":
        try:
            normalize_time(value)
        except ValueError as exc:
            return str(exc)
    if param.minimum is not None and value < param.minimum:
        return f"must be at least {param.minimum:g}"
    if param.maximum is not None and value > param.maximum:
        return f"must be at most {param.maximum:g}"
    return None


def _convert(kind: str, text: str):
    if kind == "number":
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text)
        return value
    if kind == "integer":
        value = int(text)
        if not -MAX_PARAM_INTEGER <= value <= MAX_PARAM_INTEGER:
            raise ValueError(text)
        return value
    if kind == "boolean":
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(text)
    return text


def created_or_ok(document: dict, created: bool):
    """Respond 201 for a new resource, 200 for a replaced or replayed one."""
    return jsonify(document), 201 if created else 200
