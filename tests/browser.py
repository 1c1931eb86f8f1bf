"""A real browser for page tests: Debian's Chromium driven by Playwright (no download).

Screenshots go to ``tests/screenshots/`` (not kept in git) for people to look at, or to
``DOM_SCREENSHOTS`` when set (``make screenshots`` writes ``docs/screenshots/``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DOM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("DOM_SCREENSHOTS") or Path(__file__).parent / "screenshots")
# The documentation keeps what a person sees on opening each screen (one window); a test
# run keeps whole pages, for a reviewer to scroll.
WHOLE_PAGES = not os.environ.get("DOM_SCREENSHOTS")

# Page tests are about what the browser shows; the API beneath them is tested on every
# database, so they run once, on SQLite.
needs_chromium = [
    pytest.mark.slow,
    pytest.mark.one_database,
    pytest.mark.skipif(
        not shutil.which(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]


@contextlib.contextmanager
def chromium():
    """A headless Chromium for the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page, name: str, full_page: bool = False, at: str | None = None) -> Path:
    """Save what the page shows as ``<name>.png`` (the whole page, or the window scrolled to
    ``at``); return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    whole = full_page and WHOLE_PAGES
    if at is not None and not whole:
        page.locator(at).first.scroll_into_view_if_needed()
    page.screenshot(path=path, full_page=whole)
    return path
