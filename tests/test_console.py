"""The console's journeys in a real browser (Debian's Chromium, driven by Playwright),
against `dom serve` on a temporary database holding the demo network.

Every page a journey opens is checked by axe-core for accessibility problems, must carry
the server's Server-Timing (for the page and each API call it makes while loading; the
slowest is recorded beside the screenshots, never asserted: a busy machine is slow, and
speed is measured by ``make bench``) and is saved as a screenshot (``tests/screenshots/``,
or ``docs/screenshots/`` by ``make screenshots``).
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app import create_app
from app.edges import demo
from app.platform import auth
from app.platform import db as database
from app.platform.messaging import signing
from tests.browser import SCREENSHOTS, chromium, needs_chromium, screenshot
from tests.receiver import Receiver
from tests.servers import serving

pytestmark = needs_chromium

ROOT = Path(__file__).resolve().parent.parent
SECRET = signing.new_secret()
# What a page may take on the server: the page itself and each API call it makes.
CITIES = [
    ("Leeds", "LS1 5HD", 53.7997, -1.5492),
    ("London", "EC1A 1BB", 51.5202, -0.0979),
    ("Bristol", "BS1 4DJ", 51.4545, -2.5879),
    ("Glasgow", "G1 1XQ", 55.8609, -4.2514),
    ("Norwich", "NR2 1NH", 52.6309, 1.2974),
    ("Cardiff", "CF10 1EP", 51.4816, -3.1791),
]


@dataclass
class Site:
    base: str
    keys: dict
    receiver: Receiver
    timings: dict = field(default_factory=dict)

    def call(self, role: str, method: str, path: str, body=None):
        """The API as a client would call it, with a role's key."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.keys[role]}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("console") / "dom.db")
    app = create_app({"DATABASE": path, "LOG_LEVEL": "WARNING"})
    with database.open_from_config(app.config) as db:
        demo.load(db)
        keys = {role: auth.create_key(db, role)[1] for role in ("admin", "analyst", "channel")}
    receiver = Receiver([SECRET])
    try:
        with serving(
            path,
            2,
            WEBHOOK_ALLOW="127.0.0.1",
            RETRY_SCHEDULE="0.2,0.2",
            DISPATCH_POLL_SECONDS="0.2",
            LOG_LEVEL="WARNING",
        ) as port:
            site = Site(f"http://127.0.0.1:{port}", keys, receiver)
            yield site
            # Each screen's slowest server time (ms), beside the screenshots, for the record.
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            times = json.dumps(site.timings, indent=1)
            (SCREENSHOTS / "console-server-times.json").write_text(times)
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def new_page(browser, width: int = 1280, height: int = 800):
    """A page in a browser session of its own, which records the script errors it meets."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # A refused API call is reported by the browser as a failed resource: not a page error.
    page.on(
        "console",
        lambda m: (
            page.errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    return page


def sign_in(site: Site, browser, role: str, width: int = 1280, height: int = 800):
    """A new browser session signed in with the role's key, on the overview."""
    page = new_page(browser, width, height)
    page.goto(site.base + "/console/sign-in")
    page.fill("#api_key", site.keys[role])
    page.click("button[type=submit]")
    page.wait_for_url("**/console/")
    ready(page)
    return page


def ready(page) -> None:
    """Wait until the page's script has filled it, and check it raised nothing."""
    page.wait_for_selector("body[data-ready]", timeout=20_000)
    assert page.evaluate("document.body.dataset.ready") == "true", page.errors
    assert not page.errors, page.errors


SERVER_TIMES = """() => {
  const app = (entry) => (entry.serverTiming.find((t) => t.name === 'app') || {}).duration;
  const [navigation] = performance.getEntriesByType('navigation');
  const calls = performance.getEntriesByType('resource')
    .filter((e) => new URL(e.name).pathname.startsWith('/v1/'))
    .map((e) => [new URL(e.name).pathname, app(e)]);
  return {page: app(navigation), calls};
}"""


def look(site: Site, page, name: str, *, at: str | None = None) -> None:
    """The checks every screen gets: ready, accessible, timed on the server, and saved."""
    from axe_playwright_python.sync_playwright import Axe

    ready(page)
    times = page.evaluate(SERVER_TIMES)
    slowest = max([times["page"] or 0.0] + [ms or 0.0 for _, ms in times["calls"]])
    site.timings[name] = slowest
    assert times["page"] is not None, "the page carries no Server-Timing"
    results = Axe().run(page)
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"
    screenshot(page, f"console-{name}", full_page=True, at=at)


def visit(site: Site, page, path: str, name: str) -> None:
    page.goto(site.base + path)
    look(site, page, name)


def enter(page, selector: str, value: str) -> None:
    """Type into a field and leave it, as a person does (the page acts on change)."""
    page.fill(selector, value)
    page.press(selector, "Tab")


def scenario_facts() -> list[dict]:
    """A scenario's facts with one DC candidate, DC-NORTH, from a shipped scenario."""
    shipped = json.loads(
        (ROOT / "rulesets/sourcing/scenarios/node-type-preferences.json").read_text()
    )
    facts = [f for f in shipped["facts"] if f["fact"] in ("order", "line", "customer")]
    [dc] = [f for f in shipped["facts"] if f["fact"] == "candidate" and f["node_type"] == "dc"]
    facts.append({**dc, "key": "L1@DC-NORTH", "node_id": "DC-NORTH"})
    return facts


def place_orders(site: Site, count: int, seed: int, prefix: str) -> list[str]:
    rng = random.Random(seed)
    placed = []
    for n in range(count):
        city, postcode, lat, lon = rng.choice(CITIES)
        order_id = f"{prefix}-{n}"
        status, answer = site.call(
            "channel",
            "POST",
            "/v1/orders",
            {
                "order_id": order_id,
                "channel": "web",
                "customer_id": f"C{rng.randint(1, 300):05d}",
                "delivery": {
                    "method": "ship",
                    "address": {
                        "lines": ["1 High Street"],
                        "city": city,
                        "postcode": postcode,
                        "country": "GB",
                        "lat": lat,
                        "lon": lon,
                    },
                },
                "lines": [
                    {
                        "line_id": "1",
                        "sku": f"SKU-{rng.randint(1, 60):04d}",
                        "qty": rng.randint(1, 2),
                        "unit_price": 25.0,
                    }
                ],
            },
        )
        assert status == 201, answer
        placed.append(order_id)
    return placed


def test_an_analyst_edits_tests_simulates_and_releases_a_version(site, browser):
    page = sign_in(site, browser, "analyst")
    look(site, page, "overview")
    # The active ruleset.
    page.click("header nav >> text=Rulesets")
    look(site, page, "rulesets")
    page.click("#rulesets >> text=sourcing")
    look(site, page, "ruleset")
    [active] = page.locator("#versions tbody tr", has=page.locator(".badge.active")).all()
    assert active.locator("td").first.inner_text() == "1"

    # A new rule, with a typo in a field name: the problem shows at its place.
    page.click("text=Edit a draft")
    ready(page)
    page.wait_for_selector("#problems .notice.good")
    page.click("#add-rule")
    enter(page, "#rule-id", "prefer-north-dc")
    enter(page, "#rule-description", "The North DC has spare pickers this season")
    enter(page, "#rule-priority", "5")
    page.select_option("#c0-fact", "candidate")
    enter(page, "#c0-as", "c")
    page.click("#rule-form >> text=Add a test")
    enter(page, "#c0-0-0-field", "node_idd")
    problem = page.locator("#c0-0-0-problem")
    problem.wait_for()
    assert "did you mean 'node_id'" in problem.inner_text()
    assert page.get_attribute("#c0-0-0-field", "aria-invalid") == "true"
    assert page.locator("#rule-list li.has-problem", has_text="prefer-north-dc").count() == 1
    screenshot(page, "console-editor-problem", full_page=True, at="#rule-heading")
    enter(page, "#c0-0-0-field", "node_id")
    enter(page, "#c0-0-0-value", "DC-NORTH")
    page.select_option("#new-action", "score")
    page.click("#rule-form button:text-is('Add')")
    enter(page, "#a0-score", "c")
    enter(page, "#a0-add", "2")
    enter(page, "#a0-reason", "spare pickers in the North DC")
    page.wait_for_selector("#problems .notice.good")
    assert page.locator("#rule-list li.has-problem").count() == 0
    # The JSON view follows the form, and the form the JSON view.
    rule = json.loads(page.input_value("#rule-json"))
    assert rule["when"] == [
        {"fact": "candidate", "as": "c", "where": {"node_id": {"eq": "DC-NORTH"}}}
    ]
    assert rule["then"] == [{"score": "c", "add": 2, "reason": "spare pickers in the North DC"}]
    page.fill("#rule-json", json.dumps({**rule, "description": "Spare pickers in the North DC"}))
    page.locator("#rule-json").blur()
    assert page.input_value("#rule-description") == "Spare pickers in the North DC"
    # Reordered by dragging: dropped on the rule two above it, it takes that rule's place
    # and a priority between its new neighbours'.
    items = page.locator("#rule-list li")
    last = items.count() - 1
    assert items.nth(last).inner_text().startswith("prefer-north-dc")
    items.nth(last).drag_to(items.nth(last - 2))
    assert items.nth(last - 2).inner_text().startswith("prefer-north-dc")
    priorities = [int(items.nth(i).locator("input").input_value()) for i in range(last + 1)]
    assert priorities == sorted(priorities, reverse=True)
    assert priorities[last - 2] > 5
    look(site, page, "editor")

    # A scenario for the new rule joins the next version's set.
    enter(page, "#scenario-id", "north-dc-preferred")
    enter(page, "#scenario-title", "The North DC gets 2 points on top of a DC's 3")
    page.fill("#scenario-facts", json.dumps(scenario_facts()))
    page.fill("#scenario-expect", json.dumps({"scored": {"L1@DC-NORTH": 5}}))
    page.click("text=Add the scenario")
    page.wait_for_selector("#scenario-result .notice.good")

    # The same order under the draft and under the active version.
    page.click("#simulate-draft")
    page.wait_for_url("**/console/simulate?**")
    ready(page)
    assert page.input_value("#under") == "draft"
    enter(page, "#customer", "C00001")
    page.click("#order-form button[type=submit]")
    page.wait_for_selector("#simulation h2")
    assert page.inner_text("#simulation h2") == "Decided under the draft"
    assert "prefer-north-dc" in page.inner_text("#simulation ol.fired")
    assert page.locator("#decision-map g.node.chosen").count() >= 1
    assert page.locator("#decision-map g.node.candidate").count() >= 1
    look(site, page, "simulate-draft", at="#simulation")
    page.select_option("#under", "")
    page.click("#order-form button[type=submit]")
    page.wait_for_selector("#simulation h2 >> text=Decided under version 1")
    assert "prefer-north-dc" not in page.inner_text("#simulation ol.fired")

    # Back in the editor, the draft is saved as version 2 with a change note.
    page.click("text=Back to the draft in the editor")
    ready(page)
    assert page.locator("#rule-list li", has_text="prefer-north-dc").count() == 1
    enter(page, "#change-note", "Prefer the North DC while it has spare pickers")
    page.click("#save")
    page.wait_for_selector("#save-result .notice.good")
    assert "Saved as version 2" in page.inner_text("#save-result")

    # What changed, rule by rule.
    page.click("text=See what changed from version 1")
    look(site, page, "diff")
    added = page.locator(".diff-rule[data-rule='prefer-north-dc']")
    assert "added" in added.locator("h2").inner_text()
    assert added.locator(".diff-line.added").count() > 5

    # Every scenario of version 2, then the release through the scenario gate.
    page.click("text=Back to the ruleset")
    ready(page)
    page.select_option("#scenario-version", "2")
    page.click("text=Run all scenarios")
    page.wait_for_selector("#scenario-results table")
    results = page.inner_text("#scenario-results")
    assert "31 passed, 0 failed" in results and "north-dc-preferred" in results
    page.click("button[data-activate='2']")
    page.wait_for_selector("#gate >> text=every scenario passes")
    assert page.is_enabled("#release-confirm")
    screenshot(page, "console-release-gate", full_page=True, at="#release")
    page.click("#release-confirm")
    page.wait_for_selector("#notice >> text=Version 2 is active.")
    [active] = page.locator("#versions tbody tr", has=page.locator(".badge.active")).all()
    assert active.locator("td").first.inner_text() == "2"
    look(site, page, "ruleset-released")
    _status, current = site.call("analyst", "GET", "/v1/rulesets/sourcing/active")
    assert current["version"] == 2
    assert current["change_note"] == "Prefer the North DC while it has spare pickers"


def test_an_analyst_runs_a_shadow_experiment_and_a_replay_and_asks_why_not(site, browser):
    # A challenger that weighs distance far more, stored through the API.
    status, active = site.call("analyst", "GET", "/v1/rulesets/sourcing/active")
    status, ruleset = site.call("analyst", "GET", "/v1/rulesets/sourcing")
    challenger = {**active["document"], "version": len(ruleset["versions"]) + 1}
    challenger["settings"]["objective"]["distance"] = 0.05
    challenger["change_note"] = "Nearer nodes first"
    status, stored = site.call("analyst", "POST", "/v1/rulesets/sourcing/versions", challenger)
    assert status == 201, stored
    # Orders already decided, for the replay.
    place_orders(site, 30, seed=1, prefix="EARLY")

    page = sign_in(site, browser, "analyst")
    page.click("header nav >> text=Experiments")
    look(site, page, "experiments")
    enter(page, "#experiment-id", "nearer-first")
    assert page.input_value("#experiment-champion") == str(active["version"])
    assert page.input_value("#experiment-challenger") == str(stored["version"])
    assert page.input_value("#experiment-mode") == "shadow"
    enter(page, "#guard-fill", "0.05")
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url("**/console/experiments/nearer-first")
    ready(page)
    place_orders(site, 40, seed=2, prefix="SHADOW")
    page.reload()
    look(site, page, "experiment")
    assert "40 orders decided" in page.inner_text("#report")
    assert "max fill rate drop 0.05" in page.inner_text("#experiment-head")
    assert "none crossed" in page.inner_text("#experiment-head")
    assert page.locator("#interval-chart g.measure").count() >= 6
    assert page.locator("#report table tbody tr").count() >= 6
    disagreements = page.locator("#disagreements tbody tr button")
    if disagreements.count():
        disagreements.first.click()
        page.wait_for_selector("#side-by-side .columns")
        screenshot(page, "console-experiment-side-by-side", full_page=True, at="#side-by-side")

    # A replay of the decisions so far, watched to the end.
    page.click("header nav >> text=Replays")
    look(site, page, "replays")
    assert page.input_value("#replay-challenger") == str(stored["version"])
    page.click("#replay-form button[type=submit]")
    page.wait_for_url("**/console/replays/rpl_*")
    page.wait_for_selector("#progress-text >> text=100%", timeout=30_000)
    assert page.get_attribute("#progress", "value") == "100"
    page.wait_for_selector("#replay-report #interval-chart")
    look(site, page, "replay")
    changed = page.locator("#changed tbody tr a")
    if changed.count():
        changed.first.click()
    else:
        visit(site, page, "/console/decisions", "decisions")
        page.locator("#decisions tbody tr a").first.click()
    ready(page)
    assert page.locator("#explanation table").count() >= 2

    # Why not a store that did not serve the order?
    page.select_option("#why-not-node", "ST-040")
    page.click("#why-not button[type=submit]")
    page.wait_for_selector("#why-not-result")
    assert "ST-040 was not chosen" in page.inner_text("#why-not-result")
    look(site, page, "decision-why-not", at="#why-not-result")

    # The decision, kept as a scenario of the draft set.
    decision_id = page.url.rsplit("/", 1)[1]
    page.click("#decision-scenario button[type=submit]")
    page.wait_for_selector("#decision-scenario-result .notice.good")
    status, kept = site.call(
        "analyst", "GET", f"/v1/rulesets/sourcing/scenarios/from-{decision_id}"
    )
    assert status == 200, kept


def test_a_channel_key_sees_its_orders_and_is_refused_the_rules_pages(site, browser):
    place_orders(site, 3, seed=3, prefix="CHANNEL")
    page = sign_in(site, browser, "channel")
    nav = page.inner_text("header nav")
    assert "Rulesets" not in nav and "Experiments" not in nav and "Orders" in nav
    answer = page.goto(site.base + "/console/rulesets/sourcing/edit")
    assert answer.status == 403
    assert "for admin and analyst keys" in page.inner_text("#refused")
    screenshot(page, "console-channel-refused")
    # Nor does the API behind the pages let the session do more than its key.
    assert page.evaluate("fetch('/v1/rulesets').then((r) => r.status)") == 403
    csrf = page.get_attribute("body", "data-csrf")
    status = page.evaluate(
        """(csrf) => fetch('/v1/rulesets/sourcing/versions/1/activate', {method: 'POST',
             headers: {'X-CSRF-Token': csrf}}).then((r) => r.status)""",
        csrf,
    )
    assert status == 403
    visit(site, page, "/console/decisions", "orders-channel")
    assert page.locator("#orders tbody tr a", has_text="CHANNEL-0").count() == 1
    page.locator("#orders tbody tr a", has_text="CHANNEL-0").click()
    ready(page)
    assert "Timeline" in page.inner_text("#order")


def test_an_admin_retries_a_dead_delivery_and_recovers_the_node(site, browser):
    status, node = site.call("admin", "GET", "/v1/nodes/DC-NORTH")
    writable = {
        k: v
        for k, v in node.items()
        if k not in ("node_id", "created_at", "updated_at", "webhook", "transport")
        and v is not None
    }
    site.receiver.script.extend([410])
    status, answer = site.call(
        "admin",
        "PUT",
        "/v1/nodes/DC-NORTH",
        {**writable, "webhook": {"url": site.receiver.url, "secret": SECRET}},
    )
    assert status == 200, answer
    place_orders(site, 2, seed=4, prefix="HOOKED")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, dead = site.call("admin", "GET", "/v1/deliveries?status=dead&node_id=DC-NORTH")
        if dead["deliveries"]:
            break
        time.sleep(0.2)
    [message] = dead["deliveries"][:1]

    page = sign_in(site, browser, "admin")
    page.click("header nav >> text=Network")
    look(site, page, "network-admin")
    row = page.locator("#nodes tbody tr", has_text="DC-NORTH")
    assert "disabled" in row.inner_text()
    page.click(f"button[data-retry='{message['message_id']}']")
    page.wait_for_selector(f"#notice >> text=Message {message['message_id']}: pending.")
    page.click("button[data-recover='DC-NORTH']")
    page.wait_for_selector("#notice >> text=Recovering DC-NORTH")
    deadline = time.monotonic() + 30
    while message["message_id"] not in site.receiver.delivered_ids():
        assert time.monotonic() < deadline, site.receiver.received
        time.sleep(0.2)
    # The node has it; the dispatcher records so once the node's answer is back.
    while True:
        status, delivered = site.call("admin", "GET", f"/v1/deliveries/{message['message_id']}")
        if delivered["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert delivered["status"] == "delivered"


@pytest.mark.parametrize(
    "path", ["/console/rulesets/sourcing", "/console/rulesets/sourcing/edit", "/console/simulate"]
)
def test_pages_read_on_a_phone(site, browser, path):
    page = sign_in(site, browser, "analyst", width=390, height=844)
    page.goto(site.base + path)
    name = "phone-" + path.strip("/").replace("/", "-")
    look(site, page, name)
    # Nothing is wider than the screen but what scrolls within its own box (tables).
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, f"{path} is {overflow} pixels wide"


def test_the_console_works_from_the_keyboard(site, browser):
    page = new_page(browser)
    page.goto(site.base + "/console/sign-in")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api_key"
    page.keyboard.type(site.keys["analyst"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/")
    ready(page)
    # The first stop skips the navigation; the focus ring shows where the keyboard is.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.goto(site.base + "/console/rulesets/sourcing/edit")
    ready(page)
    # A rule is chosen with the keyboard as with the mouse, and its priority typed in.
    second = page.locator("#rule-list li button").nth(1)
    second.focus()
    page.keyboard.press("Enter")
    name = second.inner_text()
    assert page.input_value("#rule-id") == name
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "priority-1"


def test_a_channel_finds_a_held_order_among_the_open_ones_and_releases_it(site, browser):
    newcomer = {"name": "Nia New", "tier": "standard", "lifetime_orders": 0}
    assert site.call("admin", "PUT", "/v1/customers/NEWCOMER", newcomer)[0] in (200, 201)
    [placed] = place_orders(site, 1, seed=11, prefix="HELD")
    status, order = site.call("channel", "GET", f"/v1/orders/{placed}")
    body = {
        "order_id": "HELD-BIG",
        "channel": "web",
        "customer_id": "NEWCOMER",
        "delivery": order["delivery"],
        "lines": [
            {"line_id": "1", "sku": order["lines"][0]["sku"], "qty": 1, "unit_price": 1600.0}
        ],
    }
    status, decision = site.call("channel", "POST", "/v1/orders", body)
    assert status == 201 and decision["status"] == "on_hold", decision
    page = sign_in(site, browser, "channel")
    visit(site, page, "/console/open-orders", "open-orders")
    row = page.locator("#open-orders tbody tr", has_text="HELD-BIG")
    assert "first order over 1,500" in row.inner_text()
    assert page.locator("#open-reasons tbody tr", has_text="On hold").count() == 1
    page.select_option("#open-reason", "on_hold")
    page.click("#open-filters button[type=submit]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#open-orders tbody tr')].every("
        "(r) => r.textContent.includes('On hold'))"
    )
    row.locator("a", has_text="HELD-BIG").click()
    ready(page)
    assert "first order over 1,500" in page.inner_text("#hold-reason")
    look(site, page, "order-held")
    page.fill("#release-note", "called the customer: genuine")
    page.click("#release")
    page.wait_for_selector("#hold-done")
    assert "now" in page.inner_text("#hold-done")
    status, released = site.call("channel", "GET", "/v1/orders/HELD-BIG")
    assert released["status"] != "on_hold"
    [entry] = [e for e in released["timeline"] if e["type"] == "released"]
    assert entry["note"] == "called the customer: genuine"
    assert "Released" in page.inner_text("#hold-done")
    screenshot(page, "console-order-released", full_page=True)


def check_public_page(page, name: str, width: int) -> None:
    """The checks of a page without the console: accessible, as wide as the window, saved."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{name} is {wide} pixels wide in a {width}-pixel window"
    assert not page.errors, page.errors
    screenshot(page, name, full_page=True)


def test_a_customer_follows_the_order_from_the_emailed_link(site, browser):
    from app.edges.customer import STATUS_WORDS

    delivered, placed = place_orders(site, 2, seed=21, prefix="TRACK")
    status, order = site.call("channel", "GET", f"/v1/orders/{delivered}")
    for shipment in order["shipments"]:  # its node reports (an admin may, for any node)
        path = f"/v1/shipments/{shipment['shipment_id']}/events"
        for kind, extra in (
            ("accepted", {}),
            ("shipped", {"carrier": "DPD", "tracking_number": "JD0002210"}),
            ("delivered", {}),
        ):
            body = {"event_id": f"{shipment['shipment_id']}-{kind}", "type": kind, **extra}
            assert site.call("admin", "POST", path, body)[0] == 201
    opened = []
    for order_id in (delivered, placed):
        status, link = site.call("channel", "POST", f"/v1/orders/{order_id}/tracking-link", {})
        assert status == 200, link
        status, view = site.call("channel", "GET", f"/v1/orders/{order_id}/tracking")
        assert status == 200, view
        opened.append((order_id, link["url"], view))
    for (order_id, url, view), name in zip(opened, ("delivered", "placed"), strict=True):
        for width, suffix in ((1280, ""), (390, "-phone")):
            page = new_page(browser, width, 844)
            answer = page.goto(url)
            assert answer.status == 200
            assert page.inner_text("h1") == STATUS_WORDS[view["status"]]
            text = page.inner_text("main")
            assert order_id in text
            for parcel in view["parcels"]:
                if parcel["tracking_number"]:
                    assert parcel["tracking_number"] in text
            # The town, never the street or the postcode.
            assert "High Street" not in text and "LS1 5HD" not in text
            check_public_page(page, f"tracking-{name}{suffix}", width)
            page.context.close()
    # A link a few moments long has expired when the customer opens it.
    status, link = site.call(
        "channel", "POST", f"/v1/orders/{placed}/tracking-link", {"valid_days": 0.00001}
    )
    time.sleep(1.2)
    page = new_page(browser, 390, 844)
    assert page.goto(link["url"]).status == 410
    assert "expired" in page.inner_text("h1")
    check_public_page(page, "tracking-expired-phone", 390)
    page.context.close()
