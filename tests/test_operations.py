"""Operations, in process: request ids, log lines, business events, metrics, readiness,
settings, the alert rules and the dashboard. Real servers are in
``test_operations_servers.py``."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from app import create_app
from app.domain.network import nodes
from app.edges.cli import main
from app.edges.dispatch import heartbeats
from app.platform import auth, monitoring, settings
from app.platform import db as database
from tests import logscan
from tests.conftest import Api
from tests.databases import ON_POSTGRES
from tests.receiver import Receiver
from tests.rules_helpers import shipped
from tests.servers import Proxy, wait_for
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain
from tests.test_experiments import wait_for as wait_for_replay

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST})


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 100, "CUP": 100})
    return admin


def json_lines(text: str) -> list[dict]:
    """Every line the service wrote, each parsed as JSON (a line that is not fails)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Request ids --------------------------------------------------------------------------


def test_a_request_id_is_taken_or_made_and_returned(shop):
    sent = shop.get("/v1/nodes", headers={"X-Request-Id": "trace-7.a:b"})
    assert sent.headers["X-Request-Id"] == "trace-7.a:b"
    made = shop.get("/v1/nodes")
    assert re.fullmatch(r"req_[0-9a-f]{24}", made.headers["X-Request-Id"])
    # A caller's id that could break a log line or a header is replaced, not echoed.
    for hostile in ("x" * 129, "a b", "<script>", "id\u00e9"):
        answer = shop.get("/v1/nodes", headers={"X-Request-Id": hostile})
        assert answer.headers["X-Request-Id"].startswith("req_"), hostile


def test_every_error_body_carries_the_request_id(client, shop):
    cases = [
        shop.get("/v1/orders/NOPE", headers={"X-Request-Id": "err-1"}),
        client.get("/v1/nodes", headers={"X-Request-Id": "err-2"}),  # no key: 401
        shop.post("/v1/orders", json={"order_id": 5}, headers={"X-Request-Id": "err-3"}),
        client.get("/no/such/route", headers={"X-Request-Id": "err-4"}),
    ]
    for number, answer in enumerate(cases, start=1):
        assert answer.status_code >= 400
        assert answer.get_json()["error"]["request_id"] == f"err-{number}"
        assert answer.headers["X-Request-Id"] == f"err-{number}"


def test_the_request_id_is_kept_with_the_decision_and_its_messages(shop, db):
    traced = {"X-Request-Id": "trace-order-1"}
    made = shop.post("/v1/orders", json=order("o1", [("MUG", 1, 5.0)]), headers=traced)
    assert made.status_code == 201
    row = db.execute("SELECT request_id FROM decisions WHERE order_id = 'o1'").fetchone()
    assert row[0] == "trace-order-1"
    messages = db.execute("SELECT request_id FROM outbox WHERE order_id = 'o1'").fetchall()
    assert messages and {m[0] for m in messages} == {"trace-order-1"}


# Log lines ----------------------------------------------------------------------------


def test_requests_and_decisions_log_one_json_line_each(shop, keys, capsys):
    capsys.readouterr()
    answer = shop.post(
        "/v1/orders",
        json=order("o2", [("MUG", 2, 5.0)]),
        headers={"X-Request-Id": "trace-o2"},
    )
    assert answer.status_code == 201
    decision_id = answer.get_json()["decision_id"]
    lines = json_lines(capsys.readouterr().err)
    mine = [line for line in lines if line.get("request_id") == "trace-o2"]
    [request] = [line for line in mine if line["event"] == "http.request"]
    admin_id = auth.authenticate(
        database.open_from_config(shop.client.application.config), shop.headers["Authorization"]
    ).key_id
    assert request == {
        **request,
        "level": "INFO",
        "method": "POST",
        "route": "/v1/orders",
        "status": 201,
        "key_id": admin_id,
        "role": "admin",
        "order_id": "o2",
        "decision_id": decision_id,
        "ruleset_version": "sourcing@1",
    }
    assert request["duration_ms"] > 0 and request["time"].endswith("Z")
    [made] = [line for line in mine if line["event"] == "decision.made"]
    assert made["outcome"] == "sourced" and made["version"] == 1 and made["kind"] == "order"
    assert set(made["timings_ms"]) >= {"facts", "rules", "allocation", "commit", "total"}
    # The key itself is never written; the route template is, not the path.
    text = json.dumps(lines)
    assert keys["admin"] not in text
    path_line = shop.get("/v1/orders/o2", headers={"X-Request-Id": "t-get"})
    assert path_line.status_code == 200
    [get] = [
        line
        for line in json_lines(capsys.readouterr().err)
        if line.get("request_id") == "t-get" and line["event"] == "http.request"
    ]
    assert get["route"] == "/v1/orders/<order_id>" and get["order_id"] == "o2"


def test_the_text_format_is_for_people(db_path, capsys):
    app = create_app({"DATABASE": db_path, "LOG_FORMAT": "text"})
    try:
        capsys.readouterr()
        app.test_client().get("/healthz", headers={"X-Request-Id": "plain-1"})
        err = capsys.readouterr().err
        [line] = [line for line in err.splitlines() if "plain-1" in line]
        assert "GET /healthz 200" in line and "request_id=plain-1" in line
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    finally:
        create_app({"DATABASE": db_path})  # back to JSON for the rest of the run


def test_a_bad_log_format_is_refused_by_its_setting():
    with pytest.raises(settings.SettingError, match="DOM_LOG_FORMAT"):
        settings.load({"DOM_LOG_FORMAT": "xml"})


def events(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dom.events"]


def test_business_events_are_logged_with_their_numbers(shop, keys, db, caplog):
    caplog.set_level(logging.INFO, logger="dom.events")
    set_stock(shop, "DC1", {"MUG": 100, "CUP": 100})
    analyst = Api(shop.client, keys["analyst"])
    two = shipped(version=2, description="one box per order")
    assert analyst.post("/v1/rulesets/sourcing/versions", json=two).status_code == 201
    assert analyst.post("/v1/rulesets/sourcing/versions/2/activate").status_code in (200, 201)
    assert analyst.post("/v1/rulesets/sourcing/rollback").status_code in (200, 201)
    experiment = {
        "experiment_id": "ops-ab",
        "ruleset": "sourcing",
        "champion": 1,
        "challenger": 2,
        "mode": "split",
    }
    assert analyst.post("/v1/experiments", json=experiment).status_code == 201
    assert shop.post("/v1/orders", json=order("o3", [("MUG", 1, 5.0)])).status_code == 201
    assert analyst.post("/v1/experiments/ops-ab/stop").status_code == 200
    replay = analyst.post(
        "/v1/replays", json={"ruleset": "sourcing", "champion": 1, "challenger": 2}
    )
    assert replay.status_code in (201, 202)
    assert wait_for_replay(analyst, replay.get_json()["replay_id"])["status"] == "done"
    key_id, _key = auth.create_key(db, "analyst")
    auth.revoke_key(db, key_id)
    by_name = {}
    for record in events(caplog):
        by_name.setdefault(record.event, []).append(record)
    for name in (
        "feed.applied",
        "ruleset.activated",
        "ruleset.rolled_back",
        "experiment.started",
        "decision.made",
        "experiment.stopped",
        "replay.created",
        "replay.finished",
        "key.created",
        "key.revoked",
    ):
        assert name in by_name, name
    [rolled] = by_name["ruleset.rolled_back"]
    assert (rolled.version, rolled.scenarios["failed"]) == (1, 0)
    assert rolled.by  # who: the key's id or the person's name
    assert by_name["experiment.stopped"][0].why == "stopped"
    assert by_name["decision.made"][-1].experiment_id == "ops-ab"
    assert by_name["key.revoked"][0].key_id == key_id
    fed = by_name["feed.applied"][0]
    assert (fed.node_id, fed.mode, fed.skipped) == ("DC1", "snapshot", 0) and fed.applied == 2


def test_deliveries_and_disabled_endpoints_are_logged_and_counted(app, shop, caplog):
    caplog.set_level(logging.INFO, logger="dom.events")
    receiver = Receiver([SECRET])
    try:
        hook = {"url": receiver.url, "secret": SECRET}
        node = shop.get("/v1/nodes/DC1").get_json()
        body = {k: v for k, v in node.items() if k in nodes.WRITABLE}
        assert shop.put("/v1/nodes/DC1", json={**body, "webhook": hook}).status_code == 200
        receiver.script.extend([503, 410])
        before = _sample(app, "dom_deliveries_total", result="retry", error_class="http")
        shop.post("/v1/orders", json=order("o4", [("MUG", 1, 5.0)]))
        drain(app, rounds=5)
    finally:
        receiver.close()
    attempts = [r for r in events(caplog) if r.event == "delivery.attempted"]
    # 503 is tried again; 410 Gone ends the message and disables the endpoint.
    assert [a.result for a in attempts[:2]] == ["retry", "dead"]
    assert attempts[0].status_code == 503 and attempts[0].error_class == "http"
    assert attempts[0].next_attempt_at and attempts[0].attempt == 1
    assert attempts[1].attempt == 2 and attempts[1].next_attempt_at is None
    disabled = [r for r in events(caplog) if r.event == "endpoint.disabled"]
    assert disabled and "410" in disabled[0].reason
    after = _sample(app, "dom_deliveries_total", result="retry", error_class="http")
    assert after - before == 1
    assert _sample(app, "dom_deliveries_total", result="dead") >= 1
    assert _sample(app, "dom_outbox_dead", event_type="fulfillment.requested") == 1
    assert _sample(app, "dom_endpoints_disabled", kind="node") == 1


# Metrics ------------------------------------------------------------------------------


def scrape(app, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().get("/metrics", headers=headers)


def _samples(text: str) -> list[tuple[str, dict, float]]:
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        found.append((match.group(1), labels, float(match.group(3))))
    return found


def _sample(app, name: str, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    text = scrape(app).get_data(as_text=True)
    return sum(
        value
        for sample, have, value in _samples(text)
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


def test_metrics_count_requests_decisions_and_state(app, shop):
    requests_before = _sample(app, "dom_http_requests_total", route="/v1/orders", status="201")
    decisions_before = _sample(app, "dom_decisions_total", kind="order", outcome="sourced")
    for number in range(3):
        assert (
            shop.post("/v1/orders", json=order(f"m{number}", [("MUG", 1, 5.0)])).status_code == 201
        )
    answer = scrape(app)
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    assert _sample(app, "dom_http_requests_total", route="/v1/orders", status="201") == (
        requests_before + 3
    )
    assert _sample(app, "dom_decisions_total", kind="order", outcome="sourced") == (
        decisions_before + 3
    )
    assert _sample(app, "dom_reservations_active") == 3
    assert _sample(app, "dom_outbox_pending", event_type="fulfillment.requested") == 3
    assert _sample(app, "dom_outbox_oldest_pending_age_seconds") >= 0
    assert _sample(app, "dom_decision_phase_seconds_count", kind="order", phase="commit") >= 3
    assert _sample(app, "dom_rules_fired_total") > 0
    assert _sample(app, "dom_node_feed_age_seconds", node="DC1") >= 0


def test_metrics_need_the_token_when_one_is_set(db_path):
    app = create_app({"DATABASE": db_path, "METRICS_TOKEN": "scrape-token-123456"})
    assert scrape(app).status_code == 401
    assert scrape(app, "wrong-token-0000000").status_code == 401
    assert scrape(app).get_json()["error"]["code"] == "unauthorized"
    assert scrape(app, "scrape-token-123456").status_code == 200


def metric_names(app) -> set[str]:
    """Every sample name the service can expose: families and their suffixes."""
    names = set()
    for line in scrape(app).get_data(as_text=True).splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            suffixes = {"histogram": ("", "_bucket", "_sum", "_count")}.get(kind, ("",))
            names.update(name + suffix for suffix in suffixes)
    return names


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bdom_[a-z_]+\b", text))


def test_the_dashboard_and_the_alerts_use_only_metrics_that_exist(app, shop):
    exposed = metric_names(app)
    dashboard = json.loads((DEPLOY / "grafana" / "dom.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 20
    unknown = set().union(*(referenced(e) for e in exprs)) - exposed
    assert not unknown, f"the dashboard uses metrics that do not exist: {unknown}"
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    unknown = referenced(alerts) - exposed
    assert not unknown, f"the alerts use metrics that do not exist: {unknown}"
    panels = {panel["id"] for panel in dashboard["panels"]}
    assert len(panels) == len(dashboard["panels"])


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian's prometheus package) is not installed")
def test_the_alert_rules_pass_promtool():
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "alerts.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test():
    alerts = set(re.findall(r"- alert: (\w+)", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
    tests = (DEPLOY / "prometheus" / "alerts.test.yml").read_text()
    assert alerts and all(f"alertname: {alert}" in tests for alert in alerts)


def test_state_metrics_read_the_database(db):
    """The gauges are a pure read of the database at a given moment."""
    families = {m.name: m for m in monitoring.state_metrics(db, 0.0)}
    assert families["dom_backorders_waiting"].samples[0].value == 0
    assert "dom_dispatcher_heartbeat_age_seconds" in families


# Readiness ----------------------------------------------------------------------------


def ready(app):
    answer = app.test_client().get("/readyz")
    return answer.status_code, answer.get_json()


def failing(body) -> dict:
    return {e["pointer"]: e["message"] for e in body["error"]["errors"]}


def test_ready_needs_a_running_dispatcher(app, db):
    status, body = ready(app)
    assert status == 503 and body["error"]["code"] == "not_ready"
    assert list(failing(body)) == ["/checks/dispatcher"]
    heartbeats.beat(db, "disp-1")
    status, body = ready(app)
    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "rulesets": "ok", "dispatcher": "ok"},
    }
    heartbeats.forget(db, "disp-1")
    assert ready(app)[0] == 503


def test_ready_needs_current_migrations(db_path, tmp_path, db):
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", folder)
    (folder / "9999_later.sql").write_text("CREATE TABLE later (id INTEGER);\n")
    app = create_app({"DATABASE": db_path, "MIGRATIONS_DIR": str(folder), "AUTO_MIGRATE": False})
    heartbeats.beat(db, "disp-1")
    status, body = ready(app)
    assert status == 503
    assert failing(body) == {"/checks/migrations": "pending: 9999_later"}


def test_ready_follows_the_database_away_and_back(db_path, tmp_path):
    if ON_POSTGRES:
        parts = urlsplit(db_path)
        proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        url = db_path.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}")
    else:
        url = db_path
    app = create_app({"DATABASE": url, "READY_TIMEOUT_SECONDS": 1.0})
    with database.open_from_config(app.config) as connection:
        heartbeats.beat(connection, "disp-1")
    database.close_pools()
    assert ready(app)[0] == 200
    if ON_POSTGRES:
        proxy.stop()
    else:
        Path(db_path).rename(tmp_path / "away.db")
    status, body = ready(app)
    assert status == 503
    assert list(failing(body)) == ["/checks/database"]
    if ON_POSTGRES:
        proxy.start()
    else:
        (tmp_path / "away.db").rename(db_path)
    # The pool reconnects with a back-off: ready again within seconds, as a probe sees it.
    assert wait_for(lambda: ready(app)[0] == 200, 20)
    if ON_POSTGRES:
        proxy.stop()
        database.close_pools()


# Settings and the log scan ------------------------------------------------------------


def test_settings_are_shown_with_their_source_and_secrets_redacted(monkeypatch):
    monkeypatch.setenv("DOM_SECRET_KEYS", "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWJlLXNob3du")
    monkeypatch.setenv("DOM_METRICS_TOKEN", "scrape-me-if-you-can")
    monkeypatch.setenv("DOM_DATABASE", "postgresql://dom:hunter2@db.internal:5432/dom")
    monkeypatch.setenv("DOM_WORKERS", "6")
    result = CliRunner().invoke(main, ["settings", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.output.splitlines())}
    assert set(rows) == {s.name for s in settings.SETTINGS}
    assert rows["WORKERS"] == {
        "name": "WORKERS",
        "env": "DOM_WORKERS",
        "value": 6,
        "source": "environment",
    }
    assert rows["PORT"]["source"] == "default" and rows["PORT"]["value"] == 8000
    assert rows["SECRET_KEYS"]["value"] == "(set, redacted)"
    assert rows["METRICS_TOKEN"]["value"] == "(set, redacted)"
    assert rows["DATABASE"]["value"] == "postgresql://dom:***@db.internal:5432/dom"
    for secret in ("hunter2", "scrape-me-if-you-can", "c2VjcmV0LWtleS10aGF0"):
        assert secret not in result.output
    table = CliRunner().invoke(main, ["settings"])
    assert "DOM_WORKERS" in table.output and "(environment)" in table.output
    assert "hunter2" not in table.output


def test_the_log_scan_finds_what_it_looks_for(tmp_path):
    customer = next(iter(logscan.demo.network(7)["customers"].values()))
    key = "dom_" + "k" * 43
    logscan.SECRETS.add(key)
    (tmp_path / "a.log").write_text(
        json.dumps({"event": "x", "to": customer["email"]}) + "\n" + f"Bearer {key}\n" + "fine\n"
    )
    hits = logscan.scan(tmp_path)
    assert len(hits) == 2
    assert "personal data" in hits[0] and "a key or secret" in hits[1]
    logscan.SECRETS.discard(key)


def test_a_node_without_a_webhook_is_warned_of_once(app, shop, caplog):
    # The network's nodes have no webhook yet: every message to them waits and retries.
    caplog.set_level(logging.DEBUG, logger="dom.events")
    set_stock(shop, "DC1", {"MUG": 10})
    for number in range(3):
        shop.post("/v1/orders", json=order(f"quiet-{number}", [("MUG", 1, 5.0)]))
    drain(app, rounds=4)
    attempts = [r for r in events(caplog) if r.event == "delivery.attempted"]
    assert {a.error_class for a in attempts} == {"no_endpoint"}
    assert len({a.message_id for a in attempts}) == 3 and len(attempts) >= 9
    retried = [a for a in attempts if a.result == "retry"]
    assert [a.levelno for a in retried] == [logging.WARNING] + [logging.DEBUG] * (len(retried) - 1)
    # A message given up is said, whatever was said before.
    assert all(a.levelno == logging.WARNING for a in attempts if a.result == "dead")
