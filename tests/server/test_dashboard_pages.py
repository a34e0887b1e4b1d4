"""The dashboard's other pages in real Chromium against the real server: pump detail with
its history chart, home-patient monitoring (CGM with an AGP band, 46-h chemotherapy
progress), the library page, the phone-sized layout, and the alarm sound schedule."""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from openinfusion.library import Library, sign_library
from openinfusion.library.signing import package_bytes
from tests.server._dashboard_feed import FeedPump, channel
from tests.server._dashboard_harness import (  # noqa: F401  (fixtures by name)
    ONLINE_WINDOW_S,
    DashServer,
    browser_fixture,
    dash_server_fixture,
    desktop_fixture,
    login,
    phone_fixture,
    screenshot,
)

RATES = [5.0, 5.0, 8.0, 8.0, 10.0, 10.0]


@pytest.fixture(scope="module", name="bed")
def bed_fixture(dash_server: DashServer) -> FeedPump:
    """A two-channel pump with six status reports (rate steps up on channel 1) and an alarm."""
    pump = dash_server.pump("ICU-BED-11", "lvp", channels=2)
    infused = 0.0
    for rate in RATES:
        infused += rate / 6
        pump.status(
            [
                channel(
                    1,
                    "heparin",
                    rate_ml_h=rate,
                    infused_ml=infused,
                    vtbi_left_ml=250 - infused,
                    dose=rate * 100 / 80,
                    dose_unit="units/kg/h",
                ),
                channel(
                    2,
                    "cefazolin",
                    rate_ml_h=100,
                    infused_ml=infused * 3,
                    vtbi_left_ml=100 - infused * 3,
                ),
            ]
        )
    pump.alarm("vtbi_complete", "medium", 2)
    return pump


@pytest.fixture(scope="module", name="quiet")
def quiet_fixture(dash_server: DashServer) -> tuple[FeedPump, float]:
    """A pump that reports once and then falls silent (and when it last spoke)."""
    pump = dash_server.pump("ICU-BED-19", "syringe")
    pump.status([channel(1, "midazolam", rate_ml_h=3, infused_ml=10, vtbi_left_ml=40)])
    pump.close()
    return pump, time.monotonic()


@pytest.fixture(scope="module", name="home")
def home_fixture(dash_server: DashServer) -> dict[str, FeedPump]:
    """An insulin pump that uploads two days of hourly CGM readings (75 % in 70-180 mg/dL)
    on reconnecting, an ambulatory pump half-way through its 5-FU cassette, and an implanted
    intrathecal pump reporting its reservoir."""
    insulin = dash_server.pump("HOME-INS-21", "insulin_patch")
    start = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=48)
    backlog: list[tuple[str, dict[str, Any], datetime | None]] = []
    for hour in range(48):
        glucose = 120 if hour % 8 < 6 else (62 if hour % 8 == 6 else 210)
        body = {
            "channels": [
                channel(
                    1,
                    "insulin aspart",
                    rate_ml_h=0.008,
                    infused_ml=hour * 0.008,
                    vtbi_left_ml=2.0,
                    dose=0.8,
                    dose_unit="units/h",
                )
            ],
            "patient": {"cgm_mg_dl": glucose, "iob_u": 1.25, "loop": "closed"},
        }
        backlog.append(("status", body, start + timedelta(hours=hour)))
    insulin.send_many(backlog)
    chemo = dash_server.pump("HOME-ONC-21", "ambulatory")
    chemo.status(
        [
            channel(
                1,
                "fluorouracil",
                rate_ml_h=2.1,
                infused_ml=48.3,
                vtbi_left_ml=48.3,
                dose=2400,
                dose_unit="mg/m2",
            )
        ]
    )
    implant = dash_server.pump("HOME-ITB-21", "implant")
    implant.status(
        [channel(1, "baclofen", rate_ml_h=0.006, infused_ml=7.5, vtbi_left_ml=None)],
        patient={"drug": "baclofen", "reservoir_ml": 12.5, "last_24h_mcg": 150.0, "ptm_presses": 2},
    )
    return {"insulin": insulin, "chemo": chemo, "implant": implant}


def points(page: Page, selector: str) -> list[tuple[float, float]]:
    text = page.locator(selector).first.get_attribute("points") or ""
    return [(float(x), float(y)) for x, y in (p.split(",") for p in text.split())]


def test_pump_detail_charts_rate_and_volume(
    dash_server: DashServer, bed: FeedPump, quiet: tuple[FeedPump, float], desktop: Page
) -> None:
    login(desktop, dash_server, "biomed")  # the role that may read stored pump messages
    desktop.click(f".pump-card[data-pump-id='{bed.pump_id}']")
    expect(desktop.locator("h1")).to_contain_text("ICU-BED-11")
    expect(desktop.locator("svg.chart polyline.s-rate")).to_have_count(1)
    expect(desktop.locator("svg.chart line.chart-marker")).to_have_count(0)  # no alarm on ch 1
    rate = points(desktop, "svg.chart polyline.s-rate")
    assert len(rate) == 2 * len(RATES) - 1  # drawn as steps
    heights = sorted({y for _, y in rate}, reverse=True)
    assert len(heights) == 3  # 5, 8 and 10 mL/h
    volume = points(desktop, "svg.chart polyline.s-volume")
    assert len(volume) == len(RATES)
    assert all(b[1] < a[1] for a, b in itertools.pairwise(volume))  # rising
    expect(desktop.locator(".channel[data-channel='2'] .alarm-line.prio-medium")).to_contain_text(
        "VTBI complete"
    )
    screenshot(desktop, "pump-detail-desktop")
    # A new report extends the open chart without a reload (only newer messages are fetched).
    bed.status(
        [
            channel(1, "heparin", rate_ml_h=12.0, infused_ml=sum(RATES) / 6,
                    vtbi_left_ml=250 - sum(RATES) / 6, dose=15, dose_unit="units/kg/h"),
            channel(2, "cefazolin", rate_ml_h=100, infused_ml=23, vtbi_left_ml=77),
        ]
    )  # fmt: skip
    expect(desktop.locator("svg.chart polyline.s-rate")).to_have_attribute(
        "points",
        re.compile(r"^(\S+ ){12}\S+$"),  # 7 reports drawn as steps: 13 points
    )
    desktop.click("button.tab[data-channel='2']")
    expect(desktop.locator("button.tab[data-channel='2']")).to_have_attribute(
        "aria-selected", "true"
    )
    # The VTBI-complete alarm of channel 2 marks both of its charts, in medium yellow.
    expect(desktop.locator("svg.chart line.chart-marker.marker-medium")).to_have_count(2)
    channel_2 = points(desktop, "svg.chart polyline.s-rate")
    assert len(channel_2) == 2 * (len(RATES) + 1) - 1  # seven reports
    assert len({y for _, y in channel_2}) == 1  # channel 2 ran at one rate


def test_nurse_sees_the_pump_history_chart_and_infusion_records(
    dash_server: DashServer, bed: FeedPump, desktop: Page
) -> None:
    """Clinicians may read a pump's message history (unit scoping aside): a nurse gets the
    same rate chart as biomedical engineering, and the infusion records beside it."""
    login(desktop, dash_server, "nurse")
    desktop.goto(f"{dash_server.base_url}/#/pump/{bed.pump_id}")
    expect(desktop.locator("svg.chart polyline.s-rate")).to_have_count(1)
    expect(desktop.locator(".notice-na")).to_have_count(0)
    expect(desktop.locator(".channels-wide .drug").first).to_have_text("heparin")
    heparin = desktop.locator("table.infusions tr", has_text="heparin")
    expect(heparin).to_contain_text("running")
    expect(heparin).to_contain_text("7.67 mL")  # (5 + 5 + 8 + 8 + 10 + 10) mL/h x 10 min


def test_home_patients_cgm_agp_and_chemotherapy_progress(
    dash_server: DashServer, home: dict[str, FeedPump], desktop: Page
) -> None:
    login(desktop, dash_server, "biomed")
    desktop.click("#nav a[data-page='remote']")
    insulin = desktop.locator(f".remote-card[data-pump-id='{home['insulin'].pump_id}']")
    expect(insulin.locator(".tir")).to_have_text("75 %")
    expect(insulin.locator(".cgm-now")).to_have_text("210 mg/dL")  # the last hour's reading
    expect(insulin).to_contain_text("1.25 U")
    expect(insulin.locator("polygon.chart-band")).to_have_count(2)  # 5-95 and 25-75
    median = points(
        desktop, f".remote-card[data-pump-id='{home['insulin'].pump_id}'] polyline.s-median"
    )
    assert len(median) == 24  # one point per hour of the day
    expect(insulin.locator(".agp-note")).to_contain_text("From 2 days")  # 47 h of readings
    chemo = desktop.locator(f".remote-card[data-pump-id='{home['chemo'].pump_id}']")
    expect(chemo.locator(".progress")).to_have_attribute("aria-valuenow", "50")
    expect(chemo).to_contain_text("48.3 mL of 96.6 mL (50 %)")
    expect(chemo).to_contain_text("23 h of 46 h")  # 48.3 mL at 2.1 mL/h, as much again to go
    implant = desktop.locator(f".remote-card[data-pump-id='{home['implant'].pump_id}']")
    expect(implant.locator(".reservoir")).to_have_text("12.5 mL")
    screenshot(desktop, "home-patients-desktop")


def test_library_page_lists_fleet_and_published_versions(
    dash_server: DashServer, bed: FeedPump, mini_library: Library, desktop: Page
) -> None:
    signed_at = datetime(2026, 11, 1, tzinfo=UTC)
    for version in ("2026.1.0", "2026.2.0"):
        library = mini_library.model_copy(update={"version": version})
        package = sign_library(library, dash_server.pharmacy_key, "A. Pharmacist", signed_at)
        published = dash_server.post_json("pharmacist", "/api/libraries", package_bytes(package))
        assert published.status_code == 201, published.text
    bed.status(
        [channel(1, "heparin", rate_ml_h=10, infused_ml=9, vtbi_left_ml=241)],
        library_version="2026.2.0",
    )
    login(desktop, dash_server, "pharmacist")
    desktop.click("#nav a[data-page='library']")
    expect(desktop.locator("table.fleet-versions tr", has_text="2026.2.0")).to_contain_text(
        "ICU-BED-11"
    )
    newer = desktop.locator("table.libraries tr[data-version='2026.2.0']")
    expect(newer).to_contain_text("A. Pharmacist")
    expect(newer.locator("td").nth(4)).to_have_text("1")  # on one pump
    expect(desktop.locator("table.libraries tbody tr")).to_have_count(2)
    # The server's diff between the two versions: here only the version field changed.
    desktop.select_option("select[name=from]", "2026.1.0")
    desktop.select_option("select[name=to]", "2026.2.0")
    desktop.click("form.diff-form button[type=submit]")
    line = desktop.locator("ul.diff li.diff-changed")
    expect(line).to_have_count(1)
    expect(line).to_contain_text("version")
    expect(line).to_contain_text("2026.1.0 → 2026.2.0")
    screenshot(desktop, "library-desktop")


def test_phone_layout_has_no_horizontal_scroll(
    dash_server: DashServer, bed: FeedPump, home: dict[str, FeedPump], phone: Page
) -> None:
    long_name = "dextrose10%_potassiumchloride20mmol_magnesiumsulfate2g_per_L_premixed"  # one word
    wide = dash_server.pump("ICU-BED-20", "syringe")
    wide.status([channel(1, long_name, rate_ml_h=40, infused_ml=100, vtbi_left_ml=900)])
    wide.alarm("air_in_line", "high", 1, message=long_name)
    login(phone, dash_server, "biomed")
    expect(phone.locator(".drug", has_text=long_name)).to_be_visible()
    for route in ("ward", "alarms", "library", "remote", "pump"):
        path = f"pump/{bed.pump_id}" if route == "pump" else route
        phone.goto(f"{dash_server.base_url}/#/{path}")
        phone.wait_for_selector(f".page-{route} h1")
        if route in ("pump", "remote"):
            phone.wait_for_selector(f".page-{route} svg.chart polyline")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{route}: page is {width} px wide on a 390 px screen"
        screenshot(phone, f"{route}-phone")


def test_alarm_sound_schedule_by_priority(dash_server: DashServer, desktop: Page) -> None:
    login(desktop, dash_server, "nurse")
    result = desktop.evaluate(
        """async () => {
          const m = await import('/dashboard/js/sound.js');
          const st = {announced: new Set(), last: {}};
          const high = {id: 1, priority: 'high'}, medium = {id: 2, priority: 'medium'};
          const low = {id: 3, priority: 'low'};
          return [
            m.dueBurst([high], st, 0),              // new high: sounds
            m.dueBurst([high], st, 1000),           // too soon to repeat
            m.dueBurst([high, medium], st, 2000),   // a medium never sounds over a high
            m.dueBurst([high, medium], st, 8000),   // high repeats
            m.dueBurst([medium], st, 9000),         // high gone: medium repeats when due
            m.dueBurst([low], {announced: new Set(), last: {}}, 0),
            m.dueBurst([low], {announced: new Set([3]), last: {low: 0}}, 60000),  // low: once
            m.playBurst('high'),                    // muted until switched on
          ];
        }"""
    )
    assert result == ["high", None, None, "high", "medium", "low", None, False]
    desktop.click("#sound")  # a user gesture may start audio
    expect(desktop.locator("#sound")).to_have_attribute("aria-pressed", "true")
    assert desktop.evaluate(
        "async () => (await import('/dashboard/js/sound.js')).playBurst('high')"
    )
    desktop.click("#sound")
    expect(desktop.locator("#sound")).to_have_text(re.compile("Sound off"))


def test_a_silent_pump_is_greyed_with_last_seen(
    dash_server: DashServer, quiet: tuple[FeedPump, float], desktop: Page
) -> None:
    pump, spoke_at = quiet
    time.sleep(max(0.0, spoke_at + ONLINE_WINDOW_S + 0.5 - time.monotonic()))
    login(desktop, dash_server, "nurse")
    silent = desktop.locator(f".pump-card[data-pump-id='{pump.pump_id}']")
    expect(silent).to_have_class(re.compile(r"\boffline\b"))
    expect(silent.locator(".link-state")).to_have_text(
        re.compile(r"^offline — last seen \d+ s ago$")
    )
    expect(silent.locator(".drug")).to_have_text("midazolam")  # last known values stay shown
    # Retried assertions: a live redraw may replace the card between two reads.
    expect(silent).to_have_css("background-color", "rgb(228, 231, 234)")
    expect(silent).to_have_css("border-top-style", "dashed")
