"""Trial reports: the AGP percentiles are right and the files are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openinfusion.sim.report import agp_profile, write_glucose_report


def test_agp_profile_percentiles_by_time_of_day() -> None:
    # Two days at 1-min samples: day 1 reads 100 all day, day 2 reads 200 all day; patient 2
    # reads 150. Each 15-min bin then holds 15 x 100, 15 x 200 and 30 x 150.
    day = 1440
    p1 = np.concatenate([np.full(day, 100.0), np.full(day, 200.0)])
    p2 = np.full(2 * day, 150.0)
    prof = agp_profile(np.vstack([p1, p2]))
    assert len(prof["t_h"]) == 96
    assert prof["t_h"][0] == pytest.approx(0.125)
    assert np.allclose(prof["p50"], 150.0)
    assert np.allclose(prof["p5"], np.percentile([100] * 15 + [200] * 15 + [150] * 30, 5))


def test_agp_profile_respects_start_hour() -> None:
    bg = np.concatenate([np.full(60, 80.0), np.full(60, 160.0)])  # 2 h from 06:00
    prof = agp_profile(bg, start_hour=6.0, bin_min=60)
    assert prof["p50"][6] == 80.0 and prof["p50"][7] == 160.0
    assert np.isnan(prof["p50"][0])


def test_write_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bg = 140 + 40 * np.sin(np.linspace(0, 12, 2880))[None, :] + rng.normal(0, 10, (3, 2880))
    paths = write_glucose_report(tmp_path, ["a", "b", "c"], bg, title="check")
    for key in ("agp", "cvga", "traces"):
        data = Path(paths[key]).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    page = Path(paths["html"]).read_text(encoding="utf-8")
    assert "<td>a</td>" in page and "TIR 70-180 %" in page and page.count("data:image/png") == 3
