"""Pages, in a real browser: Debian's Chromium driven by Playwright, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import create_app
from app.platform import auth
from app.platform import db as database
from tests.browser import chromium, needs_chromium, screenshot
from tests.servers import serving

pytestmark = needs_chromium


@pytest.fixture
def browser():
    with chromium() as launched:
        yield launched


def test_the_ruleset_language_reference_reads_as_a_page(db_path, browser):
    app = create_app({"DATABASE": db_path})
    with database.open_from_config(app.config) as connection:
        key = auth.create_key(connection, "analyst")[1]
    with serving(db_path, 1, DISPATCH_EMBEDDED="false") as port:
        page = browser.new_page(
            extra_http_headers={"Authorization": f"Bearer {key}"},
            viewport={"width": 1200, "height": 900},
        )
        page.goto(f"http://127.0.0.1:{port}/v1/docs/rulesets")
        assert page.title() == "The ruleset language"
        headings = page.locator("h2").all_inner_texts()
        assert headings == [
            "Facts",
            "Facts of returns rulesets",
            "Facts of replenishment rulesets",
            "Operators",
            "Rules",
            "Actions",
            "Settings",
            "Settings of returns rulesets",
            "Settings of replenishment rulesets",
            "Cookbook",
        ]
        # Tables render as tables: the candidate's fields, one row each.
        candidate = page.locator("h3", has_text="candidate").locator(
            "xpath=following-sibling::table[1]"
        )
        facts = json.loads((Path(__file__).parent.parent / "schemas/facts.schema.json").read_text())
        fields = [f for f in facts["$defs"]["candidate"]["properties"] if f != "fact"]
        assert candidate.locator("tr").count() == len(fields) + 1  # and the header
        assert candidate.locator("td code", has_text="node_region").count() == 1
        # The cookbook's policies, each with its rules as a code block.
        assert page.locator("h3", has_text="Drop-ship only as a last resort").count() == 1
        assert page.locator("pre code").count() >= 22
        screenshot(page, "ruleset-reference-top")
        # Returns rules have their own facts: one table row per field of a return point.
        returns_facts = json.loads(
            (Path(__file__).parent.parent / "schemas/returns-facts.schema.json").read_text()
        )
        point = page.locator("h3", has_text="returns: point").locator(
            "xpath=following-sibling::table[1]"
        )
        assert point.locator("tr").count() == len(returns_facts["$defs"]["point"]["properties"])
        point.scroll_into_view_if_needed()
        screenshot(page, "ruleset-reference-returns")
        # And replenishment rules theirs: one row per field of a source.
        replenishment_facts = json.loads(
            (Path(__file__).parent.parent / "schemas/replenishment-facts.schema.json").read_text()
        )
        source = page.locator("h3", has_text="replenishment: source").locator(
            "xpath=following-sibling::table[1]"
        )
        fields = replenishment_facts["$defs"]["source"]["properties"]
        assert source.locator("tr").count() == len(fields)
        source.scroll_into_view_if_needed()
        screenshot(page, "ruleset-reference-replenishment")
        page.locator("h2", has_text="Cookbook").scroll_into_view_if_needed()
        screenshot(page, "ruleset-reference-cookbook")
        # Without a key the page is refused, in the one error shape.
        anonymous = browser.new_page()
        answer = anonymous.goto(f"http://127.0.0.1:{port}/v1/docs/rulesets")
        assert answer.status == 401
        assert answer.json()["error"]["code"] == "unauthorized"
