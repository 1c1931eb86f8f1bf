"""The README's "Try it" block, run as a newcomer runs it: every command, in order, by bash,
against `dom serve` on a fresh demo database. Each request must answer as the README
implies (the last, an invalid feed on purpose, with 422) and the pipeline that reads the
metrics must find what it looks for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.edges.cli import main
from tests.servers import serving

ROOT = Path(__file__).resolve().parent.parent

# Each curl the block runs records its status and request here, one line each; the body
# goes on to the command's output as usual (a pipeline reads it).
CURL = r"""
curl() {
    local out rc
    out=$(command curl -w '\n@@status %{http_code} %{url_effective}' "$@")
    rc=$?
    printf '%s\n' "${out%$'\n'@@status *}"
    printf '%s\n' "${out##*$'\n'@@status }" >> "$STATUS_FILE"
    return $rc
}
"""


def try_it_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Try it") : text.index("\n## ", text.index("## Try it") + 1)]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
@pytest.mark.one_database
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_try_it_command_answers_as_the_readme_says(tmp_path, monkeypatch):
    path = str(tmp_path / "dom.db")
    monkeypatch.setenv("DOM_DATABASE", path)
    for command in (["db", "migrate"], ["demo", "load"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 0, result.output
    statuses = tmp_path / "statuses"
    with serving(path, workers=2, WEBHOOK_ALLOW="127.0.0.1") as port:
        script = try_it_block().replace("localhost:8000", f"127.0.0.1:{port}")
        run = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", CURL + script],
            cwd=ROOT,
            env={**os.environ, "STATUS_FILE": str(statuses)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, f"{run.stderr}\n{run.stdout[-3000:]}"
    answered = [line.split(" ", 1) for line in statuses.read_text().splitlines()]
    # Every curl ran (the shipment events' once per shipment and event).
    assert len(answered) >= len(re.findall(r"^[^#]*\bcurl\b", try_it_block(), re.M))
    *ordinary, (last_status, last_url) = answered
    wrong = [(status, url) for status, url in ordinary if not status.startswith("2")]
    assert wrong == [], wrong
    assert (last_status, last_url.rsplit("/", 1)[-1]) == ("422", "feeds")
