"""Browser tests: Debian's Chromium driven by Playwright, against real server processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from coldchain.demo import free_port, wait_for_port
from tests.conftest import PASSWORD
from tests.support.processes import ColdchainProcess

# Debian's package (apt-get install chromium chromium-driver); never `playwright install`.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@dataclass
class Site:
    """The running system: its base URL and its processes."""

    url: str
    server: ColdchainProcess
    worker: ColdchainProcess


@pytest.fixture
def site(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Site]:
    """`coldchain serve` and `coldchain ingest` on the test's database and broker."""
    port = free_port()
    env = {**worker_env, "COLDCHAIN_HTTP_DEBUG": "true"}
    server = ColdchainProcess(
        ["serve", "--port", str(port), "--threads", "4"], env, tmp_path / "server.log"
    ).start()
    worker = ColdchainProcess(["ingest"], env, tmp_path / "worker.log").start()
    try:
        assert wait_for_port(port, 30), server.log()
        worker.wait_for_log("connected to", timeout_s=30)
        yield Site(f"http://127.0.0.1:{port}", server, worker)
    finally:
        assert worker.stop() == 0, worker.log()
        assert server.stop() == 0, server.log()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, timezone_id="Europe/Paris")
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def sign_in(page: Page, site: Site, username: str) -> None:
    page.goto(f"{site.url}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
