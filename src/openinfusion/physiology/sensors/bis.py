"""Bispectral index (BIS) monitor: what the screen shows for a true BIS value.

The true BIS comes from a PD model owned elsewhere (for example the Eleveld propofol
sigmoid, ``BIS = 93 - 93 Ce^g / (Ce^g + Ce50^g)``); this model adds what the monitor does:

* smoothing over ``smoothing_s`` (the monitor offers smoothing windows such as 15 or 30 s),
  as a first-order filter with time constant half the window;
* measurement noise, Ornstein-Uhlenbeck with SD ``noise_sd`` BIS units (local; the 8 BIS
  units residual of population PD models also holds model misfit, so it is larger);
* signal-quality dropouts (low SQI from electrocautery, movement, poor electrode contact)
  during which no BIS is shown (NaN); rate and duration local;
* integer display clipped to 0..100.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from openinfusion.errors import InputError
from openinfusion.physiology.sensors._common import (
    Array,
    Artefacts,
    Clock,
    Episodes,
    OuNoise,
    Smoother,
    as_matrix,
    as_row,
    check_number,
    check_seed,
    spawn,
)


@dataclass(frozen=True)
class BisSpec:
    """BIS monitor settings (smoothing window, noise, signal-quality dropouts)."""

    smoothing_s: float = 15.0
    noise_sd: float = 3.0
    noise_corr_s: float = 20.0
    resolution: float = 1.0
    dropouts: Artefacts | None = field(
        default_factory=lambda: Artefacts(rate_per_h=2.0, duration_s=(10.0, 90.0))
    )

    def validated(self) -> BisSpec:
        check_number("bis.smoothing_s", self.smoothing_s, lo=0.0, hi=120.0, unit="s")
        check_number("bis.noise_sd", self.noise_sd, lo=0.0, hi=30.0)
        check_number("bis.noise_corr_s", self.noise_corr_s, lo=0.0, hi=3600.0, unit="s")
        check_number("bis.resolution", self.resolution, lo=0.0, hi=10.0)
        if self.dropouts is not None:
            self.dropouts.validated("bis.dropouts")
        return self


class BisMonitor:
    """A BIS monitor for ``N`` patients, streaming (:meth:`measure`) or batch (:meth:`readings`).

    ``noise=False`` keeps only smoothing, clipping and display resolution.
    """

    def __init__(
        self, spec: BisSpec | None = None, *, seed: int | None = None, noise: bool = True
    ) -> None:
        if not isinstance(noise, bool):
            raise InputError("noise", noise, "must be True or False")
        self.spec = (spec or BisSpec()).validated()
        self.noise = noise
        self.seed = check_seed(seed, needed=noise)
        self.reset()

    def reset(self) -> None:
        """Forget the streaming state."""
        self._n: int | None = None
        self._clock = Clock()

    def _start(self, n: int) -> None:
        s = self.spec
        self._n = n
        self._smooth = Smoother(s.smoothing_s / 120.0)
        self._noise: OuNoise | None = None
        self._drop: Episodes | None = None
        if self.noise and self.seed is not None:
            r = spawn(self.seed, ("noise", "dropouts"))
            self._noise = OuNoise(n, s.noise_sd, s.noise_corr_s / 60.0, r["noise"])
            if s.dropouts is not None:
                self._drop = Episodes(n, s.dropouts, r["dropouts"])

    def _step(self, dt: float | None, bis: Array) -> Array:
        y = self._smooth.step(dt, bis)
        if self._noise is not None:
            y = y + self._noise.step(dt)
        step = self.spec.resolution
        y = np.clip(np.round(y / step) * step if step > 0 else y, 0.0, 100.0)
        if self._drop is not None:
            missing, _ = self._drop.step(dt)
            y = np.where(missing, np.nan, y)
        return y

    def measure(self, t_min: float, bis_true: ArrayLike) -> Array:
        """Displayed BIS at ``t_min`` (minutes, non-decreasing) for true BIS ``(N,)`` 0..100."""
        bis = as_row("bis_true", bis_true, self._n, lo=0.0, hi=100.0)
        dt = self._clock.advance(t_min)
        if self._n is None:
            self._start(bis.shape[0])
        return self._step(dt, bis)

    def readings(self, bis_true: ArrayLike, *, dt_min: float = 1.0 / 12.0) -> Array:
        """Batch form: ``(N, T)`` true BIS, column ``j`` at ``j * dt_min`` (default 5 s)."""
        bis = as_matrix("bis_true", bis_true, lo=0.0, hi=100.0)
        dt = check_number("dt_min", dt_min, lo=0.0, lo_open=True, unit="min")
        run = BisMonitor(self.spec, seed=self.seed, noise=self.noise)
        run._start(bis.shape[0])
        cols = [run._step(dt if j else None, bis[:, j]) for j in range(bis.shape[1])]
        return np.stack(cols, axis=1)
