"""Safety invariants of order intake as properties (hypothesis): whatever the EHR sends,

- an accepted order goes to the channel associated with the order's own patient, as one
  ``program`` command the pump only pre-populates, and that program passes the library's
  hard limits when checked again independently (with the patient's weight);
- a refused order changes nothing: no command, nothing for the pump.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from openinfusion.library.ders import Level, Program, check
from openinfusion.library.loading import sample_library
from openinfusion.patient import Patient as Covariates
from openinfusion.server.app import create_app
from openinfusion.server.models import Association, Command, Patient
from openinfusion.units import dose_to_rate_ml_h, parse_concentration, parse_dose
from tests.interop.test_orders import OrderEnv
from tests.server._server_support import (
    FakeClock,
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)

LIB = sample_library()


@pytest.fixture(scope="module")
def beds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrderEnv, list[Any]]]:
    clock = FakeClock(datetime(2026, 12, 3, 13, 0, tzinfo=UTC))
    app = create_app(make_settings(tmp_path_factory.mktemp("orders-prop")), clock=clock)
    with TestClient(app) as client:
        env = OrderEnv(client, app, clock)
        made = [env.bed(weight_kg=w) for w in (3.5, 80.0, 140.0)]
        yield env, made


RANDOM = st.fixed_dictionaries(
    {
        "bed": st.integers(0, 2),
        "patient_of": st.integers(0, 2),  # whose MRN the EHR put in PID-3
        "drug": st.sampled_from(["dopamine", "norepinephrine", "heparin", "unobtainium"]),
        "concentration": st.sampled_from(
            [
                None,
                "400 mg/250 mL",
                "800 mg/250 mL",
                "16 mg/250 mL",
                "25000 units/250 mL",
                "1 mg/mL",
            ]
        ),
        "dose": st.one_of(
            st.none(),
            st.builds(
                lambda v, u: f"{v:.4g} {u}",
                st.floats(0.001, 200.0),
                st.sampled_from(["mcg/kg/min", "mcg/min", "units/kg/h", "mg/h"]),
            ),
        ),
        "rate_ml_h": st.one_of(st.none(), st.floats(0.01, 1500.0)),
        "rate_factor": st.none(),
        "vtbi_ml": st.one_of(st.none(), st.floats(1.0, 1000.0)),
    }
)
# Orders a prescriber could well send: the right patient, a library drug and concentration,
# a dose around the limits, and a rate that matches it, or is off by a little or tenfold.
PLAUSIBLE = st.sampled_from(
    [
        ("dopamine", "400 mg/250 mL", 0.5, 80.0),
        ("dopamine", "800 mg/250 mL", 0.5, 80.0),
        ("norepinephrine", "16 mg/250 mL", 0.005, 5.0),
        ("norepinephrine", "4 mg/250 mL", 0.005, 5.0),
    ]
).flatmap(
    lambda d: st.fixed_dictionaries(
        {
            "bed": st.integers(0, 2),
            "patient_of": st.none(),
            "drug": st.just(d[0]),
            "concentration": st.just(d[1]),
            "dose": st.floats(d[2], d[3]).map(lambda v: f"{v:.4g} mcg/kg/min"),
            "rate_ml_h": st.none(),
            "rate_factor": st.sampled_from([None, None, 1.0, 1.015, 1.1, 10.0]),
            "vtbi_ml": st.one_of(st.none(), st.floats(1.0, 1000.0)),
        }
    )
)
ORDERS = st.one_of(PLAUSIBLE, RANDOM)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=ORDERS)
def test_accepted_orders_are_safe_and_refusals_change_nothing(
    beds: tuple[OrderEnv, list[Any]], data: dict[str, Any]
) -> None:
    env, made = beds
    pump_id, serial, own = made[data["bed"]]
    mrn = own["mrn"] if data["patient_of"] is None else made[data["patient_of"]][2]["mrn"]
    rate = data["rate_ml_h"]
    if data["rate_factor"] is not None:  # the rate the dose needs, times the factor
        rate = data["rate_factor"] * dose_to_rate_ml_h(
            parse_dose(data["dose"]), parse_concentration(data["concentration"]), own["weight_kg"]
        )
    before = env.counts()
    out = env.submit(
        env.order(
            serial,
            mrn,
            drug_name=data["drug"],
            concentration=data["concentration"],
            dose=data["dose"],
            rate_ml_h=rate,
            vtbi_ml=data["vtbi_ml"],
        )
    )
    after = env.counts()
    event("accepted" if out.accepted else "refused")
    if not out.accepted:
        assert after == before and out.issues and out.command_id is None
        return
    assert after[0] == before[0] + 1 and out.command_id is not None
    with env.ctx.db.read() as s:
        command = s.get(Command, out.command_id)
        assert command is not None and command.action == "program"
        assert command.pump_id == pump_id and command.status == "unconfirmed"
        assoc = s.scalars(
            select(Association).where(
                Association.pump_id == pump_id,
                Association.channel == command.channel,
                Association.ended_at.is_(None),
            )
        ).one()
        patient = s.get(Patient, assoc.patient_id)
        assert patient is not None and patient.mrn == mrn  # never the wrong patient
        params = dict(command.params)
        weight = patient.weight_kg
    entry = LIB.find("adult-icu", params["drug"])
    assert entry is not None
    program = Program(
        dose=parse_dose(params["dose"]) if "dose" in params else None,
        rate_ml_h=params.get("rate_ml_h"),
        concentration=parse_concentration(params["concentration"])
        if "concentration" in params
        else None,
        vtbi_ml=params.get("vtbi_ml"),
    )
    verdict = check(program, entry, Covariates(weight_kg=weight), LIB.care_area("adult-icu"))
    assert verdict.level is not Level.HARD, verdict.messages()
    assert out.soft_limit == (verdict.level is Level.SOFT)
