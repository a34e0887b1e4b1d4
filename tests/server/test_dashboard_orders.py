"""The EHR orders page in real Chromium against the real server, orders arriving over MLLP:
status, patient, pump and channel, drug and the reason of a refusal, following the live
event stream (pre-populated, then running once the pump reports the bedside confirmation);
a patient merge shows the channel to re-verify; text from the EHR is shown as text."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from openinfusion.interop.mllp import MLLPClient
from openinfusion.library.loading import sample_library
from openinfusion.library.signing import package_bytes, sign_library
from openinfusion.security import generate_private_key, save_public_key
from tests.server._dashboard_feed import FeedPump, channel, enrolment_token
from tests.server._dashboard_harness import (  # noqa: F401  (fixtures by name)
    REPO,
    DashServer,
    browser_fixture,
    desktop_fixture,
    free_port,
    login,
    require_chromium,
    screenshot,
)

UNIT = "adult-icu"
SERVE = (
    "import sys, uvicorn; from pathlib import Path;"
    "from openinfusion.server.app import create_app;"
    "from openinfusion.server.config import Settings;"
    "d, p, h = sys.argv[1:4];"
    "s = Settings(data_dir=Path(d), port=int(p), hl7_listen_port=int(h));"
    "uvicorn.run(create_app(s), host='127.0.0.1', port=int(p), log_level='warning')"
)


class OrderServer(DashServer):
    hl7_port: int = 0

    def send_hl7(self, text: str) -> str:
        async def exchange() -> bytes:
            async with MLLPClient("127.0.0.1", self.hl7_port) as client:
                return await client.send(text.encode())

        # Playwright's sync API keeps an event loop on this thread: talk MLLP from another.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, exchange()).result(timeout=60).decode()

    def post(self, role: str, path: str, body: dict[str, Any]) -> Any:
        response = self.post_json(role, path, json.dumps(body).encode())
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture(scope="module", name="server")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderServer]:
    require_chromium()
    root = tmp_path_factory.mktemp("dash-orders")
    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    os.chmod(data_dir, 0o700)
    pharmacy_key = generate_private_key()
    (data_dir / "pharmacy-keys").mkdir(mode=0o700)
    save_public_key(pharmacy_key.public_key(), data_dir / "pharmacy-keys" / "pharmacy.pem")
    port, hl7_port = free_port(), free_port()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(data_dir), str(port), str(hl7_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded machine imports slowly
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer in 240 s:\n{log_path.read_text()}")
            time.sleep(0.1)
        listed = json.loads((data_dir / "demo-credentials.json").read_text())
        server = OrderServer(
            base_url, data_dir, log_path, {a["role"]: a for a in listed}, pharmacy_key
        )
        server.hl7_port = hl7_port
        lib = sample_library()
        package = sign_library(lib, pharmacy_key, "A. Pharmacist", datetime.now(UTC))
        published = server.post_json("pharmacist", "/api/libraries", package_bytes(package))
        assert published.status_code == 201, published.text
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


def rgv(control: str, placer: str, mrn: str, serial: str, drug: str = "Dopamine") -> str:
    """An IHE PCD-03 order (TF-2 E.2.3 dopamine 400 mg/250 mL at 5 mcg/kg/min) for channel 1."""
    return (
        "MSH|^~\\&|EHR|HOSP|OPENINFUSION|HOSP|20261203120000+0000||RGV^O15^RGV_O15|"
        f"{control}|P|2.6|||AL|ER||UNICODE UTF-8|||IHE_PCD_PIV_001\r"
        f"PID|||{mrn}^^^HOSP^MR||Doe^John||19660101|M\r"
        f"ORC|NW|{placer}\r"
        f"RXG|1|||1234^{drug}|250||mL^mL^UCUM||||||||5|ug/kg/min^ug/kg/min^UCUM|400|"
        "mg^mg^UCUM|||||250|mL^mL^UCUM\r"
        "RXR|IV\r"
        "OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1|||||||X|||||||"
        f"^^{serial}^PUMPVENDOR\r"
        "OBX|2|NM|68063^MDC_ATTR_PT_WEIGHT^MDC||80|kg^kg^UCUM\r"
    )


@pytest.fixture(scope="module", name="bed")
def bed_fixture(server: OrderServer) -> dict[str, Any]:
    """A two-channel pump in the adult ICU running the published library, channel 1
    associated with a patient (the order's patient) and another patient in the unit."""
    token = enrolment_token(server.base_url, server.token("biomed"), unit=UNIT)
    pump = FeedPump(server.base_url, token, serial="ICU-ORD-1", kind="lvp", channels=2)
    pump.connect()
    server.pumps.append(pump)
    version = sample_library().version
    pump.status([{"channel": 1, "state": "idle"}], library={"name": "x", "version": version})
    patients = []
    for mrn in ("MRN-DASH-1", "MRN-DASH-2"):
        patients.append(
            server.post(
                "physician",
                "/api/patients",
                {
                    "mrn": mrn,
                    "family_name": "Doe",
                    "given_name": "John",
                    "birth_date": "1966-01-01",
                    "sex": "male",
                    "weight_kg": 80,
                    "unit": UNIT,
                },
            )
        )
    server.post(
        "nurse",
        f"/api/pumps/{pump.pump_id}/channels/1/association",
        {"patient_id": patients[0]["id"]},
    )
    return {"pump": pump, "patients": patients}


def orders(server: OrderServer) -> list[dict[str, Any]]:
    return list(server.get("nurse", "/api/orders"))


def test_orders_page_follows_the_pump(
    server: OrderServer, bed: dict[str, Any], desktop: Page
) -> None:
    pump: FeedPump = bed["pump"]
    reply = server.send_hl7(rgv("D-1", "ORD-1", "MRN-DASH-1", "ICU-ORD-1"))
    assert "MSA|AA|D-1" in reply, reply
    wrong = server.send_hl7(rgv("D-2", "ORD-2", "MRN-DASH-2", "ICU-ORD-1"))
    assert "wrong patient" in wrong
    # text the EHR sent is shown as text, never run (C-14)
    server.send_hl7(
        rgv("D-3", "ORD-3", "MRN-DASH-1", "ICU-ORD-1", drug="<img src=x onerror=alert(1)>")
    )
    accepted = next(o for o in orders(server) if o["placer_order_id"] == "ORD-1")

    login(desktop, server, "nurse")
    desktop.goto(f"{server.base_url}/#/orders")
    row = desktop.locator(f"tr[data-order-id='{accepted['id']}']")
    expect(row).to_have_attribute("data-status", "unconfirmed")
    expect(row).to_contain_text("MRN-DASH-1")
    expect(row).to_contain_text("Dopamine")
    expect(row).to_contain_text("ICU-ORD-1")
    refused = desktop.locator("tr[data-status='rejected']", has_text="ORD-2")
    expect(refused).to_contain_text("wrong patient")
    expect(desktop.locator("tr", has_text="ORD-3")).to_contain_text("<img src=x onerror=alert(1)>")
    assert desktop.locator("img[src='x']").count() == 0

    # the pump pre-populates it: the page follows the live stream, no reload
    command = accepted["command_id"]
    pump.send(
        "command_result",
        {
            "command_id": command,
            "outcome": "awaiting_confirmation",
            "reason": "pre-populated: waits for confirmation at the bedside",
            "channel": 1,
            "action": "program",
        },
    )
    expect(row).to_have_attribute("data-status", "pre-populated")
    expect(row).to_contain_text("confirm at the bedside")
    pump.send(
        "command_result",
        {
            "command_id": command,
            "outcome": "accepted",
            "reason": "programmed and started",
            "channel": 1,
            "action": "program",
            "confirmed_at_bedside": True,
        },
    )
    pump.status([channel(1, "dopamine", rate_ml_h=15.0, infused_ml=0.1, vtbi_left_ml=249.9)])
    expect(row).to_have_attribute("data-status", "running")
    screenshot(desktop, "orders")

    # a patient merge: the channel is shown for re-verification at the bedside
    merge = (
        "MSH|^~\\&|ADT|HOSP|OPENINFUSION|HOSP|20261203120500+0000||ADT^A40^ADT_A39|M-1|P|2.6\r"
        "EVN|A40|20261203120500+0000\r"
        "PID|||MRN-DASH-9^^^HOSP^MR||Doe^John||19660101|M\r"
        "MRG|MRN-DASH-1^^^HOSP^MR\r"
    )
    assert "MSA|AA|M-1" in server.send_hl7(merge)
    pump.status([channel(1, "dopamine", rate_ml_h=15.0, infused_ml=0.2, vtbi_left_ml=249.8)])
    flag = desktop.locator("#reverify li")
    expect(flag).to_contain_text("MRN MRN-DASH-1 is now MRN MRN-DASH-9")
    expect(flag).to_contain_text("channel 1 (infusing)")
    expect(row.locator(".reverify-flag")).to_have_text("RE-VERIFY PATIENT")


def test_roles_without_orders_see_why(server: OrderServer, desktop: Page) -> None:
    login(desktop, server, "admin")
    desktop.goto(f"{server.base_url}/#/orders")
    expect(desktop.locator(".notice-na")).to_contain_text("your role is not permitted")
