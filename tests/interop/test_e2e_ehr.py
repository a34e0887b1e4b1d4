"""End to end with the hospital systems, real processes and real sockets: the server (HL7
listener and outbound feed on), a simulated ward pump in its own process, and an EHR that
sends an IHE PCD-03 RGV^O15 over MLLP and listens for the pump's reports.

The order for the associated pump channel is answered AA and pre-populated on the pump; the
ward's nurse confirms it at the bedside; it runs; the EHR receives PCD-01 ORU^R01 reports
naming the order (OBR-2) and the PCD-04 ORU^R40 of its VTBI-complete alarm; the FHIR
MedicationAdministration of the infusion names the order and agrees with the pump's own
signed record of the volume infused."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from openinfusion.interop.hl7.parse import field_text, parse_message, segments
from openinfusion.interop.mllp import MLLPClient
from openinfusion.library.loading import sample_library
from openinfusion.library.signing import package_bytes, sign_library
from openinfusion.security import generate_private_key, save_public_key
from tests.interop._ehr import FakeEHR
from tests.server._server_support import free_port

SERIAL = "SIM-7-001"  # seed 7, first bed: an adult ICU vasopressor syringe, 75 kg
WEIGHT_KG = 75.0
VTBI_ML = 2.0
UNDER_WAY = ("running", "infusing", "bolus", "paused", "kvo", "alarm", "delayed")
ENTRY = (
    "import typer; from openinfusion.cli.server_cmd import serve_command; typer.run(serve_command)"
)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Api:
    def __init__(self, url: str, creds: list[dict[str, str]]) -> None:
        self.url, self.creds, self.tokens = url, creds, {}

    def h(self, role: str) -> dict[str, str]:
        if role not in self.tokens:
            account = next(a for a in self.creds if a["role"] == role)
            r = httpx.post(
                f"{self.url}/api/auth/token",
                data={"username": account["username"], "password": account["password"]},
                timeout=30,
            )
            r.raise_for_status()
            self.tokens[role] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, role: str, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", headers=self.h(role), params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, role: str, path: str, body: Any) -> Any:
        r = httpx.post(f"{self.url}{path}", headers=self.h(role), json=body, timeout=30)
        assert r.status_code in (200, 201, 202), r.text
        return r.json()


def _send_mllp(port: int, text: str) -> str:
    async def exchange() -> bytes:
        async with MLLPClient("127.0.0.1", port, timeout_s=60) as client:
            return await client.send(text.encode())

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, exchange()).result(timeout=90).decode()


def rgv(mrn: str) -> str:
    """IHE PCD-03 (TF-2 E.2.3 layout): norepinephrine 16 mg/250 mL at 0.05 mcg/kg/min, 2 mL."""
    return (
        "MSH|^~\\&|EHRSIM|HOSP|OPENINFUSION|HOSP|20261203120000+0000||RGV^O15^RGV_O15|"
        "E2E-MSG-1|P|2.6|||AL|ER||UNICODE UTF-8|||IHE_PCD_PIV_001\r"
        f"PID|||{mrn}^^^HOSP^MR||Doe^Alex||19610517|F\r"
        "ORC|NW|E2E-ORD-1\r"
        f"RXG|1|||norepinephrine^Norepinephrine|{VTBI_ML:g}||mL^mL^UCUM||||||||0.05|"
        "ug/kg/min^ug/kg/min^UCUM|16|mg^mg^UCUM|||||250|mL^mL^UCUM\r"
        "RXR|IV\r"
        "OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1|||||||X|||||||"
        f"^^{SERIAL}^OPENINFUSION\r"
        f"OBX|2|NM|68063^MDC_ATTR_PT_WEIGHT^MDC||{WEIGHT_KG:g}|kg^kg^UCUM\r"
    )


def test_ehr_order_to_bedside_to_ehr_reports(tmp_path: Path) -> None:
    data, ward_dir = tmp_path / "server", tmp_path / "ward"
    data.mkdir(mode=0o700)
    pharmacy = generate_private_key()
    (data / "pharmacy-keys").mkdir(mode=0o700)
    save_public_key(pharmacy.public_key(), data / "pharmacy-keys" / "pharmacy.pem")
    ehr = FakeEHR("AA").start()
    port, hl7_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "--port", str(port), "--data-dir", str(data),
         "--hl7-port", str(hl7_port), "--hl7-destination", ehr.destination,
         "--hl7-status-interval", "2"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    ward = None
    try:
        _wait(lambda: _healthy(url, server), 240, "the server to start")
        creds = json.loads((data / "demo-credentials.json").read_text())
        api = Api(url, creds)
        package = sign_library(sample_library(), pharmacy, "A. Pharmacist", datetime.now(UTC))
        r = httpx.post(
            f"{url}/api/libraries",
            headers={**api.h("pharmacist"), "Content-Type": "application/json"},
            content=package_bytes(package),
            timeout=30,
        )
        assert r.status_code == 201, r.text
        ward = subprocess.Popen(
            [sys.executable, "-m", "openinfusion.cli.main", "ward", "--server", url,
             "--credentials", str(data / "demo-credentials.json"), "--pumps", "1",
             "--seed", "7", "--speed", "60", "--data-dir", str(ward_dir), "--duration", "400"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

        def pump() -> dict[str, Any] | None:
            found = [p for p in api.get("nurse", "/api/pumps") if p["serial"] == SERIAL]
            return (
                found[0] if found and found[0]["library_version"] and found[0]["online"] else None
            )

        pump_id = _wait(pump, 240, "the ward pump to report its library")["id"]
        # the bedside stops the running syringe: the ordered program replaces it
        api.post("nurse", f"/api/pumps/{pump_id}/commands", {"channel": 1, "action": "stop"})
        _wait(
            lambda: (
                api.get("nurse", f"/api/pumps/{pump_id}")["channels"][0]["state"]
                in ("stopped", "idle")
            ),
            60,
            "the channel to stop",
        )
        patient = api.post(
            "nurse",
            "/api/patients",
            {"mrn": "MRN-E2E-1", "family_name": "Doe", "given_name": "Alex",
             "birth_date": "1961-05-17", "sex": "female", "weight_kg": WEIGHT_KG,
             "unit": "Adult ICU"},
        )  # fmt: skip
        api.post(
            "nurse", f"/api/pumps/{pump_id}/channels/1/association", {"patient_id": patient["id"]}
        )

        # the EHR sends the order over MLLP
        reply = parse_message(_send_mllp(hl7_port, rgv("MRN-E2E-1")))
        msa = segments(reply, "MSA")[0]
        errors = [field_text(reply, e, 8) for e in segments(reply, "ERR")]
        assert field_text(reply, msa, 1) == "AA", errors
        order = api.get("interface", "/api/orders", mrn="MRN-E2E-1")[0]
        assert order["placer_order_id"] == "E2E-ORD-1"

        # pre-populated, confirmed by the ward's nurse at the bedside, then running
        seen: list[str] = []

        def status_is(*wanted: str) -> bool:
            now = api.get("nurse", f"/api/orders/{order['id']}")["status"]
            if not seen or seen[-1] != now:
                seen.append(now)
            return now in wanted

        _wait(lambda: status_is("running", "completed", "stopped"), 120, f"running ({seen})")
        assert "rejected" not in seen and "expired" not in seen, seen
        assert seen.index("running") > 0  # it was not running before the pump answered

        # the EHR hears of it: ORU^R01 naming the order, and the VTBI-complete ORU^R40
        def reports() -> tuple[list[Any], list[Any]]:
            msgs = [parse_message(p) for p in list(ehr.payloads)]
            r01 = [m for m in msgs if "^".join(_type(m)) == "ORU^R01"]
            r40 = [m for m in msgs if "^".join(_type(m)) == "ORU^R40"]
            return r01, r40

        _wait(
            lambda: any(_obr2(m) == "E2E-ORD-1" for m in reports()[0]),
            120,
            "an ORU^R01 naming the order",
        )

        def vtbi_alert() -> bool:
            return any(
                _obr2(m) == "E2E-ORD-1" and "MDC_EVT_PUMP_DELIV_COMP" in str(m)
                for m in reports()[1]
            )

        try:
            _wait(vtbi_alert, 240, "the ORU^R40 of the order's VTBI-complete alarm")
        except AssertionError:
            shown = [str(m).replace("\r", "\n")[:800] for m in reports()[1]]
            alarms = api.get("nurse", "/api/alarms", limit=50)
            raise AssertionError(f"no VTBI-complete ORU^R40: {shown} alarms={alarms}") from None

        # stop it at the bedside side of things, then compare the FHIR record with the pump's
        api.post("nurse", f"/api/pumps/{pump_id}/commands", {"channel": 1, "action": "stop"})
        _wait(lambda: status_is("stopped", "completed"), 60, "the order to end")
        bundle = api.get("interface", "/fhir/MedicationAdministration", patient=str(patient["id"]))
        entries = [e["resource"] for e in bundle.get("entry", [])]
        ours = [
            e
            for e in entries
            if e.get("request", {}).get("reference") == f"MedicationRequest/{order['id']}"
        ]
        assert len(ours) == 1, entries
        fhir_ml = ours[0]["dosage"]["dose"]["value"]
        assert ours[0]["dosage"]["dose"]["unit"] == "mL"
        confirmed_at = api.get("nurse", f"/api/orders/{order['id']}")["confirmed_at"]
        assert confirmed_at, "the order was confirmed at the bedside"
        # the pump's next status report shows the channel ended (statuses come every 5 s)
        pump_ml = _wait(
            lambda: _pump_record_ml(api, pump_id, confirmed_at), 60, "the pump to report the end"
        )
        last_report_ml, final_ml = pump_ml
        # The server closes the infusion on the pump's "stopped" event and keeps the volume of
        # the pump's last report before it; what ran between that report and the stop (one
        # status period at most) is in the pump's next report but not in the infusion record.
        assert fhir_ml == pytest.approx(last_report_ml, abs=1e-6)
        period_ml = 3.6 * 5.0 * 60 / 3600 * 1.5  # <= 3.6 mL/h for one 5 s report at 60x, +50 %
        assert 0.0 <= final_ml - fhir_ml <= period_ml
        assert VTBI_ML - 1e-6 <= final_ml <= VTBI_ML + 1.0  # the VTBI (then any KVO until stopped)
    finally:
        if ward is not None and ward.poll() is None:
            ward.terminate()
            try:
                ward.wait(30)
            except subprocess.TimeoutExpired:
                ward.kill()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        ehr.stop()
        log.close()
    text = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def _healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"server exited with {proc.returncode}")
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _type(msg: Any) -> tuple[str, str]:
    return field_text(msg, msg[0], 9, 1), field_text(msg, msg[0], 9, 2)


def _obr2(msg: Any) -> str:
    obrs = segments(msg, "OBR")
    return field_text(msg, obrs[0], 2, 1) if obrs else ""


def _pump_record_ml(api: Api, pump_id: str, confirmed_at: str) -> tuple[float, float] | None:
    """Volume of the ordered infusion by the pump's own signed status reports, as (by its
    last report while under way, by its first report after it ended): the channel's counter
    minus the counter before the infusion started (None until a report shows it ended)."""
    messages: list[dict[str, Any]] = []
    while True:
        after = messages[-1]["seq"] if messages else 0
        page = api.get("nurse", f"/api/pumps/{pump_id}/messages", after_seq=after, limit=1000)
        if not page:
            break
        messages.extend(page)
    series = []
    for m in messages:
        if m["type"] != "status":
            continue
        ch = next(c for c in m["body"]["channels"] if c["channel"] == 1)
        series.append((m["received_at"], ch["state"], ch["volume_infused_ml"]))
    after_confirm = [s for s in series if s[0] >= confirmed_at]
    start = max(i for i, s in enumerate(series) if s[0] < confirmed_at)
    running = next(s for s in after_confirm if s[1] in UNDER_WAY)
    ended = [s for s in after_confirm if s[1] not in UNDER_WAY and s[0] > running[0]]
    if not ended:
        return None
    last = [s for s in after_confirm if s[1] in UNDER_WAY and s[0] < ended[0][0]][-1]
    base = float(series[start][2])
    return float(last[2]) - base, float(ended[0][2]) - base
