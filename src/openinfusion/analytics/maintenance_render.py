"""The maintenance report as an HTML page or a PNG chart (matplotlib Agg via ``render``)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from openinfusion.analytics.render import Section, figure_png, html_page, new_figure

TOP_CHART = 15


def queue_figure(report: dict[str, Any]) -> Figure:
    """Horizontal bars: the highest risks of the queue (percent within the horizon)."""
    pumps = report["pumps"][:TOP_CHART]
    fig = new_figure(8.0, max(2.4, 0.35 * len(pumps) + 1.0))
    ax = fig.add_subplot()
    labels = [p.get("serial") or p["pump_id"] for p in pumps][::-1]
    risks = [100.0 * p["risk"] for p in pumps][::-1]
    ax.barh(labels, risks, color="#b35c00")
    ax.set_xlabel(f"risk of failure within {report['horizon_days']} days (%)")
    ax.set_title("Maintenance queue: highest risks")
    ax.set_xlim(0, max([*risks, 1.0]) * 1.15)
    return fig


def evaluation_figure(report: dict[str, Any]) -> Figure:
    """Model vs threshold rule: PR-AUC, precision and recall side by side."""
    ev = report["evaluation"]
    names = ["PR-AUC", "precision", "recall"]
    keys = ["pr_auc", "precision", "recall"]
    fig = new_figure(7.0, 3.4)
    ax = fig.add_subplot()
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [ev["model"][k] for k in keys], 0.4, label="risk model")
    ax.bar([x + 0.2 for x in xs], [ev["rule"][k] for k in keys], 0.4, label="threshold rule")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    ax.set_title(f"Held-out fleets (seeds {', '.join(map(str, ev['seeds']))})")
    ax.legend()
    return fig


def report_png(report: dict[str, Any]) -> bytes:
    """The report's chart as PNG."""
    if "evaluation" in report:
        return figure_png(evaluation_figure(report))
    return figure_png(queue_figure(report))


def report_html(report: dict[str, Any]) -> str:
    """A self-contained page: the chart and the tables."""
    sections: list[Section] = []
    if "evaluation" in report:
        ev = report["evaluation"]
        section = Section("Risk model vs threshold rule on held-out simulated fleets")
        section.image(figure_png(evaluation_figure(report)), "model vs rule")
        cols = ["method", "PR-AUC", "precision", "recall", "median lead (days)", "alerts"]
        rows = [
            [name, s["pr_auc"], s["precision"], s["recall"], s["median_lead_days"], s["alerts"]]
            for name, s in (("risk model", ev["model"]), ("threshold rule", ev["rule"]))
        ]
        section.table(cols, rows)
        section.paragraph(
            f"{ev['pumps']} pumps × {ev['days']} days per fleet, {ev['model']['failures']} "
            f"failures judged; alert budget {ev['alerts_per_day']} pumps per day for both "
            f"methods; horizon {ev['horizon_d']} days.",
            note=True,
        )
        sections.append(section)
    else:
        queue = Section("Maintenance queue")
        if report["pumps"]:
            queue.image(figure_png(queue_figure(report)), "highest risks")
        queue.table(
            ["#", "pump", "kind", "unit", "risk %", "days since service", "reasons"],
            [
                [
                    i + 1,
                    p.get("serial") or p["pump_id"],
                    p["kind"],
                    p.get("unit"),
                    round(100.0 * p["risk"], 1),
                    round(p["days_since_service"], 1),
                    "; ".join(p["reasons"]),
                ]
                for i, p in enumerate(report["pumps"])
            ],
        )
        sections.append(queue)
    meta = {
        "horizon (days)": report.get("horizon_days"),
        "source": report.get("source"),
        "generated": report.get("generated_at"),
    }
    return html_page("Predictive maintenance", sections, meta)
