"""The personalisation figures of docs/aid.md, measured on the UVA/Padova adults.

    uv run --frozen python examples/aid/personalisation_figures.py [--quick]

Every number is a ratio to the subject's own value (steady-state basal, therapy-table ISF
and CR), mean over the ten adults (min-max in brackets). ``--quick``: adult#001 only.
"""

from __future__ import annotations

import sys

import numpy as np

from openinfusion.control.aid.autosens import autosens
from openinfusion.control.aid.autotune import autotune
from openinfusion.physiology.glucose import subject_names
from openinfusion.sim.personalise_trial import (
    DEFAULT_MEALS,
    VirtualDays,
    nightly_autotune,
    simulate_days,
    subject_settings,
)

NIGHTS = (1, 3, 5, 10)


def summary(values: list[float]) -> str:
    a = np.asarray(values)
    return f"{a.mean():.3f} [{a.min():.3f}-{a.max():.3f}]"


def basal_nights(names: list[str], meals: tuple[tuple[float, float], ...], title: str) -> None:
    print(f"\nnightly autotune, basal / true basal, {title}")
    print("start | " + " | ".join(f"night {n}" for n in NIGHTS))
    for scale in (0.7, 1.0, 1.3):
        rows: list[list[float]] = []
        for name in names:
            s = subject_settings(name, basal_scale=scale)
            prog, _ = nightly_autotune(VirtualDays(name, meals=meals), s, max(NIGHTS))
            true = s.basal_u_h.mean() / scale
            rows.append([float(prog[n].basal_u_h.mean() / true) for n in NIGHTS])
        cols = list(zip(*rows, strict=True))
        print(f"{scale:.1f} | " + " | ".join(summary(list(c)) for c in cols))


def autosens_rows(names: list[str]) -> None:
    print("\nautosens at 6 h after insulin action changed (fasting), ratio")
    for noise in (False, True):
        for sens in (0.7, 1.0, 1.4):
            ratios = []
            for name in names:
                for seed in range(5 if noise else 1):
                    spec = VirtualDays(
                        name, days=1, meals=(), sensitivity_scale=sens, cgm_noise=noise, seed=seed
                    )
                    h = simulate_days(spec, subject_settings(name))
                    ratios.append(autosens(h, at_min=360.0).ratio)
            label = "Dexcom noise, 5 seeds" if noise else "exact CGM"
            print(f"insulin action x{sens}: {summary(ratios)} ({label})")
    print("\nautosens, 3 meals with carbs/CR boluses, correct profile, end of day 1")
    ratios = []
    for name in names:
        h = simulate_days(VirtualDays(name, days=1), subject_settings(name))
        ratios.append(autosens(h).ratio)
    print(f"ratio {summary(ratios)}")


def isf_cr_rows(names: list[str]) -> None:
    print("\nISF after 2 days with two 3-U corrections a day (fasting), ISF / table ISF")
    for scale in (0.6, 1.0, 1.6):
        out = []
        for name in names:
            s = subject_settings(name, isf_scale=scale)
            spec = VirtualDays(name, days=2, meals=(), corrections=((120.0, 3.0), (720.0, 3.0)))
            r = autotune(simulate_days(spec, s))
            out.append(r.settings.isf_mg_dl_u / (s.isf_mg_dl_u / scale))
        print(f"start {scale:.1f} -> {summary(out)}")
    print("\nCR after 2 days of 3 meals (50/70/80 g) bolused by the programmed CR, CR / table CR")
    for scale in (0.6, 1.0, 1.6):
        out = []
        for name in names:
            s = subject_settings(name, cr_scale=scale)
            r = autotune(simulate_days(VirtualDays(name, days=2, meals=DEFAULT_MEALS), s))
            out.append(r.settings.carb_ratio_g_u / (s.carb_ratio_g_u / scale))
        print(f"start {scale:.1f} -> {summary(out)}")


def main() -> None:
    quick = "--quick" in sys.argv
    names = ["adult#001"] if quick else [n for n in subject_names() if n.startswith("adult#")]
    print(f"subjects: {', '.join(names)}")
    basal_nights(names, (), "fasting days (basal test), exact CGM")
    basal_nights(names, DEFAULT_MEALS, "3 meals a day with carbs/CR boluses, exact CGM")
    autosens_rows(names)
    isf_cr_rows(names)


if __name__ == "__main__":
    main()
