"""Charts (PNG) and HTML pages of the compliance, overrides and alarm-burden reports."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from openinfusion.analytics.render import Section, figure_png, html_page, new_figure

TITLES = {
    "compliance": "DERS compliance",
    "overrides": "DERS alerts, overrides and library refinement",
    "alarms": "Alarm burden",
}
_TOP = 12


def _empty(ax: Any, text: str = "no data in this window") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _compliance_figure(report: dict[str, Any]) -> Figure:
    fig = new_figure(10, 3.8)
    left, right = fig.subplots(1, 2, width_ratios=(3, 2))
    times = [r for r in report["by_time"] if r["rate"] is not None]
    if times:
        left.plot([r["start"] for r in times], [100 * r["rate"] for r in times], marker="o", lw=1.5)
        left.set_ylim(0, 105)
        left.set_ylabel("library use (%)")
        left.set_title(f"Compliance by {report['filters']['bucket']}")
        left.tick_params(axis="x", labelrotation=45, labelsize=7)
    else:
        _empty(left)
    units = [r for r in report["by_unit"] if r["rate"] is not None][:_TOP]
    if units:
        right.barh([r["unit"] for r in units], [100 * r["rate"] for r in units], color="#2f7d4f")
        right.set_xlim(0, 100)
        right.set_xlabel("library use (%)")
        right.set_title("By care unit")
        right.invert_yaxis()
    else:
        _empty(right)
    return fig


def _overrides_figure(report: dict[str, Any]) -> Figure:
    fig = new_figure(10, 4.2)
    ax = fig.add_subplot()
    rows = [r for r in report["by_drug"] if r["soft_alerts"] + r["hard_blocks"] > 0][:_TOP]
    if not rows:
        _empty(ax, "no DERS alerts in this window")
        return fig
    labels = [f"{r['drug']} ({r['care_area']})" for r in rows]
    over = [r["overridden"] for r in rows]
    cancel = [r["cancelled"] for r in rows]
    block = [r["hard_blocks"] for r in rows]
    ax.barh(labels, over, color="#c77c02", label="soft, overridden")
    ax.barh(labels, cancel, left=over, color="#7a9cc6", label="soft, cancelled")
    ax.barh(
        labels,
        block,
        left=[a + b for a, b in zip(over, cancel, strict=True)],
        color="#b3261e",
        label="hard block",
    )
    ax.invert_yaxis()
    ax.set_xlabel("alerts")
    ax.set_title("DERS alerts by drug and care area")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _alarms_figure(report: dict[str, Any]) -> Figure:
    fig = new_figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    codes = [r for r in report["by_code"] if r["per_1000_infusion_hours"] is not None][:_TOP]
    if codes:
        left.barh(
            [f"{r['code']} ({r['priority']})" for r in codes],
            [r["per_1000_infusion_hours"] for r in codes],
            color="#b3261e",
        )
        left.invert_yaxis()
        left.set_xlabel("alarms per 1,000 infusion-hours")
        left.set_title("By alarm")
        left.tick_params(axis="y", labelsize=7)
    else:
        _empty(left)
    units = [r for r in report["by_unit"] if r["per_1000_infusion_hours"] is not None][:_TOP]
    if units:
        right.barh([r["unit"] for r in units], [r["per_1000_infusion_hours"] for r in units])
        right.invert_yaxis()
        right.set_xlabel("alarms per 1,000 infusion-hours")
        right.set_title("By care unit")
    else:
        _empty(right)
    return fig


_FIGURES = {
    "compliance": _compliance_figure,
    "overrides": _overrides_figure,
    "alarms": _alarms_figure,
}


def report_png(report: dict[str, Any]) -> bytes:
    """The report's chart as PNG."""
    return figure_png(_FIGURES[report["report"]](report))


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 1)


def _compliance_sections(report: dict[str, Any]) -> list[Section]:
    cols = ["programs", "library", "basic", "unknown", "rate %"]

    def row(r: dict[str, Any]) -> list[object]:
        return [r["programs"], r["library"], r["basic"], r["unknown"], _pct(r["rate"])]

    return [
        Section("Total").table(cols, [row(report["total"])]),
        Section("By care area").table(
            ["care area", *cols], [[r["care_area"], *row(r)] for r in report["by_care_area"]]
        ),
        Section("By care unit").table(
            ["unit", *cols], [[r["unit"], *row(r)] for r in report["by_unit"]]
        ),
        Section(f"By {report['filters']['bucket']}").table(
            ["from", *cols], [[r["start"], *row(r)] for r in report["by_time"]]
        ),
    ]


def _tally_cols() -> list[str]:
    return [
        "programs",
        "soft alerts",
        "overridden",
        "cancelled",
        "hard blocks",
        "reprogrammed",
        "override rate %",
        "alerts /100 programs",
    ]


def _tally(r: dict[str, Any]) -> list[object]:
    return [
        r["programs"],
        r["soft_alerts"],
        r["overridden"],
        r["cancelled"],
        r["hard_blocks"],
        r["reprogrammed"],
        _pct(r["override_rate"]),
        r["alerts_per_100_programs"],
    ]


def _overrides_sections(report: dict[str, Any]) -> list[Section]:
    refinement = Section("Library refinement candidates")
    refinement.paragraph(
        "Soft limits most overridden. A suggestion is the 90th (soft maximum) or 10th (soft "
        "minimum) percentile of the overridden values, only with enough overrides and never "
        "at or beyond the hard limit; for committee review, never applied by itself.",
        note=True,
    )
    refinement.table(
        [
            "care area",
            "drug",
            "limit",
            "unit",
            "overrides",
            "median",
            "p90",
            "soft",
            "hard",
            "suggested",
            "why",
        ],
        [
            [
                c["care_area"],
                c["drug"],
                f"{c['parameter']} {c['bound']}",
                c["unit"],
                c["overrides"],
                c["evidence"]["median"],
                c["evidence"]["p90"],
                c["soft_limit"],
                c["hard_limit"],
                c["suggestion"]["suggested"],
                c["suggestion"]["reason"],
            ]
            for c in report["refinement"]
        ],
    )
    reasons = Section("Override reasons").table(
        ["reason", "count"], [[r["reason"], r["count"]] for r in report["total"]["reasons"]]
    )
    return [
        Section("Total").table(_tally_cols(), [_tally(report["total"])]),
        Section("By drug and care area").table(
            ["care area", "drug", *_tally_cols()],
            [[r["care_area"], r["drug"], *_tally(r)] for r in report["by_drug"]],
        ),
        Section("By care unit").table(
            ["unit", *_tally_cols()], [[r["unit"], *_tally(r)] for r in report["by_unit"]]
        ),
        reasons,
        refinement,
    ]


def _alarm_sections(report: dict[str, Any]) -> list[Section]:
    t = report["total"]
    ack = t["time_to_acknowledge"]
    summary = Section("Total").table(
        [
            "alarms",
            "infusion-hours",
            "per 1,000 h",
            "per bed-day",
            "high priority %",
            "nuisance %",
            "repeated %",
            "ack median s",
            "ack p90 s",
        ],
        [
            [
                t["alarms"],
                round(report["infusion_hours"], 1),
                t["per_1000_infusion_hours"],
                t["per_bed_day"],
                _pct(t["high_priority_share"]),
                _pct(t["nuisance_share"]),
                _pct(t["repeated_share"]),
                ack["median_s"],
                ack["p90_s"],
            ]
        ],
    )
    return [
        summary,
        Section("By alarm").table(
            ["code", "priority", "alarms", "per 1,000 h", "nuisance", "acknowledged"],
            [
                [
                    r["code"],
                    r["priority"],
                    r["alarms"],
                    r["per_1000_infusion_hours"],
                    r["nuisance"],
                    r["acknowledged"],
                ]
                for r in report["by_code"]
            ],
        ),
        Section("By care unit").table(
            [
                "unit",
                "alarms",
                "infusion-hours",
                "per 1,000 h",
                "per bed-day",
                "high priority %",
                "nuisance",
                "repeated",
                "ack median s",
                "ack p90 s",
            ],
            [
                [
                    r["unit"],
                    r["alarms"],
                    round(r["infusion_hours"], 1),
                    r["per_1000_infusion_hours"],
                    r["per_bed_day"],
                    _pct(r["high_priority_share"]),
                    r["nuisance"],
                    r["repeated"],
                    r["time_to_acknowledge"]["median_s"],
                    r["time_to_acknowledge"]["p90_s"],
                ]
                for r in report["by_unit"]
            ],
        ),
    ]


_SECTIONS = {
    "compliance": _compliance_sections,
    "overrides": _overrides_sections,
    "alarms": _alarm_sections,
}


def report_html(report: dict[str, Any]) -> str:
    """The report as a self-contained HTML page: its chart, then its tables."""
    kind = report["report"]
    chart = Section("Chart").image(report_png(report), TITLES[kind])
    meta: dict[str, object] = {k: v for k, v in report["filters"].items() if v is not None}
    meta["generated at"] = report["generated_at"]
    return html_page(TITLES[kind], [chart, *_SECTIONS[kind](report)], meta)


__all__ = ["TITLES", "report_html", "report_png"]
