// Safety page (pharmacists, biomedical engineers, administrators): DERS compliance, alerts
// and overrides with the library refinement candidates, and the alarm burden of the fleet,
// for a window (UTC days) and a care unit. Figures come from /api/analytics/*; definitions
// in docs/analytics.md.

import { optional } from "../api.js";
import { chart } from "../chart.js";
import { h, replace } from "../dom.js";
import { codeText, notAvailable, notice } from "./common.js";

const view = { since: "", until: "", unit: "", bucket: "day", data: null, reason: null, error: null, loading: false };
const TOP = 15;

function query() {
  const q = new URLSearchParams();
  if (view.since) q.set("since", view.since);
  if (view.until) q.set("until", view.until);
  if (view.unit) q.set("unit", view.unit);
  return q;
}

async function load() {
  const base = query();
  const withBucket = new URLSearchParams(base);
  withBucket.set("bucket", view.bucket);
  const [compliance, overrides, alarms] = await Promise.all([
    optional(`/api/analytics/compliance?${withBucket}`),
    optional(`/api/analytics/overrides?${base}`),
    optional(`/api/analytics/alarms?${base}`),
  ]);
  const missing = [compliance, overrides, alarms].find((r) => !r.available);
  if (missing) {
    view.data = null;
    view.reason = missing.reason;
    return;
  }
  view.data = { compliance: compliance.data, overrides: overrides.data, alarms: alarms.data };
  view.reason = null;
}

/** "87.5 %" (one decimal), or an em dash when there is nothing to divide. */
export function pct(rate) {
  return rate === null || rate === undefined ? "—" : `${(100 * rate).toFixed(1)} %`;
}

/** A number with at most `digits` decimals, or an em dash. */
export function fixed(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return String(Number(value.toFixed(digits)));
}

function rateCell(rate) {
  return h(
    "td",
    { class: "rate" },
    rate === null || rate === undefined ? "—" : h("meter", { min: "0", max: "1", low: "0.9", optimum: "1", value: String(rate) }),
    " ",
    pct(rate),
  );
}

function table(cls, headers, rows, empty = "Nothing in this window.") {
  if (!rows.length) return notice("info", empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: ["analytics", cls] },
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
    ),
  );
}

function figures(items) {
  return h(
    "dl",
    { class: "figures" },
    items.flatMap(([label, value, id]) => [h("dt", {}, label), h("dd", id ? { id } : {}, value)]),
  );
}

function complianceSection(c) {
  const t = c.total;
  const series = c.by_time
    .filter((b) => b.rate !== null)
    .map((b) => [Date.parse(`${b.start}T00:00:00Z`), 100 * b.rate]);
  const countRow = (label, r) =>
    h("tr", { dataset: { key: label } }, h("td", {}, label), h("td", {}, String(r.programs)), h("td", {}, String(r.library)), h("td", {}, String(r.basic)), rateCell(r.rate));
  const heads = ["Programs", "Library", "Basic infusion", "Compliance"];
  return h(
    "section",
    { id: "compliance" },
    h("h2", {}, "DERS compliance"),
    figures([
      ["Compliance", pct(t.rate), "compliance-rate"],
      ["Programs", String(t.programs)],
      ["With the library", String(t.library)],
      ["Basic infusions", String(t.basic)],
      ["Without DERS facts", String(t.unknown)],
    ]),
    series.length > 1 ? chart({ title: `Compliance by ${c.filters.bucket}`, unit: "%", series: [{ label: "compliance", points: series }], yMin: 0, yMax: 100 }) : null,
    h("h3", {}, "By care unit"),
    table("by-unit", ["Unit", ...heads], c.by_unit.map((r) => countRow(r.unit, r))),
    h("h3", {}, "By care area"),
    table("by-area", ["Care area", ...heads], c.by_care_area.map((r) => countRow(r.care_area, r))),
  );
}

function overridesSection(o) {
  const t = o.total;
  const rows = o.by_drug
    .filter((d) => d.soft_alerts + d.hard_blocks > 0)
    .slice(0, TOP)
    .map((d) =>
      h(
        "tr",
        { dataset: { drug: d.drug } },
        h("td", {}, d.drug),
        h("td", {}, d.care_area),
        h("td", {}, String(d.programs)),
        h("td", {}, String(d.overridden)),
        h("td", {}, String(d.cancelled)),
        h("td", {}, String(d.hard_blocks)),
        h("td", {}, String(d.reprogrammed)),
        h("td", {}, pct(d.override_rate)),
      ),
    );
  return h(
    "section",
    { id: "overrides" },
    h("h2", {}, "DERS alerts and overrides"),
    figures([
      ["Soft alerts", String(t.soft_alerts)],
      ["Overridden", String(t.overridden), "override-count"],
      ["Override rate", pct(t.override_rate)],
      ["Hard blocks", String(t.hard_blocks), "hard-block-count"],
      ["Reprogrammed after an alert", String(t.reprogrammed)],
      ["Alerts per 100 programs", fixed(t.alerts_per_100_programs)],
    ]),
    table("by-drug", ["Drug", "Care area", "Programs", "Overridden", "Cancelled", "Hard blocks", "Reprogrammed", "Override rate"], rows, "No DERS alert in this window."),
    h("h3", {}, "Override reasons"),
    t.reasons.length
      ? h("ul", { class: "reasons" }, t.reasons.map((r) => h("li", {}, `${r.reason} (${r.count})`)))
      : notice("info", "No override in this window."),
  );
}

function refinementSection(o) {
  const rows = o.refinement.map((c) =>
    h(
      "tr",
      { dataset: { drug: c.drug, bound: c.bound } },
      h("td", {}, c.drug),
      h("td", {}, c.care_area),
      h("td", {}, `${c.parameter} ${c.bound.replace("_", " ")} (${c.unit})`),
      h("td", {}, String(c.overrides)),
      h("td", {}, fixed(c.evidence.median, 3)),
      h("td", {}, fixed(c.evidence.p90, 3)),
      h("td", {}, fixed(c.soft_limit, 3)),
      h("td", {}, fixed(c.hard_limit, 3)),
      h("td", { class: "suggested" }, fixed(c.suggestion.suggested, 3)),
      h("td", { class: "muted" }, c.suggestion.reason),
    ),
  );
  return h(
    "section",
    { id: "refinement" },
    h("h2", {}, "Library refinement candidates"),
    h(
      "p",
      { class: "muted" },
      `Soft limits most overridden. A suggestion is the 90th (maximum) or 10th (minimum) percentile of the overridden values, given only after ${o.filters.min_overrides} overrides and never at or past the hard limit. For committee review; nothing changes by itself.`,
    ),
    table("candidates", ["Drug", "Care area", "Limit", "Overrides", "Median", "p90", "Soft", "Hard", "Suggested", "Why"], rows, "No soft limit was overridden in this window."),
  );
}

function alarmsSection(a) {
  const t = a.total;
  const ack = t.time_to_acknowledge;
  const unitRows = a.by_unit.map((u) =>
    h(
      "tr",
      { dataset: { unit: u.unit } },
      h("td", {}, u.unit),
      h("td", {}, String(u.alarms)),
      h("td", {}, fixed(u.infusion_hours)),
      h("td", {}, fixed(u.per_1000_infusion_hours)),
      h("td", {}, fixed(u.per_bed_day, 2)),
      h("td", {}, String(u.nuisance)),
      h("td", {}, String(u.repeated)),
      h("td", {}, pct(u.high_priority_share)),
      h("td", {}, fixed(u.time_to_acknowledge.median_s)),
    ),
  );
  const codeRows = a.by_code.slice(0, TOP).map((c) =>
    h("tr", { dataset: { code: c.code } }, h("td", {}, codeText(c.code)), h("td", {}, c.priority), h("td", {}, String(c.alarms)), h("td", {}, fixed(c.per_1000_infusion_hours)), h("td", {}, String(c.nuisance))),
  );
  return h(
    "section",
    { id: "alarm-burden" },
    h("h2", {}, "Alarm burden"),
    figures([
      ["Alarms", String(t.alarms), "alarm-count"],
      ["Per 1,000 infusion-hours", fixed(t.per_1000_infusion_hours), "alarm-rate"],
      ["Per bed-day", fixed(t.per_bed_day, 2)],
      ["Time to acknowledge (median / p90)", `${fixed(ack.median_s)} s / ${fixed(ack.p90_s)} s`],
      [`Nuisance (cleared within ${a.filters.nuisance_s} s)`, pct(t.nuisance_share)],
      ["Repeated on the same channel", pct(t.repeated_share)],
      ["High priority", pct(t.high_priority_share)],
    ]),
    h("h3", {}, "By care unit"),
    table("by-unit", ["Unit", "Alarms", "Infusion-hours", "Per 1,000 h", "Per bed-day", "Nuisance", "Repeated", "High priority", "Ack median (s)"], unitRows),
    h("h3", {}, "By alarm"),
    table("by-code", ["Alarm", "Priority", "Count", "Per 1,000 h", "Nuisance"], codeRows),
  );
}

function form(root) {
  const f = h(
    "form",
    { class: "diff-form", method: "post", action: "#", id: "analytics-filters" },
    h("label", {}, "From ", h("input", { type: "date", name: "since", value: view.since })),
    h("label", {}, "Before ", h("input", { type: "date", name: "until", value: view.until })),
    h("label", {}, "Unit ", h("input", { name: "unit", value: view.unit, placeholder: "all units", size: "12" })),
    h(
      "label",
      {},
      "By ",
      h("select", { name: "bucket" }, ["day", "week"].map((b) => h("option", { value: b, selected: b === view.bucket }, b))),
    ),
    h("button", { type: "submit" }, "Show"),
  );
  f.addEventListener("submit", async (event) => {
    event.preventDefault();
    view.since = f.elements.since.value;
    view.until = f.elements.until.value;
    view.unit = f.elements.unit.value.trim();
    view.bucket = f.elements.bucket.value;
    await refreshAnalytics(root);
  });
  return f;
}

function draw(root) {
  const d = view.data;
  replace(
    root,
    h("h1", {}, "Safety and compliance"),
    view.reason ? notAvailable("Safety analytics", view.reason) : form(root),
    view.error ? notice("error", `Could not load the reports: ${view.error.message}`) : null,
    view.loading && !d ? notice("info", "Loading…") : null,
    d ? complianceSection(d.compliance) : null,
    d ? overridesSection(d.overrides) : null,
    d ? refinementSection(d.overrides) : null,
    d ? alarmsSection(d.alarms) : null,
  );
}

export async function refreshAnalytics(root) {
  view.loading = true;
  draw(root);
  try {
    await load();
    view.error = null;
  } catch (err) {
    view.error = err;
  }
  view.loading = false;
  draw(root);
}

export function renderAnalytics(root, { reload = false } = {}) {
  draw(root);
  if (reload || view.data === null) refreshAnalytics(root);
}
