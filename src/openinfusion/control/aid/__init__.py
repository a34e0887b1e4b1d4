"""Automated insulin delivery (AID): the controller interface, the safety supervisor every
command passes through, a PID with insulin feedback, a linear MPC and the adapter that runs
them in the glucose trial engine. See docs/aid.md."""

from openinfusion.control.aid.base import AidController
from openinfusion.control.aid.interface import Command, Observation, Profile
from openinfusion.control.aid.mpc import MpcController
from openinfusion.control.aid.oref_controller import OrefController
from openinfusion.control.aid.pid import PidIfbController
from openinfusion.control.aid.supervisor import SafetySupervisor, SupervisorSettings
from openinfusion.control.aid.trial_adapter import (
    TrialAid,
    mpc_controller,
    oref_controller,
    oref_smb_controller,
    pid_controller,
)

__all__ = [
    "AidController",
    "Command",
    "MpcController",
    "Observation",
    "OrefController",
    "PidIfbController",
    "Profile",
    "SafetySupervisor",
    "SupervisorSettings",
    "TrialAid",
    "mpc_controller",
    "oref_controller",
    "oref_smb_controller",
    "pid_controller",
]
