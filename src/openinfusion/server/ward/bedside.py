"""What a remote command may do to a pump, decided and applied on the pump (the bedside).

docs/pump-protocol.md, "Commands": ``pause`` and ``stop`` act at once; ``titrate`` is
re-checked by the pump's own DERS against its active library and hard limits (a soft-limit
crossing needs an override given at the bedside, so it is refused remotely); ``program``,
``start``, ``resume`` and ``bolus`` are only *pre-populated*: they wait for a clinician's
confirmation at the bedside, and only until the command's deadline on the pump's monotonic
clock, so no remote change is kept for later (RELIABILITY C-17, B-04, F-10);
``activate_library`` only when no channel delivers (C-24) and only for a package that
verifies with the pharmacist's trusted key, never the server's (C-26). Local alarms are
never silenced remotely. Wire channels are numbered from 1; device channels from 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from openinfusion.errors import InputError
from openinfusion.library import Library, VerifiedLibrary, verify_package
from openinfusion.library.ders import DersError, SoftLimitError
from openinfusion.library.signing import library_sha256
from openinfusion.pump import therapies as T
from openinfusion.pump.channel import CommandRejected, State
from openinfusion.pump.codes import Alarm, Event
from openinfusion.pump.device import Device
from openinfusion.pump.plan import StepKind
from openinfusion.security import PublicKey
from openinfusion.security.envelope import FrameRejected
from openinfusion.security.replay import Admission, ReplayGuard
from openinfusion.units import rate_to_dose

#: Channel states in which a channel delivers (library changes wait until none is).
DELIVERING = frozenset({State.RUNNING, State.BOLUS, State.KVO, State.DELAYED})
#: Actions that are only pre-populated and wait for the bedside.
PREPOPULATED = frozenset({"program", "start", "resume", "bolus"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's result as the pump reports it (``command_result`` body fields)."""

    outcome: str  # accepted | rejected | awaiting_confirmation
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Pending:
    """A pre-populated remote change waiting for the clinician at the bedside.

    A remote program that crosses a soft limit is pre-populated with the crossings shown
    (``soft_limits``); only a clinician at the bedside may override them, with a reason
    (``apply_override``), never the server."""

    admission: Admission
    action: str
    channel: int  # device index
    apply: Callable[[], str]  # applies the change; returns what was done
    soft_limits: tuple[str, ...] = ()
    apply_override: Callable[[str], str] | None = None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: non-finite floats become null, tuples lists, enums text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


class Bedside:
    """A pump as the link sees it: its device, its DERS context and its active library."""

    def __init__(
        self,
        device: Device,
        *,
        kind: str,
        ctx: T.Context | None = None,
        programmed: dict[int, T.Programmed] | None = None,
        trusted_pharmacy_keys: Sequence[PublicKey] = (),
        installed: VerifiedLibrary | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.device = device
        self.kind = kind
        self.ctx = ctx
        self.programmed: dict[int, T.Programmed] = programmed or {}
        self.trusted = list(trusted_pharmacy_keys)
        self.installed = installed
        self.today = today
        self.pending: dict[int, Pending] = {}
        # Pre-populated changes dropped by a later command (replaced, or the channel
        # stopped), with the reason: the link reports each one to the server.
        self.dropped: list[tuple[Pending, str]] = []
        self.held: set[int] = set()  # channels paused or stopped from the central station
        self.observe: Callable[[], dict[str, Any]] | None = None  # patient readings, if any
        # How a confirmation at this bedside is reported (the link sets it): channel from 1,
        # the clinician's override reason for a soft limit, or None.
        self.confirm_hook: Callable[[int, str | None], Any] | None = None

    # ---- status --------------------------------------------------------------------------

    @property
    def library(self) -> Library | None:
        return self.ctx.library if self.ctx is not None else None

    def library_info(self) -> dict[str, Any] | None:
        lib = self.library
        if lib is None:
            return None
        sha = self.installed.sha256 if self.installed else library_sha256(lib)
        return {"name": lib.name, "version": lib.version, "sha256": sha}

    def channel_status(self, index: int) -> dict[str, Any]:
        ch = self.device.channels[index]
        st = ch.status()
        programmed = self.programmed.get(index)
        summary = programmed.summary if programmed is not None else {}
        remaining = ch.time_remaining_s()
        vtbi = st["vtbi_ml"]
        vtbi_left = max(0.0, vtbi - st["program_ml"]) if vtbi is not None else None
        left_s = remaining["vtbi_s"] if remaining["vtbi_s"] is not None else None
        step = ch.step
        if vtbi is None and step is not None and step.kind is StepKind.DOSE and step.volume_ml:
            # An intermittent dose (e.g. the 46-h 5-FU infusion) has no VTBI but a dose volume:
            # report what is left of the dose running now.
            vtbi = step.volume_ml
            vtbi_left = max(0.0, step.volume_ml - ch.step_ml)
            rate = st["rate_ml_h"]
            left_s = vtbi_left / rate * 3600.0 if rate > 0 else None
        dose = summary.get("dose")
        dose_unit = summary.get("dose_unit")
        if (
            programmed is not None
            and programmed.dose_unit is not None
            and programmed.concentration is not None
            and self.ctx is not None
            and st["rate_ml_h"] > 0
            and programmed.plan.pca is None
        ):
            try:
                shown = rate_to_dose(
                    st["rate_ml_h"],
                    programmed.concentration,
                    programmed.dose_unit,
                    self.ctx.patient.weight_kg,
                    self.ctx.patient.bsa_m2,
                )
                dose, dose_unit = shown.value, shown.unit.text
            except InputError:
                pass
        out = {
            "channel": index + 1,
            "state": st["state"],
            "drug": st["drug"],
            "therapy": st["therapy"],
            "dose": dose,
            "dose_unit": dose_unit,
            "rate_ml_h": st["rate_ml_h"],
            "volume_infused_ml": st["pumped_ml"],
            "vtbi_ml": vtbi,
            "vtbi_remaining_ml": vtbi_left,
            "time_remaining_min": left_s / 60.0 if left_s is not None else None,
            "reservoir_ml": st["reservoir_ml"],
            "pressure_mmhg": st["pressure_mmhg"],
            "pending_remote": self.pending[index].action if index in self.pending else None,
            "pending_soft_limits": list(self.pending[index].soft_limits)
            if index in self.pending
            else [],
        }
        return jsonable(out)  # type: ignore[no-any-return]

    def status_body(self) -> dict[str, Any]:
        d = self.device
        return jsonable(  # type: ignore[no-any-return]
            {
                "kind": self.kind,
                "t_s": d.t_s,
                "powered": d.powered,
                "battery_percent": d.battery.percent,
                "on_mains": d.battery.on_mains,
                "channels": [self.channel_status(i) for i in range(len(d.channels))],
                "alarms": [a.as_dict() for a in d.board.active()],
                "library": self.library_info(),
                "patient": self.observe() if self.observe is not None else None,
            }
        )

    # ---- communication condition -------------------------------------------------------------

    def set_no_communication(self, present: bool) -> None:
        """Raise or clear the low-priority technical 'no communication' condition (device
        level, delivery unaffected: it does not stop flow)."""
        d, code = self.device, Alarm.NO_COMMUNICATION
        if present:
            if d.board.raise_(code, d.t_s):
                d._emit(d.t_s, Event.ALARM.value, {"code": code.code, "priority": "low"})
        elif d.board.condition(code):
            d.board.condition_cleared(code)
            d._emit(d.t_s, Event.ALARM_CLEARED.value, {"code": code.code})

    # ---- commands ------------------------------------------------------------------------

    def apply(self, admission: Admission, guard: ReplayGuard) -> Outcome:
        """Decide and apply an admitted command (never raises for a refusal)."""
        cmd = admission.command
        index = cmd.channel - 1
        if index >= len(self.device.channels):
            return Outcome("rejected", f"channel {cmd.channel} does not exist on this pump")
        try:
            guard.check_live(admission)
            if cmd.action == "pause":
                self.device.pause(index)
                self.held.add(index)
                return Outcome("accepted", "paused")
            if cmd.action == "stop":
                self.device.stop(index)
                self.held.add(index)
                self._drop(index, "the channel was stopped remotely")
                return Outcome("accepted", "stopped")
            if cmd.action == "titrate":
                return self._titrate(index, cmd.params)
            if cmd.action in PREPOPULATED:
                return self._prepopulate(admission, index)
            if cmd.action == "activate_library":
                return self._activate_library(cmd.params)
            if cmd.action == "silence_remote_view":
                return Outcome(
                    "accepted", "remote view silenced; local alarms are not silenced remotely"
                )
        except CommandRejected as exc:
            return Outcome("rejected", exc.message)
        except FrameRejected as exc:
            return Outcome("rejected", exc.message)
        except InputError as exc:
            return Outcome("rejected", exc.message)
        except DersError as exc:
            return Outcome("rejected", str(exc))
        return Outcome("rejected", f"action {cmd.action!r} is not allowed remotely")

    def _titrate(self, index: int, params: dict[str, Any]) -> Outcome:
        programmed = self.programmed.get(index)
        if programmed is None or self.ctx is None:
            return Outcome("rejected", "the channel has no DERS-checked program to titrate")
        rate, dose = params.get("rate_ml_h"), params.get("dose")
        if (rate is None) == (dose is None):
            raise InputError("params", json.dumps(params)[:80], "give rate_ml_h or dose")
        rate_text = None
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, int | float):
                raise InputError("params.rate_ml_h", rate, "must be a number of mL/h")
            rate_text = f"{rate} mL/h"
        dose_text = None
        if dose is not None:
            unit = params.get("dose_unit") or (
                programmed.dose_unit.text if programmed.dose_unit else ""
            )
            dose_text = f"{dose} {unit}"
        # DERS with the pump's own library, no override: a soft limit needs the bedside.
        rate_ml_h, verdict = T.titration(
            self.ctx, programmed, dose=dose_text, rate=rate_text, override_reason=None
        )
        self.device.titrate(
            index,
            rate_ml_h,
            dose=dose_text,
            remote=True,
            verdict=verdict.label if verdict else None,
        )
        return Outcome("accepted", f"titrated to {rate_ml_h:.4g} mL/h", {"rate_ml_h": rate_ml_h})

    def _prepopulate(self, admission: Admission, index: int) -> Outcome:
        cmd = admission.command
        ch = self.device.channels[index]
        soft: tuple[str, ...] = ()
        override: Callable[[str], str] | None = None
        if cmd.action == "program":
            try:
                programmed: T.Programmed | None = self._build_program(cmd.params)
            except SoftLimitError as exc:
                programmed, soft = None, tuple(exc.verdict.messages())

            def load(ready: T.Programmed) -> str:
                self.device.program(
                    index, ready.plan, remote=cmd.command_id, **ready.journal_info()
                )
                self.device.start(index)
                self.programmed[index] = ready
                self.held.discard(index)
                return "programmed and started"

            def do_program() -> str:
                if programmed is None:
                    raise InputError(
                        "override_reason", "", "a soft limit is crossed: override with a reason"
                    )
                return load(programmed)

            def do_override(reason: str) -> str:
                return load(self._build_program(cmd.params, override_reason=reason)) + (
                    " (soft limit overridden at the bedside)"
                )

            apply = do_program
            override = do_override if soft else None
        elif cmd.action in ("start", "resume"):
            if cmd.action == "start" and ch.state is not State.STANDBY:
                raise CommandRejected("state", ch.state.value, "start needs a channel in standby")
            if cmd.action == "resume" and ch.state is not State.PAUSED:
                raise CommandRejected("state", ch.state.value, "resume needs a paused channel")

            def do_start() -> str:
                getattr(self.device, cmd.action)(index)
                self.held.discard(index)
                return cmd.action + "ed" if cmd.action == "start" else "resumed"

            apply = do_start
        else:  # bolus
            programmed_ = self.programmed.get(index)
            if programmed_ is None or self.ctx is None:
                raise InputError("channel", cmd.channel, "has no program to give a bolus on")
            dose = cmd.params.get("dose")
            if not isinstance(dose, str):
                raise InputError("params.dose", dose, "must be a dose text such as '2 mg'")
            volume, _ = T.bolus_volume(self.ctx, programmed_, dose, None)
            mech = self.ctx.mechanism

            def do_bolus() -> str:
                self.device.bolus(index, volume, min(mech.max_rate_ml_h, 600.0), dose=dose)
                return f"bolus {dose} ({volume:.4g} mL) started"

            apply = do_bolus
        self._drop(index, f"replaced by command {cmd.command_id}")
        self.pending[index] = Pending(admission, cmd.action, index, apply, soft, override)
        extra: dict[str, Any] = {"deadline_s": admission.command.ttl_s}
        reason = "pre-populated: waits for confirmation at the bedside"
        if soft:
            extra["soft_limits"] = list(soft)
            reason += " (soft limit crossed: a clinician overrides it with a reason, or not)"
        return Outcome("awaiting_confirmation", reason, extra)

    def _build_program(
        self, params: dict[str, Any], override_reason: str | None = None
    ) -> T.Programmed:
        if self.ctx is None:
            raise InputError("program", "", "this pump takes no library programs remotely")
        allowed = {"drug", "concentration", "dose", "rate", "rate_ml_h", "vtbi", "vtbi_ml"}
        unknown = set(params) - allowed
        if unknown:
            raise InputError("params", ", ".join(sorted(unknown)), "unknown program fields")

        def text(name: str, unit: str) -> str | None:
            value = params.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InputError(f"params.{name}", value, "must be a number or text")
            return value if isinstance(value, str) else f"{value} {unit}"

        # The override reason is the clinician's, given at the bedside (None from a remote
        # command): a soft-limit crossing is never overridden remotely.
        return T.continuous(
            self.ctx,
            drug=text("drug", ""),
            concentration=text("concentration", ""),
            dose=text("dose", ""),
            rate=text("rate", "mL/h") or text("rate_ml_h", "mL/h"),
            vtbi=text("vtbi", "mL") or text("vtbi_ml", "mL"),
            override_reason=override_reason,
        )

    def _drop(self, index: int, reason: str) -> None:
        old = self.pending.pop(index, None)
        if old is not None:
            self.dropped.append((old, reason))

    def confirm_at_bedside(
        self, index: int, guard: ReplayGuard, override_reason: str | None = None
    ) -> Outcome:
        """The clinician confirms the pre-populated change (only before its deadline). A
        program past a soft limit needs the clinician's override reason; without one it
        stays pre-populated (outcome ``rejected`` with ``extra["kept"]``)."""
        pending = self.pending.get(index)
        if pending is None:
            return Outcome("rejected", "nothing pre-populated on this channel")
        reason = (override_reason or "").strip()
        if pending.soft_limits and not reason:
            try:
                guard.check_live(pending.admission)
            except FrameRejected as exc:
                del self.pending[index]
                return Outcome("rejected", exc.message)
            return Outcome(
                "rejected",
                "; ".join(pending.soft_limits) + " (override with a reason to continue)",
                {"kept": True},
            )
        del self.pending[index]
        try:
            guard.check_live(pending.admission)
            if pending.soft_limits and pending.apply_override is not None:
                return Outcome("accepted", pending.apply_override(reason))
            return Outcome("accepted", pending.apply())
        except (CommandRejected, FrameRejected, InputError) as exc:
            return Outcome("rejected", exc.message)
        except DersError as exc:
            return Outcome("rejected", str(exc))

    def expire_pending(self, guard: ReplayGuard) -> list[Pending]:
        """Discard pre-populated changes past their deadline; returns them."""
        gone = [p for p in self.pending.values() if not guard.is_live(p.admission)]
        for p in gone:
            del self.pending[p.channel]
        return gone

    def _activate_library(self, params: dict[str, Any]) -> Outcome:
        busy = [i + 1 for i, ch in enumerate(self.device.channels) if ch.state in DELIVERING]
        if busy:
            return Outcome(
                "rejected",
                f"channel(s) {', '.join(map(str, busy))} infusing: a library is activated only "
                "between infusions",
            )
        if not self.trusted:
            return Outcome("rejected", "no pharmacy signing key is trusted on this pump")
        package = params.get("package")
        if not isinstance(package, dict):
            raise InputError("params.package", package, "must be a signed library package")
        raw = json.dumps(package, ensure_ascii=False).encode("utf-8")
        verified = verify_package(raw, self.trusted, installed=self.installed, today=self.today())
        if self.ctx is None:
            return Outcome("rejected", "this pump has no drug library")
        area = verified.library.care_area(self.ctx.care_area.id) if self.ctx.care_area else None
        self.ctx = T.Context(self.ctx.mechanism, self.ctx.patient, verified.library, area)
        self.installed = verified
        self.device._emit(
            self.device.t_s,
            "library_activated",
            {
                "name": verified.library.name,
                "version": verified.library.version,
                "sha256": verified.sha256,
                "signer": verified.signer,
            },
        )
        return Outcome(
            "accepted",
            f"library {verified.library.name} {verified.library.version} activated",
            {"sha256": verified.sha256},
        )
