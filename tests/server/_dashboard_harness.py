"""Fixtures for the dashboard's browser tests: the real server in its own process, real
Chromium (the Debian package, never a downloaded browser) driven by Playwright, logins and
screenshots under artifacts/dashboard/.

Chromium missing: the tests skip with the reason outside CI and fail when ``CI=true``.
Every page also fails its test on a script error, a Content-Security-Policy violation or
a JavaScript dialog (an injected ``alert`` would open one).

Test modules import the ``*_fixture`` functions; pytest knows them by their short names
(``dash_server``, ``browser``, ``desktop``, ``phone``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from openinfusion.security import PrivateKey, generate_private_key, save_public_key
from tests.server._dashboard_feed import FeedPump, enrolment_token

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "dashboard"
SERVE = Path(__file__).with_name("_dashboard_serve.py")
DESKTOP = {"width": 1280, "height": 860}
ONLINE_WINDOW_S = 4.0  # the server's default is 30 s; short here so a test sees "offline"
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"Chromium not found at {CHROMIUM} (install the Debian package: apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DashServer:
    """The running server: its URL, first accounts, and pumps fed to it by a test."""

    base_url: str
    data_dir: Path
    log_path: Path
    accounts: dict[str, dict[str, str]]
    pharmacy_key: PrivateKey  # its public half is trusted by the server for libraries
    pumps: list[FeedPump] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)

    def user(self, role: str) -> str:
        return self.accounts[role]["username"]

    def token(self, role: str) -> str:
        if role not in self._tokens:
            account = self.accounts[role]
            response = httpx.post(
                f"{self.base_url}/api/auth/token",
                data={"username": account["username"], "password": account["password"]},
                timeout=10,
            )
            response.raise_for_status()
            self._tokens[role] = str(response.json()["access_token"])
        return self._tokens[role]

    def get(self, role: str, path: str) -> Any:
        response = httpx.get(
            f"{self.base_url}{path}",
            headers={"Authorization": f"Bearer {self.token(role)}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def post_json(self, role: str, path: str, body: bytes) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}{path}",
            headers={
                "Authorization": f"Bearer {self.token(role)}",
                "Content-Type": "application/json",
            },
            content=body,
            timeout=10,
        )

    def pump(self, serial: str, kind: str, channels: int = 1) -> FeedPump:
        """A pump enrolled with a token issued by the biomedical engineer, and connected."""
        token = enrolment_token(self.base_url, self.token("biomed"))
        pump = FeedPump(self.base_url, token, serial=serial, kind=kind, channels=channels)
        pump.connect()
        self.pumps.append(pump)
        return pump


@pytest.fixture(scope="module", name="dash_server")
def dash_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashServer]:
    require_chromium()
    root = tmp_path_factory.mktemp("dashboard")
    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    os.chmod(data_dir, 0o700)
    pharmacy_key = generate_private_key()
    (data_dir / "pharmacy-keys").mkdir(mode=0o700)
    save_public_key(pharmacy_key.public_key(), data_dir / "pharmacy-keys" / "pharmacy.pem")
    port = free_port()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SERVE), str(data_dir), str(port), str(ONLINE_WINDOW_S)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer in 30 s:\n{log_path.read_text()}")
            time.sleep(0.1)
        listed = json.loads((data_dir / "demo-credentials.json").read_text())
        accounts = {a["role"]: a for a in listed}
        server = DashServer(base_url, data_dir, log_path, accounts, pharmacy_key)
        yield server
        for pump in server.pumps:
            pump.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, f"the server logged an error:\n{log_text}"


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageProblems:
    """What a page must never do: throw, break its own CSP, open a dialog."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def open_page(browser: Browser, viewport: dict[str, int]) -> tuple[Page, PageProblems]:
    context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC")  # type: ignore[arg-type]
    page = context.new_page()
    problems = PageProblems()
    page.on("pageerror", lambda err: problems.errors.append(f"page error: {err}"))

    def on_console(message: Any) -> None:
        text = str(message.text)
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            problems.errors.append(f"CSP violation: {text}")
        elif message.type == "error" and "Failed to load resource" not in text:
            problems.errors.append(f"console error: {text}")

    def on_dialog(dialog: Any) -> None:
        problems.dialogs.append(str(dialog.message))
        dialog.dismiss()

    page.on("console", on_console)
    page.on("dialog", on_dialog)
    page.set_default_timeout(10_000)
    return page, problems


@pytest.fixture(name="desktop")
def desktop_fixture(browser: Browser) -> Iterator[Page]:
    page, problems = open_page(browser, DESKTOP)
    yield page
    page.context.close()
    assert not problems.errors, problems.errors
    assert not problems.dialogs, f"a dialog opened (script injection?): {problems.dialogs}"


@pytest.fixture(name="phone")
def phone_fixture(browser: Browser) -> Iterator[Page]:
    page, problems = open_page(browser, PHONE)
    yield page
    page.context.close()
    assert not problems.errors, problems.errors
    assert not problems.dialogs, f"a dialog opened (script injection?): {problems.dialogs}"


def login(page: Page, server: DashServer, role: str) -> None:
    page.goto(f"{server.base_url}/")
    page.fill("#username", server.user(role))
    page.fill("#password", server.accounts[role]["password"])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("h1:has-text('Ward')")


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path
