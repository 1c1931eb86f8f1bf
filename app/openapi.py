"""Build the OpenAPI 3.1 document from the routes' own specs and the schemas folder.

Each route declares its spec where it is defined (``app.api.endpoint``), so the
document cannot drift from the code: a route without a spec fails here.
"""

from __future__ import annotations

import re

from flask import Flask

from app.schemas import catalogue

_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class MissingSpec(LookupError):
    """A route was registered without ``app.api.endpoint``."""


def openapi_path(rule: str) -> str:
    """Turn a Flask rule (``/nodes/<node_id>``) into an OpenAPI path (``/nodes/{node_id}``)."""
    return _CONVERTER.sub(r"{\1}", rule)


def routes(app: Flask):
    """Yield ``(path, method, spec)`` for every route of the service."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        spec = getattr(view, "spec", None)
        if spec is None:
            raise MissingSpec(f"route {rule.rule} has no spec; declare it with app.api.endpoint")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield openapi_path(rule.rule), method, spec, list(rule.arguments)


def document(app: Flask) -> dict:
    schemas = catalogue(app.config["SCHEMAS_DIR"]).documents
    paths: dict[str, dict] = {}
    for path, method, spec, arguments in routes(app):
        operation: dict = {
            "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
            "summary": spec.summary,
            "tags": [spec.tag],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in sorted(arguments)
            ]
            + [
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "description": p.description,
                    "schema": {"type": "array", "items": {"type": p.type}}
                    if p.repeated
                    else {"type": p.type},
                    **({"explode": True} if p.repeated else {}),
                }
                for p in spec.query
            ],
            "responses": {},
        }
        if spec.roles is None:
            operation["security"] = []
        else:
            operation["security"] = [{"bearer": []}]
            operation["x-roles"] = list(spec.roles)
        if spec.body:
            operation["requestBody"] = {
                "required": True,
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
        for status, description in sorted(responses.items()):
            if status < 400:
                content = {"application/json": {"schema": {"type": "object"}}}
                if spec.response_schema and status in (200, 201):
                    content = {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{spec.response_schema}"}
                        }
                    }
            else:
                content = {"application/json": {"schema": {"$ref": "#/components/schemas/error"}}}
            operation["responses"][str(status)] = {"description": description, "content": content}
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
                }
            },
        },
    }
