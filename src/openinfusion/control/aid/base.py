"""The base every AID controller derives from: a proposal, then the supervisor, always."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import final

from openinfusion.control.aid.interface import Command, Observation
from openinfusion.control.aid.supervisor import SafetySupervisor


class AidController(ABC):
    """Subclasses implement :meth:`propose`; :meth:`step` (final) passes the proposal
    through the :class:`SafetySupervisor` and reports the safe command to :meth:`delivered`."""

    name: str = "aid"

    def __init__(self, supervisor: SafetySupervisor | None = None) -> None:
        self.supervisor = supervisor or SafetySupervisor()

    @abstractmethod
    def propose(self, obs: Observation) -> Command:
        """The controller's wish for the next interval (not yet safe)."""

    def delivered(self, obs: Observation, proposed: Command, safe: Command) -> None:
        """Hook: the command that reaches the pump (state updates, anti-windup)."""
        return None

    @final
    def step(self, obs: Observation) -> Command:
        """The supervised command for ``obs``."""
        proposed = self.propose(obs)
        safe = self.supervisor.check(obs, proposed)
        self.delivered(obs, proposed, safe)
        return safe
