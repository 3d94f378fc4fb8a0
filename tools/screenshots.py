"""Save a PNG of each page from a running `coldchain demo`: `make screenshots`.

Starts the demo on free ports, signs in as each demo user with Debian's Chromium (driven by
Playwright, never `playwright install`), saves the pages into docs/screenshots/, and stops
the demo.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))

from coldchain.demo import free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def start_demo(workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = workdir / "demo.log"
    env = {**os.environ, "COLDCHAIN_DEMO_DATABASE_PATH": str(workdir / "var" / "demo.db")}
    process = subprocess.Popen(
        [sys.executable, "-m", "coldchain", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while "Press Ctrl-C" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the demo did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.5)
    return process, port, log


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(f"{username}-demo-pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shoot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(800)  # charts draw after their data arrives
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"saved docs/screenshots/{name}.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="coldchain-shots-"))
    process, port, _log = start_demo(workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        time.sleep(12)  # let the simulated loggers report a few readings
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(
                viewport={"width": 1366, "height": 860}, timezone_id="Europe/Paris"
            )
            page = context.new_page()
            page.goto(f"{base}/login")
            shoot(page, "01-sign-in")
            sign_in(page, base, "coordinator")
            shoot(page, "02-coordinator-board")
            page.goto(f"{base}/shipments/new")
            page.get_by_label(re.compile("^COI")).fill("W123426000999")
            shoot(page, "03-new-shipment")
            page.goto(f"{base}/shipments/3")
            shoot(page, "04-shipment")
            context.clear_cookies()
            sign_in(page, base, "clinic")
            shoot(page, "05-clinic-incoming")
            page.goto(f"{base}/shipments/2/receive")
            shoot(page, "06-clinic-receipt")
            context.clear_cookies()
            sign_in(page, base, "qa")
            shoot(page, "07-qa")
            context.clear_cookies()
            sign_in(page, base, "auditor")
            shoot(page, "08-excursion-log")
            page.goto(f"{base}/audit")
            shoot(page, "09-audit-trail")
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
