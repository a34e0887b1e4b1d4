"""Trial reports: an AGP-style glucose report, CVGA plot and per-patient traces, as PNG and
one self-contained HTML page.

The AGP layout follows the consensus report (Battelino et al., Diabetes Care 2019; Johnson
et al., Diabetes Technol Ther 2019): glucose statistics and targets, the time-in-ranges
bar, and the modal day with the median, the 25th-75th and 5th-95th percentile bands over
the 70-180 mg/dL target range. Plots use matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openinfusion.sim.metrics import cvga, glycaemic_metrics

PERCENTILES = (5, 25, 50, 75, 95)
_BANDS = (  # label, low (exclusive), high (inclusive), colour: the consensus report's bands
    ("Very high >250", 250.0, math.inf, "#e67e22"),
    ("High 181-250", 180.0, 250.0, "#f5c342"),
    ("Target 70-180", 69.999, 180.0, "#4caf50"),
    ("Low 54-69", 53.999, 69.999, "#e74c3c"),
    ("Very low <54", -math.inf, 53.999, "#8e1b1b"),
)


def agp_profile(
    bg: ArrayLike, *, minutes_per_sample: float = 1.0, bin_min: int = 15, start_hour: float = 0.0
) -> dict[str, Any]:
    """Percentiles of glucose by time of day over every patient and day (the modal day).

    Returns ``{"t_h": bin centres (h from midnight), "p5": ..., "p25": ..., "p50": ...,
    "p75": ..., "p95": ...}``; a bin with no reading is NaN.
    """
    g = np.atleast_2d(np.asarray(bg, dtype=np.float64))
    t_min = (start_hour * 60.0 + np.arange(g.shape[1]) * minutes_per_sample) % 1440.0
    bins = int(1440 // bin_min)
    index = (t_min // bin_min).astype(int)
    out: dict[str, Any] = {"t_h": (np.arange(bins) + 0.5) * bin_min / 60.0}
    rows = np.full((len(PERCENTILES), bins), np.nan)
    for b in range(bins):
        values = g[:, index == b].ravel()
        values = values[~np.isnan(values)]
        if values.size:
            rows[:, b] = np.percentile(values, PERCENTILES)
    for p, row in zip(PERCENTILES, rows, strict=True):
        out[f"p{p}"] = row
    return out


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def agp_png(bg: NDArray[np.float64], *, minutes_per_sample: float = 1.0, title: str = "") -> bytes:
    """The modal-day plot with percentile bands and the time-in-ranges bar, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = agp_profile(bg, minutes_per_sample=minutes_per_sample)
    fig, (ax, bar) = plt.subplots(
        1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [6, 1]}, constrained_layout=True
    )
    t = prof["t_h"]
    ax.axhspan(70, 180, color="#4caf50", alpha=0.08)
    ax.axhline(70, color="#4caf50", lw=0.8)
    ax.axhline(180, color="#4caf50", lw=0.8)
    ax.fill_between(t, prof["p5"], prof["p95"], color="#5b8def", alpha=0.18, label="5-95 %")
    ax.fill_between(t, prof["p25"], prof["p75"], color="#5b8def", alpha=0.4, label="25-75 %")
    ax.plot(t, prof["p50"], color="#1d3f8f", lw=2, label="median")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.set_ylim(0, 400)
    ax.set_xlabel("time of day (h)")
    ax.set_ylabel("glucose (mg/dL)")
    ax.set_title(title or "Ambulatory glucose profile")
    ax.legend(loc="upper right", fontsize=8)
    flat = np.asarray(bg, dtype=np.float64).ravel()
    flat = flat[~np.isnan(flat)]
    bottom = 0.0
    for label, low, high, colour in reversed(_BANDS):
        share = 100.0 * float(np.mean((flat > low) & (flat <= high))) if flat.size else 0.0
        bar.bar(0, share, bottom=bottom, color=colour, width=0.6)
        if share >= 3:
            bar.text(0.4, bottom + share / 2, f"{label}\n{share:.0f} %", va="center", fontsize=7)
        bottom += share
    bar.set_xlim(-0.5, 2.2)
    bar.set_ylim(0, 100)
    bar.axis("off")
    return _figure_png(fig)


def cvga_png(bg: NDArray[np.float64]) -> bytes:
    """The control-variability grid (Magni et al., JDST 2008) with one point per patient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = cvga(bg)
    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    xs = [110, 90, 70, 50]
    ys = [110, 180, 300, 400]
    colours = [["#2e7d32", "#66bb6a", "#fdd835"], ["#66bb6a", "#9ccc65", "#fb8c00"]]
    colours.append(["#fdd835", "#fb8c00", "#c62828"])
    for i in range(3):
        for j in range(3):
            ax.fill_between(
                [xs[i], xs[i + 1]], ys[j], ys[j + 1], color=colours[i][j], alpha=0.35, lw=0
            )
    px = [p["min_mg_dl"] for p in result["points"]]
    py = [p["max_mg_dl"] for p in result["points"]]
    ax.scatter(px, py, color="k", s=14, zorder=3)
    ax.set_xlim(110, 50)
    ax.set_ylim(110, 400)
    ax.set_xlabel("minimum BG, 2.5th percentile (mg/dL)")
    ax.set_ylabel("maximum BG, 97.5th percentile (mg/dL)")
    shares = ", ".join(f"{z} {v:.0f} %" for z, v in result["percent"].items())
    ax.set_title(f"CVGA: {shares}", fontsize=9)
    return _figure_png(fig)


def traces_png(
    names: Sequence[str], bg: NDArray[np.float64], *, minutes_per_sample: float = 1.0
) -> bytes:
    """Glucose against time for up to 12 patients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = np.atleast_2d(bg)
    fig, ax = plt.subplots(figsize=(10, 3.5), constrained_layout=True)
    t_h = np.arange(g.shape[1]) * minutes_per_sample / 60.0
    ax.axhspan(70, 180, color="#4caf50", alpha=0.08)
    for name, row in list(zip(names, g, strict=True))[:12]:
        ax.plot(t_h, row, lw=1, label=name)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("glucose (mg/dL)")
    if len(names) <= 12:
        ax.legend(fontsize=7, ncol=4)
    return _figure_png(fig)


_TABLE_KEYS = (
    ("tir_percent", "TIR 70-180 %", "{:.1f}"),
    ("tbr_percent", "TBR <70 %", "{:.1f}"),
    ("tbr2_percent", "TBR <54 %", "{:.1f}"),
    ("tar_percent", "TAR >180 %", "{:.1f}"),
    ("tar2_percent", "TAR >250 %", "{:.1f}"),
    ("mean_mg_dl", "mean mg/dL", "{:.0f}"),
    ("cv_percent", "CV %", "{:.1f}"),
    ("gmi_percent", "GMI %", "{:.2f}"),
    ("lbgi", "LBGI", "{:.2f}"),
    ("hbgi", "HBGI", "{:.2f}"),
)


def write_glucose_report(
    directory: str | Path,
    names: Sequence[str],
    bg: ArrayLike,
    *,
    minutes_per_sample: float = 1.0,
    title: str = "Glucose trial",
    metrics: Sequence[dict[str, float]] | None = None,
) -> dict[str, str]:
    """Write agp.png, cvga.png, traces.png and report.html into ``directory``; returns paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    g = np.atleast_2d(np.asarray(bg, dtype=np.float64))
    per_day = round(1440 / minutes_per_sample)
    rows = list(metrics) if metrics is not None else glycaemic_metrics(g, samples_per_day=per_day)
    images = {
        "agp": agp_png(g, minutes_per_sample=minutes_per_sample, title=title),
        "cvga": cvga_png(g),
        "traces": traces_png(names, g, minutes_per_sample=minutes_per_sample),
    }
    paths = {}
    for key, data in images.items():
        path = out / f"{key}.png"
        path.write_bytes(data)
        paths[key] = str(path)
    pooled = glycaemic_metrics(g.ravel()[None, :], samples_per_day=per_day * g.shape[0])[0]
    paths["html"] = str(_write_html(out / "report.html", title, names, rows, pooled, images))
    return paths


def _write_html(
    path: Path,
    title: str,
    names: Sequence[str],
    rows: Sequence[dict[str, float]],
    pooled: dict[str, float],
    images: dict[str, bytes],
) -> Path:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in _TABLE_KEYS)

    def cells(row: dict[str, float]) -> str:
        return "".join(f"<td>{fmt.format(row[key])}</td>" for key, _, fmt in _TABLE_KEYS)

    body = "".join(
        f"<tr><td>{html.escape(name)}</td>{cells(row)}</tr>"
        for name, row in zip(names, rows, strict=True)
    )
    imgs = "".join(
        f'<figure><img alt="{key}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"></figure>'
        for key, data in images.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>{len(names)} patient(s). Targets (international consensus, Battelino 2019): TIR &gt; 70 %,
TBR &lt; 4 %, TBR &lt; 54 &lt; 1 %, TAR &lt; 25 %, CV &le; 36 %.</p>
<table><tr><th>patient</th>{head}</tr>{body}
<tr><th>all</th>{cells(pooled)}</tr></table>{imgs}</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["agp_png", "agp_profile", "cvga_png", "traces_png", "write_glucose_report"]
