"""The OpenAPI document covers every route and references the schemas."""

from __future__ import annotations

import pytest
from flask import Blueprint

from app.edges.api import openapi
from app.platform.schemas import Catalogue

# The same on every database: run once.
pytestmark = pytest.mark.one_database


@pytest.fixture
def document(admin):
    response = admin.get("/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_every_route_is_documented(app, document):
    for rule in filter(openapi.is_operation, app.url_map.iter_rules()):
        path = openapi.openapi_path(rule.rule)
        assert path in document["paths"], f"{rule.rule} is missing from the OpenAPI document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], f"{method} {rule.rule}"


def test_a_route_without_a_spec_is_refused(app):
    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/v1/undocumented", "undocumented", lambda: "")
    app.register_blueprint(extra)
    with pytest.raises(openapi.MissingSpec):
        openapi.document(app)


def test_bodies_reference_schemas_from_the_folder(document):
    files = Catalogue("schemas").documents
    assert document["openapi"].startswith("3.1")
    refs = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            body = operation.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"]
                refs.add(ref.rsplit("/", 1)[1])
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/error"}
    assert refs >= {"node", "sku", "inventory-feed", "transfer", "customer", "safety-stock"}
    bundled = openapi.bundle(files)
    for name in refs:
        assert document["components"]["schemas"][name] == bundled[name]


def test_schemas_are_served(admin):
    response = admin.get("/v1/schemas/node.schema.json")
    assert response.status_code == 200
    assert response.get_json()["title"] == "Node"
    assert admin.get("/v1/schemas/nothing").status_code == 404


def test_every_schema_is_valid_2020_12_with_descriptions():
    from jsonschema import Draft202012Validator

    for name, schema in Catalogue("schemas").documents.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"].endswith("2020-12/schema"), name
        assert schema.get("description"), name


def test_the_document_validates_as_openapi_3_1(document):
    from openapi_spec_validator import validate

    validate(document)


def test_every_ref_points_inside_the_document(document):
    refs = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    assert refs and all(ref.startswith("#/") for ref in refs)
    for ref in refs:
        target = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]


def test_parameters_carry_their_constraints(document):
    deliveries = {p["name"]: p for p in document["paths"]["/v1/deliveries"]["get"]["parameters"]}
    assert deliveries["status"]["schema"]["enum"] == ["pending", "delivered", "dead"]
    assert deliveries["since"]["schema"]["format"] == "date-time"
    assert deliveries["limit"]["schema"]["maximum"] == 1000
    version = document["paths"]["/v1/rulesets/{name}/versions/{version}"]["get"]
    by_name = {p["name"]: p["schema"] for p in version["parameters"]}
    assert by_name["version"]["type"] == "integer" and by_name["name"]["pattern"]
    assert "422" in document["paths"]["/v1/deliveries"]["get"]["responses"]
    assert "404" in document["paths"]["/v1/experiments/{experiment_id}/stop"]["post"]["responses"]


def test_every_answer_has_its_schema(document):
    answers = document["components"]["schemas"]["responses"]["$defs"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status == "204" or int(status) >= 400:
                    continue
                text = [kind for kind in response["content"] if kind.startswith("text/")]
                if text:
                    assert response["content"][text[0]]["schema"] == {"type": "string"}
                    continue  # a page for people, or metrics
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/responses/$defs/{operation['operationId']}"
                assert operation["operationId"] in answers, (method, path)
