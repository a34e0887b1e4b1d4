"""The maintenance page in real Chromium against the real server: pumps that reported a
worn battery and nuisance occlusions lead the queue with their reasons, a biomedical
engineer records a service, and a nurse may not see the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.server._dashboard_feed import FeedPump, channel
from tests.server._dashboard_harness import (  # noqa: F401  (fixtures by name)
    DashServer,
    browser_fixture,
    dash_server_fixture,
    desktop_fixture,
    login,
    screenshot,
)

RANKING_S = 90_000  # the server trains its risk model on the first request


def _report_hours(pump: FeedPump, percent_per_h: float, hours: int = 8) -> None:
    """Hourly statuses (pump time) on battery while infusing."""
    for hour in range(hours + 1):
        pump.status(
            [channel(1, "heparin", rate_ml_h=5.0, infused_ml=5.0 * hour, vtbi_left_ml=100.0)],
            t_s=3600.0 * hour,
            battery_percent=100.0 - percent_per_h * hour,
            on_mains=False,
        )


@pytest.fixture(scope="module", name="fleet")
def fleet_fixture(dash_server: DashServer) -> dict[str, FeedPump]:
    pumps = {
        "worn": dash_server.pump("MAINT-WORN-BATTERY", "syringe"),
        "drift": dash_server.pump("MAINT-DRIFTING-SENSOR", "syringe"),
        "ok1": dash_server.pump("MAINT-OK-1", "syringe"),
        "ok2": dash_server.pump("MAINT-OK-2", "syringe"),
    }
    _report_hours(pumps["worn"], 2.5)
    for name in ("drift", "ok1", "ok2"):
        _report_hours(pumps[name], 1.0)
    for _ in range(6):
        pumps["drift"].alarm("occlusion_downstream", "high", 1)
        pumps["drift"].alarm("occlusion_downstream", "high", 1, state="cleared")
    pumps["drift"].send("event", {"kind": "self_test", "data": {"drive_effort": 1.02}})
    return pumps


def test_queue_ranks_worn_pumps_first_and_records_a_service(
    desktop: Page, dash_server: DashServer, fleet: dict[str, FeedPump]
) -> None:
    login(desktop, dash_server, "biomed")
    desktop.goto(f"{dash_server.base_url}/#/maintenance")
    rows = desktop.locator("table.maintenance tbody tr")
    expect(rows).to_have_count(4, timeout=RANKING_S)
    top = {rows.nth(0).get_attribute("data-pump-id"), rows.nth(1).get_attribute("data-pump-id")}
    assert top == {fleet["worn"].pump_id, fleet["drift"].pump_id}
    worn = desktop.locator(f"tr[data-pump-id='{fleet['worn'].pump_id}']")
    expect(worn.locator(".reasons")).to_contain_text("battery run time 60 % below the fleet median")
    drift = desktop.locator(f"tr[data-pump-id='{fleet['drift'].pump_id}']")
    expect(drift.locator(".reasons")).to_contain_text("occlusion alarms")
    expect(drift.locator(".reasons")).to_contain_text("fleet median")
    expect(desktop.locator("table.maintenance")).to_contain_text("MAINT-OK-2")
    screenshot(desktop, "maintenance")

    worn.locator("button.serviced").click()
    expect(desktop.locator(".notice-ok")).to_contain_text("Preventive maintenance recorded")
    expect(
        desktop.locator(f"tr[data-pump-id='{fleet['worn'].pump_id}'] .since-service")
    ).to_have_text("0 h")

    desktop.select_option("select[name=horizon]", "30")
    desktop.click("form.diff-form button[type=submit]")
    expect(desktop.locator("#maintenance-model")).to_contain_text(
        "within 30 days", timeout=RANKING_S
    )


def test_nurse_may_not_see_the_maintenance_queue(
    desktop: Page, dash_server: DashServer, fleet: dict[str, FeedPump]
) -> None:
    login(desktop, dash_server, "nurse")
    desktop.goto(f"{dash_server.base_url}/#/maintenance")
    expect(desktop.locator(".notice-na")).to_have_attribute("data-reason", "forbidden")
    expect(desktop.locator("table.maintenance")).to_have_count(0)
