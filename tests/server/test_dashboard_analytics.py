"""The dashboard's Safety page (#/analytics) in real Chromium against the real server: DERS
compliance, alerts and overrides, library refinement candidates and alarm burden from
events a pump sent over the gateway; a clinical role is told the page is not for it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.analytics._safety_fleet import alert
from tests.server._dashboard_feed import FeedPump, channel
from tests.server._dashboard_harness import (  # noqa: F401  (fixtures by name)
    DashServer,
    browser_fixture,
    dash_server_fixture,
    desktop_fixture,
    login,
    phone_fixture,
    screenshot,
)

NOREPI = [round(1.1 + 0.1 * i, 1) for i in range(12)]  # overridden doses, mcg/kg/min


def ders(**fields: Any) -> dict[str, Any]:
    base = {
        "library": True,
        "drug": "norepinephrine",
        "entry": "Norepinephrine",
        "care_area": "Adult ICU",
        "verdict": "ok",
        "dose": 0.1,
        "dose_unit": "mcg/kg/min",
        "rate_ml_h": 3.0,
        "alerts": [],
        "override_reason": None,
        "after_alert": None,
    }
    return {**base, **fields}


def event(kind: str, data: dict[str, Any]) -> tuple[str, dict[str, Any], None]:
    return ("event", {"kind": kind, "channel": 1, "data": {"channel": 0, **data}}, None)


@pytest.fixture(scope="module", name="safety_pump")
def safety_pump_fixture(dash_server: DashServer) -> FeedPump:
    """An ICU syringe pump: one program within limits, a basic infusion, twelve soft-limit
    overrides of norepinephrine (1.1 ... 2.2 mcg/kg/min), a tenfold dose blocked then
    reprogrammed, an infusion running, and an occlusion alarm that cleared at once."""
    pump = dash_server.pump("ICU-SAFE-1", "syringe", channels=2)
    items = [
        event("programmed", {"ders": ders()}),
        event(
            "programmed",
            {
                "ders": ders(
                    library=False,
                    drug=None,
                    entry=None,
                    verdict="soft",
                    override_reason="maintenance fluid, no drug",
                )
            },
        ),
    ]
    for i, dose in enumerate(NOREPI):
        reason = "titrating to MAP goal" if i < 8 else "per physician order"
        found = alert(dose, "soft_max", 1.0, 3.0)
        items.append(
            event(
                "programmed",
                {"ders": ders(verdict="soft", dose=dose, override_reason=reason, alerts=[found])},
            )
        )
    blocked = alert(10.0, "hard_max", 3.0, 3.0)
    items.append(
        event(
            "ders_alert",
            {**ders(verdict="hard", alerts=[blocked]), "outcome": "blocked", "level": "hard"},
        )
    )
    items.append(event("programmed", {"ders": ders(after_alert="hard")}))
    pump.send_many(items)
    pump.status([channel(1, "norepinephrine", rate_ml_h=3, infused_ml=1, vtbi_left_ml=49)])
    pump.alarm("occlusion_downstream", "high", 1)
    pump.alarm("occlusion_downstream", "high", 1, state="cleared")
    return pump


def test_safety_page_shows_the_three_reports(
    dash_server: DashServer, safety_pump: FeedPump, desktop: Page
) -> None:
    login(desktop, dash_server, "pharmacist")
    desktop.click("#nav a[data-page='analytics']")
    expect(desktop.locator("h1")).to_have_text("Safety and compliance")
    # 15 programs, one of them a basic infusion
    expect(desktop.locator("#compliance-rate")).to_have_text("93.3 %")
    expect(desktop.locator("#compliance table.by-area tbody tr")).to_have_count(1)
    expect(desktop.locator("#compliance meter")).not_to_have_count(0)
    expect(desktop.locator("#override-count")).to_have_text("12")
    expect(desktop.locator("#hard-block-count")).to_have_text("1")
    expect(desktop.locator("#overrides ul.reasons li").first).to_have_text(
        "titrating to MAP goal (8)"
    )
    row = desktop.locator("#refinement tr[data-drug='norepinephrine'][data-bound='soft_max']")
    expect(row.locator("td.suggested")).to_have_text("2.09")  # p90 of 1.1 ... 2.2, below 3
    expect(row).to_contain_text("raise the soft maximum to 2.09")
    expect(desktop.locator("#alarm-count")).to_have_text("1")
    expect(desktop.locator("#alarm-burden tr[data-code='occlusion_downstream']")).to_contain_text(
        "Occlusion downstream"
    )
    screenshot(desktop, "analytics-desktop")


def test_filters_reload_the_reports(
    dash_server: DashServer, safety_pump: FeedPump, desktop: Page
) -> None:
    login(desktop, dash_server, "biomed")
    desktop.click("#nav a[data-page='analytics']")
    expect(desktop.locator("#compliance-rate")).to_have_text("93.3 %")
    desktop.fill("#analytics-filters input[name=unit]", "No Such Unit")
    desktop.click("#analytics-filters button[type=submit]")
    expect(desktop.locator("#compliance-rate")).to_have_text("—")
    expect(desktop.locator("#alarm-count")).to_have_text("0")
    desktop.fill("#analytics-filters input[name=unit]", "")
    desktop.fill("#analytics-filters input[name=since]", "2001-01-01")
    desktop.fill("#analytics-filters input[name=until]", "2001-01-02")
    desktop.click("#analytics-filters button[type=submit]")
    expect(desktop.locator("#refinement .notice")).to_contain_text("No soft limit was overridden")


def test_phone_layout_and_a_clinical_role(
    dash_server: DashServer, safety_pump: FeedPump, phone: Page
) -> None:
    login(phone, dash_server, "nurse")
    phone.goto(f"{dash_server.base_url}/#/analytics")
    expect(phone.locator(".notice-na")).to_contain_text("your role is not permitted")
    expect(phone.locator("#compliance")).to_have_count(0)
