"""The ward dashboard in real Chromium against the real server: login, the ward filling in
live from the event stream, alarms by IEC 60601-1-8 colour and their acknowledgement, the
5-s polling fallback, and text from pumps never run as markup (C-14)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from openinfusion.server.api.auth import BAD_LOGIN
from tests.server._dashboard_feed import channel
from tests.server._dashboard_harness import (  # noqa: F401  (fixtures by name)
    DashServer,
    browser_fixture,
    dash_server_fixture,
    desktop_fixture,
    login,
    screenshot,
)

# IEC 60601-1-8 colours as the style sheet sets them (--high, --medium, --low).
RED = "rgb(208, 2, 27)"
YELLOW = "rgb(242, 194, 0)"
CYAN = "rgb(0, 169, 199)"


def card(page: Page, pump_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.pump-card[data-pump-id="{pump_id}"]')


def test_login_keeps_the_token_out_of_urls_and_storage_other_than_the_session(
    dash_server: DashServer, desktop: Page
) -> None:
    desktop.goto(f"{dash_server.base_url}/")
    desktop.fill("#username", dash_server.user("nurse"))
    desktop.fill("#password", "wrong password")
    desktop.click("form.login button[type=submit]")
    expect(desktop.locator("#login-error")).to_contain_text(BAD_LOGIN)  # the server's words
    login(desktop, dash_server, "nurse")
    token = desktop.evaluate("sessionStorage.getItem('openinfusion.token')")
    assert token and len(token) > 20
    assert token not in desktop.url
    assert desktop.evaluate("localStorage.length") == 0
    assert token not in desktop.evaluate("document.cookie")
    desktop.click("#logout")
    expect(desktop.locator("form.login")).to_be_visible()
    assert desktop.evaluate("sessionStorage.getItem('openinfusion.token')") is None
    # Logging out revoked the token on the server too.
    gone = httpx.get(
        f"{dash_server.base_url}/api/pumps", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status_code == 401


def test_the_ward_fills_in_live_without_reload(
    dash_server: DashServer, desktop: Page, tmp_path: Path
) -> None:
    login(desktop, dash_server, "nurse")
    expect(desktop.locator("#live")).to_have_text("Live")
    desktop.evaluate("window.sameDocument = true")

    pump = dash_server.pump("ICU-BED-01", "syringe")
    pump.status(
        [
            channel(
                1,
                "norepinephrine",
                rate_ml_h=5.25,
                infused_ml=12.5,
                vtbi_left_ml=37.5,
                dose=0.05,
                dose_unit="mcg/kg/min",
            )
        ],
        battery_percent=81,
    )
    bed = card(desktop, pump.pump_id)
    expect(bed.locator(".drug")).to_have_text("norepinephrine")
    expect(bed.locator(".dose")).to_have_text("0.05 mcg/kg/min")
    expect(bed.locator(".rate")).to_have_text("5.25 mL/h")
    expect(bed.locator(".vtbi")).to_have_text("37.5 mL")
    expect(bed.locator(".time-left")).to_have_text("7 h 09 min")  # 37.5 mL at 5.25 mL/h
    expect(bed).to_contain_text("battery 81 %")
    expect(bed.locator(".link-state")).to_have_text("online")

    pump.status(
        [
            channel(
                1,
                "norepinephrine",
                rate_ml_h=7.5,
                infused_ml=13.0,
                vtbi_left_ml=37.0,
                dose=0.07,
                dose_unit="mcg/kg/min",
            )
        ]
    )
    expect(bed.locator(".rate")).to_have_text("7.5 mL/h")
    expect(bed.locator(".time-left")).to_have_text("4 h 56 min")

    # Pumps of the simulated ward, each its own engine and link, join the same page.
    ward = subprocess.run(
        [
            str(Path(sys.executable).with_name("openinfusion")),
            "ward",
            "--server",
            dash_server.base_url,
            "--credentials",
            str(dash_server.data_dir / "demo-credentials.json"),
            "--pumps",
            "3",
            "--speed",
            "60",
            "--duration",
            "2",
            "--data-dir",
            str(tmp_path / "ward"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ward.returncode == 0, ward.stderr
    sim_cards = desktop.locator(".pump-card", has_text="SIM-")
    expect(sim_cards).to_have_count(3)
    expect(sim_cards.first.locator(".drug").first).not_to_be_empty()
    assert desktop.evaluate("window.sameDocument") is True, "the page was reloaded"
    screenshot(desktop, "ward-desktop")


def test_alarm_shows_by_priority_and_is_acknowledged(
    dash_server: DashServer, desktop: Page
) -> None:
    pump = dash_server.pump("ICU-BED-02", "lvp", channels=2)
    pump.status(
        [
            channel(
                1,
                "heparin",
                rate_ml_h=18,
                infused_ml=40,
                vtbi_left_ml=210,
                dose=18,
                dose_unit="units/kg/h",
            ),
            channel(2, "sodium chloride 0.9%", rate_ml_h=80, infused_ml=300, vtbi_left_ml=40),
        ]
    )
    login(desktop, dash_server, "nurse")
    bed = card(desktop, pump.pump_id)
    expect(bed).to_be_visible()
    expect(bed).not_to_have_class(re.compile(r"alarm-"))

    pump.alarm(
        "occlusion_downstream", "high", 1, message="downstream pressure reached the occlusion limit"
    )
    pump.alarm("near_end", "low", 2)
    expect(bed).to_have_class(re.compile(r"\balarm-high\b"))
    high = bed.locator(".channel[data-channel='1'] .alarm-line.prio-high")
    expect(high).to_contain_text("Occlusion downstream")
    expect(bed.locator(".channel[data-channel='2'] .alarm-line.prio-low")).to_contain_text(
        "Near end"
    )
    assert bed.evaluate("el => getComputedStyle(el).borderTopColor") == RED
    assert high.locator(".badge").evaluate("el => getComputedStyle(el).backgroundColor") == RED
    low_badge = bed.locator(".channel[data-channel='2'] .badge")
    assert low_badge.evaluate("el => getComputedStyle(el).backgroundColor") == CYAN

    pump.alarm("battery_low", "medium", None)
    medium = bed.locator(".alarm-line.prio-medium .badge")
    expect(medium).to_be_visible()
    assert medium.evaluate("el => getComputedStyle(el).backgroundColor") == YELLOW
    screenshot(desktop, "ward-alarm-desktop")

    alarms = dash_server.get("nurse", "/api/alarms?active=true")
    occlusion = next(
        a for a in alarms if a["pump_id"] == pump.pump_id and a["code"] == "occlusion_downstream"
    )
    desktop.click("#nav a[data-page='alarms']")
    row = desktop.locator(f"tr[data-alarm-id='{occlusion['id']}']")
    expect(row).to_contain_text("Occlusion downstream")
    # A keyboard user on the Acknowledge button keeps the focus when the list is redrawn.
    ack = row.locator("button.ack")
    ack.focus()
    ack.evaluate("el => { el.drawnBefore = true; }")
    pump.status([channel(1, "heparin", rate_ml_h=0, infused_ml=40, vtbi_left_ml=210)])
    desktop.wait_for_function(
        "id => !document.querySelector(`button.ack[data-alarm-id='${id}']`).drawnBefore",
        arg=occlusion["id"],
    )
    assert desktop.evaluate("document.activeElement.dataset.alarmId") == str(occlusion["id"])
    ack.click()
    expect(row.locator(".ack-note")).to_contain_text(f"{dash_server.user('nurse')} at")
    stored = next(
        a for a in dash_server.get("nurse", "/api/alarms?active=true") if a["id"] == occlusion["id"]
    )
    assert stored["acknowledged_by"] == dash_server.user("nurse")
    screenshot(desktop, "alarms-desktop")

    # The pump clears the condition: it leaves the active list live.
    pump.alarm("occlusion_downstream", "high", 1, state="cleared")
    expect(row).to_have_count(0)


def test_polls_every_5_s_while_the_event_stream_is_down_then_goes_live_again(
    dash_server: DashServer, desktop: Page
) -> None:
    desktop.route("**/api/events", lambda route: route.abort())
    login(desktop, dash_server, "nurse")
    expect(desktop.locator("#live")).to_have_text("Polling every 5 s")
    pump = dash_server.pump("ICU-BED-03", "syringe")
    pump.status(
        [
            channel(
                1,
                "propofol",
                rate_ml_h=12,
                infused_ml=5,
                vtbi_left_ml=45,
                dose=40,
                dose_unit="mcg/kg/min",
            )
        ]
    )
    expect(card(desktop, pump.pump_id).locator(".rate")).to_have_text("12 mL/h", timeout=8_000)
    # The stream comes back: the page returns to it (it retries every 10 s) and goes live.
    desktop.unroute("**/api/events")
    expect(desktop.locator("#live")).to_have_text("Live", timeout=12_000)


def test_c14_text_from_pumps_is_shown_as_text(dash_server: DashServer, desktop: Page) -> None:
    drug = "<script>window.injected = 'drug'</script>"
    message = "<img src=x onerror=\"window.injected = 'alarm'; alert(1)\">"
    version = "<svg onload=alert(2)>"
    pump = dash_server.pump("ICU-BED-04", "syringe")
    pump.status(
        [channel(1, drug, rate_ml_h=2, infused_ml=1, vtbi_left_ml=9)], library_version=version
    )
    pump.alarm("<b>bold code</b>", "medium", 1, message=message)
    login(desktop, dash_server, "nurse")
    bed = card(desktop, pump.pump_id)
    expect(bed.locator(".drug")).to_have_text(drug)
    expect(bed.locator(".alarm-msg")).to_have_text(f" — {message}")
    expect(bed).to_contain_text(f"library {version}")
    desktop.click("#nav a[data-page='alarms']")
    expect(desktop.locator("table.alarms")).to_contain_text("<b>bold code</b>")
    desktop.click("#nav a[data-page='library']")
    expect(desktop.locator("table.fleet-versions")).to_contain_text(version)
    desktop.goto(f"{dash_server.base_url}/#/pump/{pump.pump_id}")
    expect(desktop.locator("h1")).to_contain_text("ICU-BED-04")
    expect(desktop.locator(".channels-wide .drug")).to_have_text(drug)
    assert desktop.locator("img, svg[onload], b").count() == 0
    assert desktop.evaluate("window.injected") is None
    screenshot(desktop, "c14-payloads-as-text")


def test_security_headers_on_every_dashboard_file(dash_server: DashServer) -> None:
    for path in ("/", "/dashboard/js/app.js", "/dashboard/css/dashboard.css"):
        response = httpx.get(f"{dash_server.base_url}{path}")
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
        assert directives["script-src"] == ["'self'"], csp  # no inline script, no eval
        assert directives["default-src"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["require-trusted-types-for"] == ["'script'"]  # no HTML strings
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    page = httpx.get(f"{dash_server.base_url}/").text
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None, "inline script in index.html"
    assert re.search(r"\son[a-z]+=", page) is None, "inline event handler in index.html"
    assert httpx.get(f"{dash_server.base_url}/dashboard/../app.py").status_code == 404
    assert httpx.get(f"{dash_server.base_url}/dashboard/__init__.py").status_code == 404


def test_audit_trail_shows_who_acknowledged_and_the_chain_verifies(
    dash_server: DashServer, desktop: Page
) -> None:
    pump = dash_server.pump("ICU-BED-05", "syringe")
    pump.status([channel(1, "insulin", rate_ml_h=2, infused_ml=3, vtbi_left_ml=47)])
    pump.alarm("occlusion_downstream", "high", 1)
    alarm = next(
        a
        for a in dash_server.get("nurse", "/api/alarms?active=true")
        if a["pump_id"] == pump.pump_id
    )
    acked = httpx.post(
        f"{dash_server.base_url}/api/alarms/{alarm['id']}/ack",
        headers={"Authorization": f"Bearer {dash_server.token('physician')}"},
    )
    assert acked.status_code == 200, acked.text

    login(desktop, dash_server, "nurse")
    desktop.click("#nav a[data-page='audit']")
    expect(desktop.locator(".notice-na")).to_contain_text("not permitted")
    desktop.click("#logout")
    expect(desktop.locator("form.login")).to_be_visible()  # the page reloaded, memory cleared

    login(desktop, dash_server, "admin")
    desktop.click("#nav a[data-page='audit']")
    desktop.fill("input[name=action]", "alarm.ack")
    desktop.click("form button[type=submit]")
    entry = desktop.locator("table.audit tbody tr", has_text=f"alarm:{alarm['id']}")
    expect(entry).to_contain_text(dash_server.user("physician"))
    desktop.click("#verify-chain")
    expect(desktop.locator("#chain-check")).to_contain_text("Chain intact")
