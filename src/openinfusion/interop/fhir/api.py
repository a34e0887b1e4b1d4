"""The FHIR R4 REST face (``/fhir/...``), JSON only, errors as OperationOutcome.

Reads need the server's read permissions (Device and DeviceMetric ``pumps:read``;
Observation and MedicationAdministration ``infusions:read``; Patient ``patients:read``;
MedicationRequest ``orders:read``), creating a MedicationRequest needs ``orders:submit``;
``/fhir/metadata`` is public. Every refusal under ``/fhir`` is an OperationOutcome (the
server's error face for this prefix, registered here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from openinfusion.errors import InputError
from openinfusion.interop.fhir import reads, resources
from openinfusion.interop.fhir.capability import capability_statement, search_params
from openinfusion.interop.fhir.codes import (
    MDC,
    MDC_DEV_PUMP_INFUS_MDS,
    MDC_DEV_PUMP_INFUS_VMD,
    METRIC_BY_CODE,
    METRICS,
    MRN_SYSTEM,
    PUMP_SERIAL_SYSTEM,
)
from openinfusion.interop.fhir.ids import (
    parse_device_id,
    parse_metric_id,
    parse_number_id,
    parse_observation_id,
)
from openinfusion.interop.fhir.jsonbody import parse_json
from openinfusion.interop.fhir.orderin import Mapped, to_order, validate_model
from openinfusion.interop.fhir.outcome import FACE, FHIR_JSON, FhirError, Issue, fail, outcome
from openinfusion.interop.fhir.search import (
    DateBound,
    Paging,
    Token,
    bundle,
    check_params,
    dates,
    paging,
    reference,
    token,
)
from openinfusion.interop.order_tables import InfusionOrder
from openinfusion.interop.orders import submit_order
from openinfusion.interop.orders_status import live_status
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import ApiError, register_face
from openinfusion.server.context import ServerContext
from openinfusion.server.models import Infusion, Patient, Pump
from openinfusion.server.permissions import Perm

log = logging.getLogger(__name__)
_ACCEPTABLE = ("application/fhir+json", "application/json", "application/*", "*/*")


def _accepts_json(header: str) -> bool:
    """True unless the Accept header names media types and none of them is JSON."""
    ranges = [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]
    return not ranges or any(r in _ACCEPTABLE for r in ranges)


class FhirRoute(APIRoute):
    """A route under /fhir: answers only JSON (406 when the client accepts none), and an
    unexpected failure is a logged 500 OperationOutcome instead of a bare text page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fhir_handler(request: Request) -> Response:
            if not _accepts_json(request.headers.get("accept", "")):
                raise fail(406, "accept", request.headers["accept"], "only JSON is served")
            try:
                return await handler(request)
            except (ApiError, InputError, RequestValidationError, StarletteHTTPException):
                raise
            except Exception:
                log.exception("FHIR request %s %s failed", request.method, request.url.path)
                problem = {"message": "the server failed to answer this request"}
                return JSONResponse(outcome(500, [problem]), 500, media_type=FHIR_JSON)

        return fhir_handler


router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute)
register_face(FACE)

NOTHING: frozenset[str] = frozenset()


def fhir_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _gone(kind: str, ident: str) -> FhirError:
    """The one 404 for a resource that does not exist or that the caller may not see."""
    return fail(404, f"{kind}.id", ident, f"no {kind} with this id")


def _page(items: list[Any], page: Paging) -> list[Any]:
    return items[page.offset : page.offset + page.count]


def _system_ok(tok: Token, system: str) -> bool:
    return tok.system is None or tok.system in ("", system)


# --- metadata ---------------------------------------------------------------------------


@router.get("/metadata")
def metadata(request: Request, ctx: ServerContext = Depends(get_ctx)) -> JSONResponse:
    """The CapabilityStatement (no token needed: it names no patient data)."""
    check_params(request.query_params, NOTHING)
    return fhir_response(capability_statement(base_url(request), ctx.now()))


# --- Device -----------------------------------------------------------------------------


def _device_id(text: str) -> tuple[str, int | None]:
    parsed = parse_device_id(text)
    if parsed is None:
        raise _gone("Device", text)
    return parsed.pump_id, parsed.channel


@router.get("/Device")
def search_devices(
    request: Request,
    principal: Principal = Depends(require(Perm.PUMPS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    params = request.query_params
    check_params(params, search_params("Device"))
    page = paging(params)
    ident, kind = token(params, "identifier"), token(params, "type")
    patient = reference(params, "patient", ("Patient",))
    patient_id = parse_number_id(patient[1]) if patient else None
    with ctx.db.read() as session:
        if ident is not None:
            found = (
                reads.pump_by_serial(session, principal, ident.code)
                if _system_ok(ident, PUMP_SERIAL_SYSTEM)
                else None
            )
            pumps = [found] if found is not None else []
        else:
            pumps = reads.visible_pumps(session, principal)
        opens = reads.open_patients(session, [p.id for p in pumps])
        rows: list[tuple[Pump, int | None, int | None]] = []
        for pump in pumps:
            rows.append((pump, None, reads.pump_patient(pump, opens)))
            if ident is None:
                rows += [
                    (pump, n, opens.get((pump.id, n))) for n in range(1, pump.channel_count + 1)
                ]
        if kind is not None:
            wanted = (
                {MDC_DEV_PUMP_INFUS_MDS.code: False, MDC_DEV_PUMP_INFUS_VMD.code: True}.get(
                    kind.code
                )
                if _system_ok(kind, MDC)
                else None
            )
            rows = [r for r in rows if wanted is not None and (r[1] is not None) == wanted]
        if patient is not None:
            rows = [r for r in rows if patient_id is not None and r[2] == patient_id]
        out = [
            resources.pump_device(p, pid) if n is None else resources.channel_device(p, n, pid)
            for p, n, pid in _page(rows, page)
        ]
    return fhir_response(bundle(base_url(request), "Device", params, page, len(rows), out))


@router.get("/Device/{device_id}")
def read_device(
    device_id: str,
    request: Request,
    principal: Principal = Depends(require(Perm.PUMPS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    check_params(request.query_params, NOTHING)
    pump_id, channel = _device_id(device_id)
    with ctx.db.read() as session:
        pump = reads.visible_pump(session, principal, pump_id)
        if pump is None or (channel is not None and channel > pump.channel_count):
            raise _gone("Device", device_id)
        opens = reads.open_patients(session, [pump.id])
        if channel is None:
            return fhir_response(resources.pump_device(pump, reads.pump_patient(pump, opens)))
        return fhir_response(resources.channel_device(pump, channel, opens.get((pump.id, channel))))


# --- DeviceMetric -----------------------------------------------------------------------


def _device_ref(params: Any, name: str) -> tuple[str, int | None] | None:
    ref = reference(params, name, ("Device",))
    if ref is None:
        return None
    parsed = parse_device_id(ref[1])
    return (parsed.pump_id, parsed.channel) if parsed is not None else ("", None)


@router.get("/DeviceMetric")
def search_metrics(
    request: Request,
    principal: Principal = Depends(require(Perm.PUMPS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    params = request.query_params
    check_params(params, search_params("DeviceMetric"))
    page = paging(params)
    source, parent = _device_ref(params, "source"), _device_ref(params, "parent")
    kind = token(params, "type")
    with ctx.db.read() as session:
        if source is not None or parent is not None:
            ids = {d[0] for d in (source, parent) if d is not None}
            pumps = [
                p
                for p in (reads.visible_pump(session, principal, i) for i in sorted(ids))
                if p is not None
            ]
        else:
            pumps = reads.visible_pumps(session, principal)
        states = reads.channel_states(session, [p.id for p in pumps])
        rows = [
            (pump, n, metric)
            for pump in pumps
            for n in range(1, pump.channel_count + 1)
            for metric in METRICS.values()
        ]
        if source is not None:
            rows = [r for r in rows if source[1] is None and r[0].id == source[0]]
        if parent is not None:
            rows = [r for r in rows if parent[1] is not None and (r[0].id, r[1]) == parent]
        if kind is not None:
            rows = [r for r in rows if _system_ok(kind, MDC) and r[2].code.code == kind.code]
        out = [
            resources.device_metric(p, n, m, states.get((p.id, n))) for p, n, m in _page(rows, page)
        ]
    return fhir_response(bundle(base_url(request), "DeviceMetric", params, page, len(rows), out))


@router.get("/DeviceMetric/{metric_id}")
def read_metric(
    metric_id: str,
    request: Request,
    principal: Principal = Depends(require(Perm.PUMPS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    check_params(request.query_params, NOTHING)
    parsed = parse_metric_id(metric_id)
    if parsed is None:
        raise _gone("DeviceMetric", metric_id)
    with ctx.db.read() as session:
        pump = reads.visible_pump(session, principal, parsed.pump_id)
        if pump is None or parsed.channel > pump.channel_count:
            raise _gone("DeviceMetric", metric_id)
        state = reads.channel_states(session, [pump.id]).get((pump.id, parsed.channel))
        return fhir_response(
            resources.device_metric(pump, parsed.channel, METRICS[parsed.metric], state)
        )


# --- Observation ------------------------------------------------------------------------


def _date_window(bounds: list[DateBound]) -> tuple[Any, Any]:
    """The [since, until) received_at window the bounds imply (for the SQL query)."""
    since = until = None
    for b in bounds:
        low = {"eq": b.start, "ge": b.start, "gt": b.end, "sa": b.end}.get(b.prefix)
        high = {"eq": b.end, "le": b.end, "lt": b.start, "eb": b.start}.get(b.prefix)
        if low is not None and (since is None or low > since):
            since = low
        if high is not None and (until is None or high < until):
            until = high
    return since, until


@router.get("/Observation")
def search_observations(
    request: Request,
    principal: Principal = Depends(require(Perm.INFUSIONS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    params = request.query_params
    check_params(params, search_params("Observation"))
    page = paging(params)
    device = reference(params, "device", ("DeviceMetric", "Device"))
    patient = reference(params, "patient", ("Patient",))
    code = token(params, "code")
    bounds = dates(params, "date")
    want_pump: str | None = None
    want_channel: int | None = None
    want_metric: str | None = None
    matchable = True
    if device is not None:
        if device[0] == "DeviceMetric":
            m = parse_metric_id(device[1])
            if m is None:
                matchable = False
            else:
                want_pump, want_channel, want_metric = m.pump_id, m.channel, m.metric
        else:
            d = parse_device_id(device[1])
            if d is None:
                matchable = False
            else:
                want_pump, want_channel = d.pump_id, d.channel
    if code is not None:
        metric = METRIC_BY_CODE.get(code.code) if _system_ok(code, MDC) else None
        if metric is None or (want_metric is not None and metric.key != want_metric):
            matchable = False
        else:
            want_metric = metric.key
    patient_id = parse_number_id(patient[1]) if patient else None
    if patient is not None and patient_id is None:
        matchable = False
    since, until = _date_window(bounds)
    matches: list[tuple[reads.ObservedValue, int | None]] = []
    more = False
    with ctx.db.read() as session:
        if not matchable:
            pumps: list[Pump] = []
        elif want_pump is not None:
            found = reads.visible_pump(session, principal, want_pump)
            pumps = [found] if found is not None else []
        else:
            pumps = reads.visible_pumps(session, principal)
        pump_ids = [p.id for p in pumps]
        assoc = reads.Associations(session, pump_ids)
        if patient_id is not None:
            pump_ids = sorted(
                {
                    p
                    for (p, _c), rows in assoc.by_channel.items()
                    for a in rows
                    if a.patient_id == patient_id
                }
            )
        messages, more = reads.status_messages(session, pump_ids, since, until)
        for msg in messages:
            for v in reads.values_of(msg):
                if want_channel is not None and v.channel != want_channel:
                    continue
                if want_metric is not None and v.metric.key != want_metric:
                    continue
                if not all(b.admits(v.at) for b in bounds):
                    continue
                subject = assoc.patient_at(v.pump_id, v.channel, v.at)
                if patient_id is not None and subject != patient_id:
                    continue
                matches.append((v, subject))
    out = [
        resources.observation(v.pump_id, v.channel, v.metric, v.seq, v.value, v.at, subject)
        for v, subject in _page(matches, page)
    ]
    warnings = (
        [
            f"only the newest {reads.SCAN_LIMIT} matching status reports were searched; "
            "narrow the search with date to reach older ones"
        ]
        if more
        else None
    )
    return fhir_response(
        bundle(base_url(request), "Observation", params, page, len(matches), out, warnings)
    )


@router.get("/Observation/{observation_id}")
def read_observation(
    observation_id: str,
    request: Request,
    principal: Principal = Depends(require(Perm.INFUSIONS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    check_params(request.query_params, NOTHING)
    parsed = parse_observation_id(observation_id)
    if parsed is None:
        raise _gone("Observation", observation_id)
    with ctx.db.read() as session:
        pump = reads.visible_pump(session, principal, parsed.pump_id)
        msg = reads.status_message(session, parsed.pump_id, parsed.seq) if pump else None
        item = reads.channel_items(msg.body).get(parsed.channel) if msg is not None else None
        metric = METRICS[parsed.metric]
        value = reads.metric_value(item, metric) if item is not None else None
        if msg is None or value is None:
            raise _gone("Observation", observation_id)
        subject = reads.Associations(session, [parsed.pump_id]).patient_at(
            parsed.pump_id, parsed.channel, msg.received_at
        )
        return fhir_response(
            resources.observation(
                parsed.pump_id, parsed.channel, metric, parsed.seq, value, msg.received_at, subject
            )
        )


# --- MedicationAdministration -----------------------------------------------------------


def _administration(session: Session, inf: Infusion, ctx: ServerContext) -> dict[str, Any]:
    subject = reads.Associations(session, [inf.pump_id]).patient_at(
        inf.pump_id, inf.channel, inf.started_at
    )
    order_id = reads.order_of_infusion(session, inf, ctx.now())
    return resources.medication_administration(inf, subject, order_id)


def _device_filter(params: Any) -> tuple[bool, str | None, int | None]:
    """(matchable, pump id, channel) of a ``device`` parameter."""
    device = _device_ref(params, "device")
    if device is None:
        return True, None, None
    return device[0] != "", device[0] or None, device[1]


def _patient_filter(params: Any) -> tuple[bool, int | None]:
    """(matchable, patient id) of a ``patient`` search parameter; a reference to no
    patient id this server issues matches nothing."""
    patient = reference(params, "patient", ("Patient",))
    patient_id = parse_number_id(patient[1]) if patient else None
    return patient is None or patient_id is not None, patient_id


@router.get("/MedicationAdministration")
def search_administrations(
    request: Request,
    principal: Principal = Depends(require(Perm.INFUSIONS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    params = request.query_params
    check_params(params, search_params("MedicationAdministration"))
    page = paging(params)
    matchable, pump_id, channel = _device_filter(params)
    patient_ok, patient_id = _patient_filter(params)
    matchable = matchable and patient_ok
    with ctx.db.read() as session:
        total, out = 0, []
        if matchable:
            query = reads.infusion_query(principal, pump_id, channel, patient_id)
            total = reads.count(session, query)
            rows = session.scalars(
                query.order_by(Infusion.id.desc()).offset(page.offset).limit(page.count)
            )
            out = [_administration(session, inf, ctx) for inf in rows]
    return fhir_response(
        bundle(base_url(request), "MedicationAdministration", params, page, total, out)
    )


@router.get("/MedicationAdministration/{administration_id}")
def read_administration(
    administration_id: str,
    request: Request,
    principal: Principal = Depends(require(Perm.INFUSIONS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    check_params(request.query_params, NOTHING)
    number = parse_number_id(administration_id)
    with ctx.db.read() as session:
        inf = session.get(Infusion, number) if number is not None else None
        if inf is None or reads.visible_pump(session, principal, inf.pump_id) is None:
            raise _gone("MedicationAdministration", administration_id)
        return fhir_response(_administration(session, inf, ctx))


# --- Patient ----------------------------------------------------------------------------


@router.get("/Patient")
def search_patients(
    request: Request,
    principal: Principal = Depends(require(Perm.PATIENTS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    params = request.query_params
    check_params(params, search_params("Patient"))
    page = paging(params)
    ident = token(params, "identifier")
    with ctx.db.read() as session:
        total, out = 0, []
        if ident is None or _system_ok(ident, MRN_SYSTEM):
            query = select(Patient)
            if ident is not None:
                query = query.where(Patient.mrn == ident.code)
            if principal.unit_scope is not None:
                query = query.where(Patient.unit == principal.unit_scope)
            total = reads.count(session, query)
            rows = session.scalars(query.order_by(Patient.id).offset(page.offset).limit(page.count))
            out = [resources.fhir_patient(p) for p in rows]
    return fhir_response(bundle(base_url(request), "Patient", params, page, total, out))


@router.get("/Patient/{patient_id}")
def read_patient(
    patient_id: str,
    request: Request,
    principal: Principal = Depends(require(Perm.PATIENTS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    check_params(request.query_params, NOTHING)
    number = parse_number_id(patient_id)
    with ctx.db.read() as session:
        patient = reads.visible_patient(session, principal, number) if number else None
        if patient is None:
            raise _gone("Patient", patient_id)
        return fhir_response(resources.fhir_patient(patient))


# --- MedicationRequest ------------------------------------------------------------------

_STATUS_CODES = frozenset({"active", "completed", "stopped", "cancelled"})


def _request_resource(session: Session, order: InfusionOrder, ctx: ServerContext) -> dict[str, Any]:
    return resources.medication_request(order, live_status(session, order, ctx.now()).status)


@router.get("/MedicationRequest")
def search_requests(
    request: Request,
    principal: Principal = Depends(require(Perm.ORDERS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    params = request.query_params
    check_params(params, search_params("MedicationRequest"))
    page = paging(params)
    matchable, pump_id, channel = _device_filter(params)
    patient_ok, patient_id = _patient_filter(params)
    matchable = matchable and patient_ok
    status = token(params, "status")
    if status is not None and status.code not in _STATUS_CODES:
        raise fail(400, "status", status.code, "must be " + " | ".join(sorted(_STATUS_CODES)))
    warnings: list[str] = []
    with ctx.db.read() as session:
        total, out = 0, []
        if matchable:
            query = reads.order_query(principal, pump_id, channel, patient_id)
            if status is None:
                total = reads.count(session, query)
                rows = list(
                    session.scalars(
                        query.order_by(InfusionOrder.id.desc())
                        .offset(page.offset)
                        .limit(page.count)
                    )
                )
                out = [_request_resource(session, o, ctx) for o in rows]
            else:
                # the status on the pump is derived from its reports, row by row
                scanned = list(
                    session.scalars(
                        query.order_by(InfusionOrder.id.desc()).limit(reads.SCAN_LIMIT + 1)
                    )
                )
                if len(scanned) > reads.SCAN_LIMIT:
                    scanned = scanned[: reads.SCAN_LIMIT]
                    warnings.append(
                        f"status was judged on the newest {reads.SCAN_LIMIT} orders only"
                    )
                built = [_request_resource(session, o, ctx) for o in scanned]
                hits = [r for r in built if r["status"] == status.code]
                total, out = len(hits), _page(hits, page)
    return fhir_response(
        bundle(base_url(request), "MedicationRequest", params, page, total, out, warnings)
    )


@router.get("/MedicationRequest/{order_id}")
def read_request(
    order_id: str,
    request: Request,
    principal: Principal = Depends(require(Perm.ORDERS_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    check_params(request.query_params, NOTHING)
    number = parse_number_id(order_id)
    with ctx.db.read() as session:
        order = session.get(InfusionOrder, number) if number is not None else None
        scope = principal.unit_scope
        if order is None or order.command_id is None or (scope is not None and order.unit != scope):
            raise _gone("MedicationRequest", order_id)
        return fhir_response(_request_resource(session, order, ctx))


# HL7 table 0357 error condition (orders' OrderIssue.hl7_code) -> FHIR issue type.
_ISSUE_TYPE = {
    101: "required",
    102: "value",
    103: "code-invalid",
    204: "not-found",
    205: "duplicate",
}


def _check_media(request: Request) -> None:
    header = request.headers.get("content-type", "")
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise fail(415, "content-type", header, "the charset must be UTF-8")


def _lookups(
    session: Session, principal: Principal
) -> tuple[Callable[[int], str | None], Callable[[str], str | None]]:
    def patient_mrn(patient_id: int) -> str | None:
        patient = reads.visible_patient(session, principal, patient_id)
        return patient.mrn if patient is not None else None

    def pump_serial(pump_id: str) -> str | None:
        pump = reads.visible_pump(session, principal, pump_id)
        return resources.pump_serial(pump) if pump is not None else None

    return patient_mrn, pump_serial


def _within_unit(session: Session, principal: Principal, mapped: Mapped) -> None:
    """A unit-limited prescriber orders only for the unit's patients and pumps (C-11)."""
    if principal.unit_scope is None:
        return
    order, issues = mapped.order, []
    if order.pump_serial and reads.pump_by_serial(session, principal, order.pump_serial) is None:
        issues.append(
            Issue(mapped.path_of("pump_serial"), order.pump_serial, "names no known pump")
        )
    patient = session.scalars(select(Patient).where(Patient.mrn == order.patient_mrn)).first()
    if patient is None or reads.visible_patient(session, principal, patient.id) is None:
        issues.append(
            Issue(mapped.path_of("patient_mrn"), order.patient_mrn, "names no known patient")
        )
    if issues:
        raise FhirError(422, issues)


def _create(ctx: ServerContext, principal: Principal, raw: bytes, base: str) -> JSONResponse:
    resource = validate_model(parse_json(raw))
    with ctx.db.read() as session:
        patient_mrn, pump_serial = _lookups(session, principal)
        mapped = to_order(resource, patient_mrn, pump_serial)
        _within_unit(session, principal, mapped)
    result = submit_order(ctx, mapped.order, actor=principal.username)
    if not result.accepted or result.order_id is None:
        issues = [
            Issue(
                mapped.path_of(i.field),
                i.value,
                i.rule,
                _ISSUE_TYPE.get(i.hl7_code, "business-rule"),
            )
            for i in result.issues
        ] or [Issue("MedicationRequest", None, f"refused ({result.status})", "business-rule")]
        raise FhirError(422, issues)
    with ctx.db.read() as session:
        order = session.get(InfusionOrder, result.order_id)
        assert order is not None
        body = _request_resource(session, order, ctx)
    return fhir_response(body, 201, {"Location": f"{base}/MedicationRequest/{result.order_id}"})


@router.post("/MedicationRequest", status_code=201)
async def create_request(
    request: Request,
    principal: Principal = Depends(require(Perm.ORDERS_SUBMIT)),
    ctx: ServerContext = Depends(get_ctx),
) -> JSONResponse:
    """An infusion order: checked like every EHR order and, if accepted, only pre-populated
    on the pump for a clinician to confirm at the bedside (201); refused: 422 with one
    issue per problem. Nothing is stored for a body that is not a valid MedicationRequest."""
    check_params(request.query_params, NOTHING)
    _check_media(request)
    raw = await request.body()
    return await run_in_threadpool(_create, ctx, principal, raw, base_url(request))
