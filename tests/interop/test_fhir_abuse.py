"""RELIABILITY B-05 (FHIR JSON fuzz and schema abuse) and B-06 (XML external entities and
entity expansion) against POST /fhir/MedicationRequest: every abusive body is refused with an
OperationOutcome in bounded time and memory, nothing is half-created (no order, no command),
and XML is never parsed, so nothing is fetched (a localhost-only sinkhole socket must
receive no connection)."""

from __future__ import annotations

import copy
import json
import socket
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.server.app import create_app
from openinfusion.server.models import Command
from openinfusion.server.permissions import Role
from tests.interop.test_fhir_api import medication_request
from tests.interop.test_orders import OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)

PATH = "/fhir/MedicationRequest"
TIME_BUDGET_S = 10.0  # generous: the test machine is shared and traced by tracemalloc
MEMORY_BUDGET_B = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def aenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderEnv]:
    clock = FakeClock(datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("fhir-abuse")), clock=clock)
    with TestClient(app) as client:
        yield OrderEnv(client, app, clock)


@pytest.fixture(scope="module")
def bed(aenv: OrderEnv) -> tuple[str, str]:
    """(pump id, MRN) of a channel 1 associated with a patient."""
    pump_id, _serial, patient = aenv.bed()
    return pump_id, str(patient["mrn"])


def counts(env: OrderEnv) -> tuple[int, int]:
    with env.ctx.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(InfusionOrder)) or 0,
            s.scalar(select(func.count()).select_from(Command)) or 0,
        )


def post_raw(env: OrderEnv, body: bytes, media: str = "application/fhir+json") -> httpx.Response:
    headers = {**env.h[Role.INTERFACE], "Content-Type": media}
    return env.client.post(PATH, headers=headers, content=body)


def refused(r: httpx.Response, status: int) -> list[dict[str, Any]]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    OperationOutcome.model_validate(body)
    return list(body["issue"])


def bounded(
    env: OrderEnv,
    body: bytes,
    status: int,
    media: str = "application/fhir+json",
    intake_record: bool = False,
) -> str:
    """Post ``body``: refused with ``status`` in bounded time and memory, nothing stored
    (``intake_record``: but the order intake's record of the refused order, no command)."""
    before = counts(env)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        r = post_raw(env, body, media)
        elapsed = time.perf_counter() - started
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    issues = refused(r, status)
    assert elapsed < TIME_BUDGET_S, f"{elapsed:.2f} s"
    assert peak < MEMORY_BUDGET_B, f"{peak} bytes"
    expected = (before[0] + 1, before[1]) if intake_record else before
    assert counts(env) == expected, "nothing half-created"
    return " ".join(i.get("diagnostics", "") for i in issues)


def good(bed: tuple[str, str]) -> dict[str, Any]:
    return medication_request(*bed)


def raw(data: Any) -> bytes:
    return json.dumps(data).encode()


# --- B-05 ---------------------------------------------------------------------------------


def test_deep_nesting_10k_levels(aenv: OrderEnv) -> None:
    deep_arrays = (
        b'{"resourceType":"MedicationRequest","note":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    )
    assert "nesting" in bounded(aenv, deep_arrays, 400)
    deep_objects = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    assert "nesting" in bounded(aenv, deep_objects, 400)
    moderate = b'{"resourceType":"MedicationRequest","x":' + b"[" * 40 + b"]" * 40 + b"}"
    assert "deeper" in bounded(aenv, moderate, 400)


def test_huge_arrays_and_the_body_limit(aenv: OrderEnv, bed: tuple[str, str]) -> None:
    body = good(bed)
    body["identifier"] = [{"value": "x"}] * 5000
    assert "at most" in bounded(aenv, raw(body), 400)
    numbers = b'{"resourceType":"MedicationRequest","x":[' + b"1," * 100_000 + b"1]}"
    assert "100001 items" in bounded(aenv, numbers, 400)  # 200 kB: inside the body limit
    more = b'{"resourceType":"MedicationRequest","x":[' + b"1," * 200_000 + b"1]}"
    bounded(aenv, more, 413)  # over the server's 256 KiB body limit


@pytest.mark.parametrize(
    ("literal", "status"),
    [("1e309", 400), ("-1e309", 400), ("NaN", 400), ("Infinity", 400), ("-Infinity", 400)],
)
def test_numbers_json_cannot_hold(
    aenv: OrderEnv, bed: tuple[str, str], literal: str, status: int
) -> None:
    text = json.dumps(good(bed)).replace('"value": 5,', f'"value": {literal},', 1)
    assert literal not in json.dumps(good(bed))
    bounded(aenv, text.encode(), status)


@pytest.mark.parametrize("value", ["-0", "-0.0", "0", "-5", '"NaN"', '"5"', "1e300"])
def test_exotic_dose_values(aenv: OrderEnv, bed: tuple[str, str], value: str) -> None:
    text = json.dumps(good(bed)).replace('"value": 5,', f'"value": {value},', 1)
    assert text != json.dumps(good(bed))
    status = 422 if value in ("-0", "-0.0", "0", "-5", "1e300") else 400
    diagnostics = bounded(aenv, text.encode(), status, intake_record=value == "1e300")
    if value in ("-0", "-0.0"):
        assert "negative zero" in diagnostics
    if value == "1e300":  # a number, but no pump runs that: the intake refuses the dose
        assert "dose" in diagnostics or "rate" in diagnostics


def test_duplicate_keys(aenv: OrderEnv, bed: tuple[str, str]) -> None:
    text = json.dumps(good(bed))
    dup = text.replace('"status": "active"', '"status": "active", "status": "draft"')
    assert "duplicate" in bounded(aenv, dup.encode(), 400)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"status": 5}, 400),
        ({"dosageInstruction": {"doseAndRate": []}}, 400),
        ({"subject": "MRN-1"}, 400),
        ({"identifier": [{"value": ["a"]}]}, 400),
        ({"resourceType": "Patient"}, 400),
        ({"resourceType": "NoSuchThing"}, 400),
        ({"resourceType": None}, 400),
        ({"bogus": 1}, 422),
        ({"reasonCode": [{"text": "sepsis"}]}, 422),
        ({"subject": {"identifier": {"value": "x"}, "bogus": 1}}, 400),
    ],
)
def test_wrong_types_unknown_resource_and_extra_fields(
    aenv: OrderEnv, bed: tuple[str, str], change: dict[str, Any], status: int
) -> None:
    body = {**good(bed), **change}
    bounded(aenv, raw(body), status)


def test_not_an_object_and_empty(aenv: OrderEnv) -> None:
    for body in (b"[]", b'"MedicationRequest"', b"null", b"42", b"", b"   "):
        bounded(aenv, body, 400)


def test_invalid_utf8_and_bom(aenv: OrderEnv, bed: tuple[str, str]) -> None:
    text = raw(good(bed))
    assert "UTF-8" in bounded(aenv, text.replace(b"dopamine", b"dopa\xffmine"), 400)
    assert "UTF-8" in bounded(aenv, text.replace(b"dopamine", b"dopa\xc0\xafmine"), 400)
    assert "byte-order" in bounded(aenv, b"\xef\xbb\xbf" + text, 400)
    r = aenv.client.post(
        PATH,
        headers={
            **aenv.h[Role.INTERFACE],
            "Content-Type": "application/fhir+json; charset=latin-1",
        },
        content=text,
    )
    refused(r, 415)


def test_the_unmodified_body_is_accepted(aenv: OrderEnv, bed: tuple[str, str]) -> None:
    """The abuse tests above change one thing each in a body that is accepted as it is."""
    before = counts(aenv)
    r = post_raw(aenv, raw(good(bed)))
    assert r.status_code == 201, r.text
    assert counts(aenv) == (before[0] + 1, before[1] + 1)


# --- B-05: property over mutated MedicationRequest bodies -----------------------------------

NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 0, 1e308, "NaN", "Infinity", "", " ", "U/h", "mL/h", "-0"]),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(body: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> None:
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "replace":
        parent[last] = value
    elif isinstance(parent, dict):
        parent[f"x{last}"] = value  # an extra field beside it


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    mutations=st.integers(min_value=1, max_value=3),
)
def test_b05_property_mutated_orders_are_prepopulated_or_refused_whole(
    aenv: OrderEnv, bed: tuple[str, str], data: st.DataObject, mutations: int
) -> None:
    """For any mutation of a valid order: either 201 with exactly one new order and one new
    pre-populated program command, or an OperationOutcome (400/422) with nothing stored
    beyond the intake's record of a refused order, and never a command."""
    body = copy.deepcopy(good(bed))
    for _ in range(mutations):
        paths = _paths(body)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        how = data.draw(st.sampled_from(["delete", "replace", "extra"]))
        _mutate(body, path, how, data.draw(NASTY))
    before_orders, before_commands = counts(aenv)
    r = post_raw(aenv, json.dumps(body, allow_nan=False).encode())
    orders, commands = counts(aenv)
    if r.status_code == 201:
        assert (orders, commands) == (before_orders + 1, before_commands + 1)
        with aenv.ctx.db.read() as s:
            row = s.get(InfusionOrder, int(r.json()["id"]))
            assert row is not None and row.command_id is not None
            command = s.get(Command, row.command_id)
            assert command is not None and command.action == "program"
    else:
        issues = refused(r, r.status_code)
        assert r.status_code in (400, 422) and issues
        assert commands == before_commands
        assert orders - before_orders in (0, 1)  # the intake keeps its refusal record
        if r.status_code == 400:
            assert orders == before_orders


# --- B-06 ---------------------------------------------------------------------------------


@pytest.fixture
def sinkhole() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that any outbound fetch would connect to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def _xml_attacks(port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}"
    head = '<?xml version="1.0"?>\n'
    root = (
        '<MedicationRequest xmlns="http://hl7.org/fhir"><status value="&x;"/></MedicationRequest>'
    )
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    attacks = {
        "external entity": f'{head}<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/xxe">]>{root}',
        "parameter entity": (
            f'{head}<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/dtd"> %p; <!ENTITY x "a">]>{root}'
        ),
        "billion laughs": f'{head}<!DOCTYPE r [<!ENTITY l0 "lol">{laughs}<!ENTITY x "&l9;">]>{root}',
        "dtd fetch": f'{head}<!DOCTYPE MedicationRequest SYSTEM "{url}/fhir.dtd">{root}',
        "xinclude": (
            f'{head}<MedicationRequest xmlns="http://hl7.org/fhir" '
            f'xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<xi:include href="{url}/inc.xml" parse="xml"/></MedicationRequest>'
        ),
    }
    return {name: text.encode() for name, text in attacks.items()}


@pytest.mark.parametrize(
    "media", ["application/fhir+xml", "application/xml", "text/xml", "text/plain", ""]
)
def test_b06_xml_is_refused_unparsed_and_nothing_is_fetched(
    aenv: OrderEnv, sinkhole: socket.socket, media: str
) -> None:
    port = sinkhole.getsockname()[1]
    for name, body in _xml_attacks(port).items():
        diagnostics = bounded(aenv, body, 415, media)
        assert "content-type" in diagnostics, name
    with pytest.raises(BlockingIOError):
        sinkhole.accept()  # no connection was ever attempted


def test_b06_xml_sent_as_json_is_a_json_error_and_fetches_nothing(
    aenv: OrderEnv, sinkhole: socket.socket
) -> None:
    port = sinkhole.getsockname()[1]
    for body in _xml_attacks(port).values():
        assert "not valid JSON" in bounded(aenv, body, 400)
    with pytest.raises(BlockingIOError):
        sinkhole.accept()
