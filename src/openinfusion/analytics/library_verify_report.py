"""The library verification report as HTML (tables and its chart) or PNG (the chart).

The main chart: one bar per simulated limit of every judged entry, split into the share of
the virtual population below, within and above the therapeutic window; flagged limits are
marked. Rendering uses the shared helpers of :mod:`openinfusion.analytics.render`.
"""

from __future__ import annotations

from openinfusion.analytics.library_verify import (
    HARD,
    NOT_VERIFIABLE,
    SOFT,
    VERDICTS,
    EntryResult,
    LibraryVerification,
)
from openinfusion.analytics.render import Section, figure_png, html_page, new_figure

_COLOURS = {
    "below window": "#9ecae1",
    "within window": "#74c476",
    "above window": "#fc9272",
    "over the limit's ceiling": "#a50f15",
}
_MAX_ROWS = 80


def _judged(report: LibraryVerification) -> list[EntryResult]:
    return [e for e in report.entries if e.window is not None and e.limits]


def _entry_name(e: EntryResult) -> str:
    therapy = f" ({e.therapy})" if e.therapy else ""
    return f"{e.care_area} · {e.drug}{therapy}"


def chart_png(report: LibraryVerification) -> bytes:
    """Stacked bars: share of patients below / within / above the window at each limit."""
    rows = [(e, x) for e in _judged(report) for x in e.limits][:_MAX_ROWS]
    fig = new_figure(9.0, max(2.4, 0.28 * len(rows) + 1.4))
    ax = fig.add_subplot()
    if not rows:
        ax.text(0.5, 0.5, "no entry could be judged (see the table)", ha="center", va="center")
        ax.set_axis_off()
        return figure_png(fig)
    labels = []
    for i, (e, x) in enumerate(rows):
        y = len(rows) - 1 - i
        left = 0.0
        over = min(x.share_over_ceiling, x.share_above)
        for key, share in (
            ("below window", x.share_below),
            ("within window", x.share_within),
            ("above window", x.share_above - over),
            ("over the limit's ceiling", over),
        ):
            ax.barh(y, 100.0 * share, left=left, color=_COLOURS[key], height=0.8)
            left += 100.0 * share
        if x.flagged:
            ax.text(101.0, y, "flagged", va="center", fontsize=7, color="#a50f15")
        labels.append(f"{_entry_name(e)} · {x.bound} {x.value:g} {x.dose_unit}")
    ax.set_yticks(range(len(rows))[::-1], labels, fontsize=7)
    ax.set_xlim(0, 115)
    ax.set_xlabel("virtual patients (%)")
    handles = [ax.bar(0, 0, color=c, label=k) for k, c in _COLOURS.items()]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.6 / fig.get_figheight()),
        ncol=4,
        fontsize=7,
        frameon=False,
    )
    ax.set_title(f"{report.library} {report.version}: exposure at each dose limit", fontsize=10)
    return figure_png(fig)


def _pct(share: float, judged: bool = True) -> str | None:
    return f"{100 * share:.0f} %" if judged else None


def report_html(report: LibraryVerification) -> str:
    """A self-contained page: summary, chart, judged limits and unverifiable entries."""
    summary = Section("Summary").table(
        ["verdict", "entries"], [(v, report.summary[v]) for v in VERDICTS]
    )
    summary.paragraph(str(report.policy.as_dict()["rule"]), note=True)
    chart = Section("Exposure at each limit").image(
        chart_png(report), "share of virtual patients below, within and above the window"
    )
    entries = Section("Entries judged").table(
        ["entry", "verdict", "reason", "model", "window", "patients"],
        [
            (
                _entry_name(e),
                e.verdict,
                e.reason,
                e.model,
                f"{e.window['indication']}: {e.window['low']:.3g}-{e.window['high']:.3g} "
                f"{e.window['unit']}"
                if e.window
                else None,
                e.population.get("n") if e.population else None,
            )
            for e in report.entries
            if e.verdict != NOT_VERIFIABLE
        ],
    )
    limits = Section("Limits simulated").table(
        [
            "entry",
            "limit",
            "dose",
            "p5",
            "p50",
            "p95",
            "unit",
            "below",
            "within",
            "above",
            "over ceiling",
            "to window (min)",
            "above from (min)",
            "flagged",
        ],
        [
            (
                _entry_name(e),
                x.bound,
                f"{x.value:g} {x.dose_unit}",
                x.percentiles["p5"],
                x.percentiles["p50"],
                x.percentiles["p95"],
                x.metric_unit,
                _pct(x.share_below, x.judged),
                _pct(x.share_within, x.judged),
                _pct(x.share_above, x.judged),
                _pct(x.share_over_ceiling, x.judged),
                x.time_to_window_min,
                x.time_above_window_min,
                x.flagged if x.judged else None,
            )
            for e in report.entries
            for x in e.limits
        ],
    )
    limits.paragraph(
        "Percentiles are of the judged exposure: effect-site or plasma peak over the horizon, "
        "AUC of the last 24 h (vancomycin), mean blood glucose (insulin). Times are medians "
        "over the patients who reach the window's bottom or exceed its top.",
        note=True,
    )
    unverifiable = Section("Not verifiable").table(
        ["entry", "reason"],
        [(_entry_name(e), e.reason) for e in report.entries if e.verdict == NOT_VERIFIABLE],
    )
    flagged = report.summary[HARD] + report.summary[SOFT]
    return html_page(
        f"Library verification: {report.library} {report.version}",
        [summary, chart, entries, limits, unverifiable],
        {
            "library": report.library,
            "version": report.version,
            "care area": report.care_area or "all",
            "patients per population": report.patients,
            "seed": report.seed,
            "entries flagged": flagged,
        },
    )


__all__ = ["chart_png", "report_html"]
