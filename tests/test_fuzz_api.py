"""Every operation of the OpenAPI document, fuzzed from its own schemas (schemathesis).

No generated request, however hostile, gets a 5xx, and every answer matches what the
document says of it (status documented, content type, schema). A bounded run here;
``make soak`` runs many more examples (``DOM_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from app import create_app
from app.edges.dispatch import heartbeats
from app.platform import auth
from app.platform import db as database

FOLDER = tempfile.mkdtemp(prefix="dom-fuzz-")
APP = create_app(
    {
        "DATABASE": os.path.join(FOLDER, "fuzz.db"),
        "DISPATCH_EMBEDDED": False,
        "LOG_LEVEL": "CRITICAL",
        "EVALUATION_TIMEOUT_SECONDS": 5.0,
        # /readyz answers 200 for the whole run: a dispatcher reported once, below.
        "DISPATCH_STALE_SECONDS": 86400.0,
    }
)
with database.open_from_config(APP.config) as _connection:
    KEY = auth.create_key(_connection, "admin")[1]
    heartbeats.beat(_connection, "fuzz-dispatcher")

schema = schemathesis.openapi.from_wsgi(
    "/v1/openapi.json", APP, headers={"Authorization": f"Bearer {KEY}"}
)
# What the contract promises; a schema-valid request may still be refused (an unknown
# customer is 422), so "valid data is accepted" is not among them.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = int(os.environ.get("DOM_FUZZ_EXAMPLES", "20"))


# The run has its own SQLite file, whatever the database of the suite: it runs once.
@pytest.mark.slow
@pytest.mark.one_database
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_fails_or_breaks_its_contract(case):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
    case.call_and_validate(checks=CHECKS)
