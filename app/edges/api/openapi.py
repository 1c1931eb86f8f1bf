"""Build the OpenAPI 3.1 document from the routes' own specs and the schemas folder.

Each route declares its spec where it is defined (``app.edges.api.endpoints.endpoint``), so the
document cannot drift from the code: a route without a spec fails here.
"""

from __future__ import annotations

import re

from flask import Flask
from werkzeug.routing import IntegerConverter

from app.edges.console import sessions
from app.platform.schemas import catalogue

_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class MissingSpec(LookupError):
    """A route was registered without ``app.edges.api.endpoints.endpoint``."""


def openapi_path(rule: str) -> str:
    """Turn a Flask rule (``/nodes/<node_id>``) into an OpenAPI path (``/nodes/{node_id}``)."""
    return _CONVERTER.sub(r"{\1}", rule)


def is_operation(rule) -> bool:
    """Whether a route is an API operation: not a static file, nor a console page (HTML
    for people, whose data comes from the operations), nor a customer's tracking page."""
    return rule.endpoint not in ("static", "root") and not rule.endpoint.startswith(
        ("console.", "customer.")
    )


def routes(app: Flask):
    """Yield ``(path, method, spec, arguments)`` for every route of the service;
    ``arguments`` maps each path parameter to ``integer`` or ``string``."""
    for rule in app.url_map.iter_rules():
        if not is_operation(rule):
            continue
        view = app.view_functions[rule.endpoint]
        spec = getattr(view, "spec", None)
        if spec is None:
            raise MissingSpec(
                f"route {rule.rule} has no spec; declare it with app.edges.api.endpoints.endpoint"
            )
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            arguments = {
                name: "integer" if isinstance(converter, IntegerConverter) else "string"
                for name, converter in rule._converters.items()
            }
            yield openapi_path(rule.rule), method, spec, arguments


def bundle(documents: dict[str, dict]) -> dict[str, dict]:
    """The schemas as OpenAPI components: every ``$ref`` points inside the document.

    A schema file refers to others by file name (``common.schema.json#/$defs/id``)
    and to itself by fragment (``#/$defs/x``); tools that read the OpenAPI document
    resolve neither, so both become ``#/components/schemas/<name>/...``.
    """
    names = {f"{name}.schema.json": name for name in documents}

    def rewrite(node, own: str):
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key in ("$id", "$schema"):
                    continue
                if key == "$ref" and isinstance(value, str):
                    target, _, fragment = value.partition("#")
                    name = names.get(target.rsplit("/", 1)[-1], own) if target else own
                    out[key] = f"#/components/schemas/{name}{fragment}"
                else:
                    out[key] = rewrite(value, own)
            return out
        if isinstance(node, list):
            return [rewrite(item, own) for item in node]
        return node

    return {name: rewrite(schema, name) for name, schema in documents.items()}


# Path parameters: ids follow common.schema.json#/$defs/id; numbers are versions.
# Answers that are text, not JSON: a page for people, metrics for Prometheus.
TEXT = {"html": "text/html", "prometheus": "text/plain"}
PATH_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"}
PATH_NUMBER = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


def _path_parameter(name: str, kind: str) -> dict:
    schema = PATH_NUMBER if kind == "integer" else PATH_ID
    return {"name": name, "in": "path", "required": True, "schema": dict(schema)}


def _query_parameter(param) -> dict:
    schema: dict = {"type": param.type}
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.format:
        schema["format"] = param.format
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.type == "integer":
        schema.setdefault("minimum", -(2**31 - 1))
        schema.setdefault("maximum", 2**31 - 1)
    if param.repeated:
        schema = {"type": "array", "items": schema}
    return {
        "name": param.name,
        "in": "query",
        "required": param.required,
        "description": param.description,
        "schema": schema,
        **({"explode": True} if param.repeated else {}),
    }


def document(app: Flask) -> dict:
    schemas = bundle(catalogue(app.config["SCHEMAS_DIR"]).documents)
    paths: dict[str, dict] = {}
    for path, method, spec, arguments in routes(app):
        operation: dict = {
            "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
            "summary": spec.summary,
            "tags": [spec.tag],
            "parameters": [_path_parameter(name, kind) for name, kind in sorted(arguments.items())]
            + [_query_parameter(p) for p in spec.query],
            "responses": {},
        }
        if spec.roles is None:
            operation["security"] = []
        else:
            operation["security"] = [{"bearer": []}, {"console": []}]
            operation["x-roles"] = list(spec.roles)
        if spec.body:
            operation["requestBody"] = {
                "required": not spec.optional_body,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{spec.body}"}}
                },
            }
        responses = dict(spec.responses)
        if spec.roles is not None:
            responses.setdefault(401, "Missing or unknown API key")
            responses.setdefault(403, "The key's role may not do this")
        if spec.body:
            responses.setdefault(400, "Malformed JSON")
            responses.setdefault(413, "Body too large")
            responses.setdefault(415, "Not application/json")
            responses.setdefault(422, "Invalid body")
        if arguments:
            responses.setdefault(404, "No such resource")
        if arguments or spec.query:
            responses.setdefault(422, "Invalid path or query parameters")
        if spec.roles is not None:
            responses.setdefault(
                503, "The service cannot take this now (e.g. rules over their evaluation budget)"
            )
        answers = schemas["responses"]["$defs"]
        for status, description in sorted(responses.items()):
            entry: dict = {"description": description}
            if status == 204:
                pass  # no content
            elif status < 400 and spec.response_schema in TEXT:
                entry["content"] = {TEXT[spec.response_schema]: {"schema": {"type": "string"}}}
            elif status < 400:
                name = spec.response_schema or f"responses/$defs/{operation['operationId']}"
                if name.startswith("responses/") and name.rsplit("/", 1)[1] not in answers:
                    raise MissingSpec(f"{method} {path} has no schema for what it answers")
                schema = {"$ref": f"#/components/schemas/{name}"}
                entry["content"] = {"application/json": {"schema": schema}}
            else:
                schema = {"$ref": "#/components/schemas/error"}
                entry["content"] = {"application/json": {"schema": schema}}
            operation["responses"][str(status)] = entry
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DOM: distributed order management",
            "version": "1",
            "description": "Central inventory, customers, rules as data and sourcing decisions."
            " Every error has the body described by the `error` schema.",
        },
        "servers": [{"url": "/"}],
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key made by `dom keys create --role ROLE`.",
                },
                "console": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": sessions.COOKIE,
                    "description": "A console session, started by signing in at /console with an"
                    " API key; it acts with the key's role. A request that changes something"
                    f" also sends the session's CSRF token in the {sessions.CSRF_HEADER} header.",
                },
            },
        },
    }
