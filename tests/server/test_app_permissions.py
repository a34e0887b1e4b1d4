"""C-10: every role × every endpoint, expected outcome generated from the one permission
matrix; C-11: objects of another care unit answer exactly like objects that do not exist."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openinfusion.security import build_envelope, generate_private_key
from openinfusion.server.app import create_app
from openinfusion.server.gateway_batch import handle_batch
from openinfusion.server.permissions import MATRIX, Perm, Role, allowed
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    credentials,
    login,
    make_settings,
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # route template
    perm: Perm
    body: dict[str, Any] | None = None


class Env:
    def __init__(self, client: TestClient, app: Any, clock: FakeClock) -> None:
        self.client, self.app, self.clock = client, app, clock
        pw = credentials(app)
        self.h = {Role(r): login(client, f"{r}1", p) for r, p in pw.items()}
        self.ids: dict[str, Any] = {}

    def enrol(self, unit: str | None, serial: str) -> tuple[str, Any]:
        tok = self.client.post(
            "/api/enrolment-tokens",
            headers=self.h[Role.BIOMED],
            json={"unit": unit} if unit else None,
        ).json()["token"]
        key = generate_private_key()
        from openinfusion.security import b64encode, public_bytes

        r = self.client.post(
            "/api/gateway/enrol",
            json={
                "token": tok,
                "serial": serial,
                "model": "M",
                "kind": "syringe",
                "channels": 2,
                "public_key": b64encode(public_bytes(key.public_key())),
            },
        )
        assert r.status_code == 200, r.text
        return r.json()["pump_id"], key

    def feed(self, pump_id: str, key: Any, seq: int, kind: str, body: dict[str, Any]) -> None:
        frame = build_envelope(
            key, type=kind, pump_id=pump_id, seq=seq, body=body, sent_at=self.clock()
        )
        result = handle_batch(
            self.app.state.ctx, pump_id, key.public_key(), [json.dumps(frame)], "test"
        )
        assert result.ack_seq == seq and result.close_code is None


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    clock = FakeClock()
    app = create_app(make_settings(tmp_path_factory.mktemp("perm")), clock=clock)
    with TestClient(app) as client:
        e = Env(client, app, clock)
        pump_id, key = e.enrol(None, "SN-MATRIX")
        e.feed(
            pump_id,
            key,
            1,
            "alarm",
            {"state": "raised", "code": "air_in_line", "priority": "high", "channel": 1},
        )
        e.ids["pump_id"] = pump_id
        e.ids["alarm_id"] = client.get("/api/alarms", headers=e.h[Role.NURSE]).json()[0]["id"]
        e.ids["user_id"] = client.post(
            "/api/users", headers=e.h[Role.ADMIN], json={"username": "spare", "role": "monitor"}
        ).json()["id"]
        cmd = client.post(
            f"/api/pumps/{pump_id}/commands",
            headers=e.h[Role.NURSE],
            json={"channel": 1, "action": "pause"},
        ).json()
        e.ids["command_id"] = cmd["id"]
        e.ids["version"] = "2026.1.0"
        e.ids["old"], e.ids["new"] = "2026.1.0", "2026.2.0"
        e.ids["patient_id"] = client.post(
            "/api/patients",
            headers=e.h[Role.NURSE],
            json={
                "mrn": "MRN-MATRIX",
                "family_name": "Matrix",
                "given_name": "Pat",
                "birth_date": "1970-01-01",
                "sex": "unknown",
            },
        ).json()["id"]
        e.ids["channel"] = 2
        e.ids["order_id"] = 1  # no order yet: a 404 for those allowed to read orders
        e.ids.update(  # FHIR ids (a 404 where no such resource exists yet)
            device_id=pump_id,
            metric_id=f"{pump_id}-ch1-rate",
            observation_id=f"{pump_id}-ch1-rate-1",
            administration_id=1,
        )
        yield e


# Every authenticated endpoint, with the permission it needs. A route missing here fails
# test_every_route_is_in_the_table, so a new endpoint cannot escape the matrix test.
CALLS = [
    Call("GET", "/api/pumps", Perm.PUMPS_READ),
    Call("GET", "/api/pumps/{pump_id}", Perm.PUMPS_READ),
    Call("GET", "/api/pumps/{pump_id}/messages", Perm.MESSAGES_READ),
    Call("GET", "/api/pumps/{pump_id}/commands", Perm.COMMANDS_READ),
    Call(
        "POST",
        "/api/pumps/{pump_id}/commands",
        Perm.COMMANDS_CLINICAL,
        {"channel": 2, "action": "titrate", "params": {"rate_ml_h": 4}},
    ),
    Call(
        "POST",
        "/api/pumps/{pump_id}/commands",
        Perm.COMMANDS_LIBRARY,
        {"channel": 2, "action": "activate_library", "params": {"version": "2"}},
    ),
    Call("PATCH", "/api/pumps/{pump_id}", Perm.PUMPS_MANAGE, {"unit": None}),
    Call("DELETE", "/api/pumps/{pump_id}", Perm.PUMPS_MANAGE),
    Call("GET", "/api/libraries", Perm.LIBRARIES_READ),
    Call("GET", "/api/libraries/{version}", Perm.LIBRARIES_READ),
    Call("GET", "/api/libraries/{old}/diff/{new}", Perm.LIBRARIES_READ),
    Call("POST", "/api/libraries", Perm.LIBRARIES_PUBLISH, {"format": "not a package"}),
    Call("GET", "/api/commands/{command_id}", Perm.COMMANDS_READ),
    Call("GET", "/api/alarms", Perm.ALARMS_READ),
    Call("POST", "/api/alarms/{alarm_id}/ack", Perm.ALARMS_ACK),
    Call("GET", "/api/infusions", Perm.INFUSIONS_READ),
    Call("GET", "/api/users", Perm.USERS_MANAGE),
    Call("POST", "/api/users", Perm.USERS_MANAGE, {"username": "u-{role}", "role": "monitor"}),
    Call("GET", "/api/users/{user_id}", Perm.USERS_MANAGE),
    Call("PATCH", "/api/users/{user_id}", Perm.USERS_MANAGE, {"unit": "icu"}),
    Call("DELETE", "/api/users/{user_id}", Perm.USERS_MANAGE),
    Call("GET", "/api/audit", Perm.AUDIT_READ),
    Call("GET", "/api/audit/verify", Perm.AUDIT_READ),
    Call("POST", "/api/enrolment-tokens", Perm.ENROL),
    Call("GET", "/api/events", Perm.EVENTS_READ),
    Call("GET", "/api/patients", Perm.PATIENTS_READ),
    Call(
        "POST",
        "/api/patients",
        Perm.PATIENTS_MANAGE,
        {
            "mrn": "MRN-{role}",
            "family_name": "Role",
            "given_name": "{role}",
            "birth_date": "1980-02-29",
            "sex": "female",
        },
    ),
    Call("GET", "/api/patients/{patient_id}", Perm.PATIENTS_READ),
    Call("PATCH", "/api/patients/{patient_id}", Perm.PATIENTS_MANAGE, {"weight_kg": 71.5}),
    Call("GET", "/api/patients/{patient_id}/associations", Perm.PATIENTS_READ),
    Call(
        "POST",
        "/api/pumps/{pump_id}/channels/{channel}/association",
        Perm.ASSOCIATIONS_MANAGE,
        {"patient_id": 1},
    ),
    Call("DELETE", "/api/pumps/{pump_id}/channels/{channel}/association", Perm.ASSOCIATIONS_MANAGE),
    Call("GET", "/api/orders", Perm.ORDERS_READ),
    Call("GET", "/api/orders/reverifications", Perm.ORDERS_READ),
    Call("GET", "/api/orders/{order_id}", Perm.ORDERS_READ),
    Call("GET", "/api/analytics/compliance", Perm.ANALYTICS_READ),
    Call("GET", "/api/analytics/overrides", Perm.ANALYTICS_READ),
    Call("GET", "/api/analytics/alarms", Perm.ANALYTICS_READ),
    Call("GET", "/api/analytics/library-verify/{version}", Perm.ANALYTICS_READ),
    Call("GET", "/api/analytics/maintenance", Perm.MAINTENANCE_READ),
    Call(
        "POST",
        "/api/analytics/maintenance/service",
        Perm.PUMPS_MANAGE,
        {"pump_id": "no-such-pump", "kind": "inspection"},
    ),
]
CALLS += [  # the FHIR face (interop/fhir/api.py)
    Call("GET", "/fhir/Device", Perm.PUMPS_READ),
    Call("GET", "/fhir/Device/{device_id}", Perm.PUMPS_READ),
    Call("GET", "/fhir/DeviceMetric", Perm.PUMPS_READ),
    Call("GET", "/fhir/DeviceMetric/{metric_id}", Perm.PUMPS_READ),
    Call("GET", "/fhir/Observation", Perm.INFUSIONS_READ),
    Call("GET", "/fhir/Observation/{observation_id}", Perm.INFUSIONS_READ),
    Call("GET", "/fhir/MedicationAdministration", Perm.INFUSIONS_READ),
    Call("GET", "/fhir/MedicationAdministration/{administration_id}", Perm.INFUSIONS_READ),
    Call("GET", "/fhir/Patient", Perm.PATIENTS_READ),
    Call("GET", "/fhir/Patient/{patient_id}", Perm.PATIENTS_READ),
    Call("GET", "/fhir/MedicationRequest", Perm.ORDERS_READ),
    Call("GET", "/fhir/MedicationRequest/{order_id}", Perm.ORDERS_READ),
    Call("POST", "/fhir/MedicationRequest", Perm.ORDERS_SUBMIT, {"resourceType": "Patient"}),
]
CALLS += [  # the HL7 link (interop/api_hl7.py)
    Call("GET", "/api/interop/hl7/outbox", Perm.INTEROP_READ),
    Call("GET", "/api/interop/hl7/outbox/messages", Perm.INTEROP_READ),
]
PUBLIC = {
    ("GET", "/fhir/metadata"),
    ("GET", "/api/health"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/gateway/enrol"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/me"),
}


def test_every_route_is_in_the_table(env: Env) -> None:
    schema = env.client.get("/openapi.json").json()
    routes = {(m.upper(), path) for path, ops in schema["paths"].items() for m in ops}
    assert routes == {(c.method, c.path) for c in CALLS} | PUBLIC


def test_no_role_holds_everything_and_monitor_only_reads() -> None:
    every = set(Perm)
    assert all(MATRIX[r] != every for r in Role)
    assert all(p.value.endswith(":read") for p in MATRIX[Role.MONITOR])


def _request(env: Env, call: Call, role: Role, headers: dict[str, str]) -> int:
    path = call.path.format(**env.ids)
    if call.path == "/api/users/{user_id}" and call.method == "DELETE":
        made = env.client.post(  # deactivate a throwaway account, never a test login
            "/api/users",
            headers=env.h[Role.ADMIN],
            json={"username": f"del-{role}", "role": "monitor"},
        )
        path = f"/api/users/{made.json()['id']}"
    if call.path == "/api/pumps/{pump_id}" and call.method == "DELETE":
        path = f"/api/pumps/{env.enrol(None, f'SN-DEL-{role}')[0]}"  # a throwaway pump
    body = json.loads(json.dumps(call.body).replace("{role}", role.value)) if call.body else None
    if call.path == "/api/events" and allowed(role.value, call.perm):
        with env.client.stream("GET", path, headers=headers) as resp:
            return resp.status_code
    return env.client.request(call.method, path, headers=headers, json=body).status_code


@pytest.mark.parametrize("role", list(Role), ids=str)
@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path} [{c.perm.value}]")
def test_c10_role_endpoint_matrix(env: Env, call: Call, role: Role) -> None:
    before = len(
        env.client.get(
            "/api/audit",
            params={"action": "access.denied", "limit": 1000},
            headers=env.h[Role.ADMIN],
        ).json()
    )
    status = _request(env, call, role, env.h[role])
    if allowed(role.value, call.perm):
        assert status not in (401, 403), f"{role} should reach {call.method} {call.path}"
        assert status < 500
    else:
        assert status == 403, f"{role} must be refused {call.method} {call.path}"
        after = env.client.get(
            "/api/audit",
            params={"action": "access.denied", "limit": 1000},
            headers=env.h[Role.ADMIN],
        ).json()
        assert len(after) == before + 1 and after[-1]["actor"] == f"{role.value}1"


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_c02_no_token_or_bad_token_is_401(env: Env, call: Call) -> None:
    """No token, a forged one, basic auth, or another credential (a pump's enrolment token)
    presented as a bearer token: 401 on every endpoint."""
    path = call.path.format(**env.ids)
    enrolment = env.client.post("/api/enrolment-tokens", headers=env.h[Role.BIOMED]).json()
    for headers in (
        {},
        {"Authorization": "Bearer forged-token-value"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": f"Bearer {enrolment['token']}"},
    ):
        r = env.client.request(call.method, path, headers=headers, json=call.body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_c11_other_unit_looks_like_nothing(env: Env) -> None:
    client = env.client
    pump_b, key_b = env.enrol("ward-b", "SN-WARD-B")
    env.feed(
        pump_b,
        key_b,
        1,
        "alarm",
        {"state": "raised", "code": "occlusion", "priority": "high", "channel": 1},
    )
    alarm_b = max(a["id"] for a in client.get("/api/alarms", headers=env.h[Role.ADMIN]).json())
    made = client.post(
        "/api/users",
        headers=env.h[Role.ADMIN],
        json={"username": "nurse-a", "role": "nurse", "unit": "ward-a"},
    ).json()
    nurse_a = login(client, "nurse-a", made["password"])
    missing, hidden = "P-ffffffffffff", pump_b
    for template in ("/api/pumps/{}", "/api/pumps/{}/commands"):
        r_missing = client.get(template.format(missing), headers=nurse_a)
        r_hidden = client.get(template.format(hidden), headers=nurse_a)
        assert r_missing.status_code == r_hidden.status_code == 404
        assert r_missing.json()["error"]["rule"] == r_hidden.json()["error"]["rule"]
    post = {"channel": 1, "action": "stop"}
    assert (
        client.post(f"/api/pumps/{hidden}/commands", headers=nurse_a, json=post).status_code == 404
    )
    assert client.post(f"/api/alarms/{alarm_b}/ack", headers=nurse_a).status_code == 404
    assert client.post("/api/alarms/999999/ack", headers=nurse_a).status_code == 404
    assert hidden not in [p["id"] for p in client.get("/api/pumps", headers=nurse_a).json()]
    assert alarm_b not in [a["id"] for a in client.get("/api/alarms", headers=nurse_a).json()]
    # the same pump is visible to a nurse of its own unit
    made_b = client.post(
        "/api/users",
        headers=env.h[Role.ADMIN],
        json={"username": "nurse-b", "role": "nurse", "unit": "ward-b"},
    ).json()
    nurse_b = login(client, "nurse-b", made_b["password"])
    assert client.get(f"/api/pumps/{hidden}", headers=nurse_b).status_code == 200
