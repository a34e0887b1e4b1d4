// Remote monitoring of home patients: insulin pumps (CGM trace, time in ranges and an
// AGP-style percentile band by time of day) and ambulatory chemotherapy pumps (progress of
// the 46-hour infusion).
//
// The 5-FU infusion of FOLFOX/FOLFIRI regimens runs 46 h from a take-home pump.
//
// AGP: the ambulatory glucose profile shows the 5th/25th/50th/75th/95th percentiles of CGM
// glucose by time of day over the days of record, with the 70-180 mg/dL target range, and
// the time-in-ranges bands 54/70/180/250 mg/dL of the International Consensus on Time in
// Range (Battelino et al., Diabetes Care 2019;42:1593-1603).

import { chart } from "../chart.js";
import { ago, dateTime, duration, h, num, parseTime, replace } from "../dom.js";
import { channelsOf, pumpLabel, store } from "../store.js";
import { notAvailable, notice, onlineText, stateText } from "./common.js";
import { recentMessages } from "./pump.js";

export const HOME_KINDS = new Set(["insulin_patch", "ambulatory", "implant"]);
const KIND_TITLE = {
  insulin_patch: "insulin pump",
  ambulatory: "ambulatory chemotherapy",
  implant: "implanted intrathecal pump",
};
const BIN_MIN = 60;

const view = { messages: new Map(), available: true, reason: null, loading: false, pending: false, root: null };

/** The patient readings a pump reports in its status (``body.patient``), or {}. */
export function patientOf(body) {
  const patient = body && body.patient;
  return patient && typeof patient === "object" ? patient : {};
}

/** A CGM reading (mg/dL) from a status body, or null. */
export function cgmOf(body) {
  const value = patientOf(body).cgm_mg_dl;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** The latest patient readings among the messages (newest status with any). */
function latestPatient(messages) {
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    if (messages[i].type === "status" && Object.keys(patientOf(messages[i].body)).length) {
      return patientOf(messages[i].body);
    }
  }
  return {};
}

export function cgmTrace(messages) {
  const points = [];
  for (const m of messages) {
    if (m.type !== "status") continue;
    const value = cgmOf(m.body);
    const t = parseTime(m.sent_at) ?? parseTime(m.received_at);
    if (value !== null && t !== null) points.push([t, value]);
  }
  return points.sort((a, b) => a[0] - b[0]);
}

/** Linear-interpolated percentile (0-100) of a sorted list. */
export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** Percentiles by time-of-day bin: [{minute, p5, p25, p50, p75, p95, n}] (minute = bin middle). */
export function agp(points, binMin = BIN_MIN) {
  const bins = new Map();
  for (const [t, v] of points) {
    const d = new Date(t);
    const minute = d.getHours() * 60 + d.getMinutes();
    const bin = Math.floor(minute / binMin);
    if (!bins.has(bin)) bins.set(bin, []);
    bins.get(bin).push(v);
  }
  return [...bins.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([bin, values]) => {
      values.sort((a, b) => a - b);
      const q = (p) => percentile(values, p);
      return { minute: bin * binMin + binMin / 2, p5: q(5), p25: q(25), p50: q(50), p75: q(75), p95: q(95), n: values.length };
    });
}

/** Share of readings in the consensus ranges (per cent). */
export function timeInRanges(points) {
  const n = points.length;
  const share = (test) => (n ? (100 * points.filter(([, v]) => test(v)).length) / n : NaN);
  return {
    veryLow: share((v) => v < 54),
    low: share((v) => v >= 54 && v < 70),
    inRange: share((v) => v >= 70 && v <= 180),
    high: share((v) => v > 180 && v <= 250),
    veryHigh: share((v) => v > 250),
  };
}

function spanDays(trace) {
  return Math.round(((trace[trace.length - 1][0] - trace[0][0]) / 86400000) * 10) / 10;
}

/** A number, or null when the pump did not report it (null must not count as 0). */
function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function hourLabel(minute) {
  return `${String(Math.floor(minute / 60) % 24).padStart(2, "0")}:00`;
}

function insulinPanel(pump, messages) {
  const trace = cgmTrace(messages);
  const profile = agp(trace);
  const lastDay = trace.length ? trace.filter(([t]) => t >= trace[trace.length - 1][0] - 86400000) : [];
  const tir = timeInRanges(trace);
  const last = trace[trace.length - 1];
  const ch = channelsOf(pump)[0] || {};
  const latest = latestPatient(messages);
  const pick = (key) => profile.map((b) => [b.minute, b[key]]);
  return [
    h(
      "dl",
      { class: "values" },
      h("div", {}, h("dt", {}, "Glucose"), h("dd", { class: "cgm-now" }, last ? `${Math.round(last[1])} mg/dL` : "—")),
      h("div", {}, h("dt", {}, "Reading"), h("dd", {}, last ? ago(new Date(last[0]).toISOString()) : "—")),
      h("div", {}, h("dt", {}, "Basal rate"), h("dd", {}, num(ch.dose ?? null, ch.dose_unit || "") )),
      h("div", {}, h("dt", {}, "Time in range"), h("dd", { class: "tir" }, Number.isFinite(tir.inRange) ? `${Math.round(tir.inRange)} %` : "—")),
      h("div", {}, h("dt", {}, "Insulin on board"), h("dd", {}, num(latest.iob_u ?? null, "U"))),
      h("div", {}, h("dt", {}, "Loop"), h("dd", {}, latest.loop ? String(latest.loop) : "—")),
    ),
    trace.length
      ? h(
          "p",
          { class: "tir-line" },
          `Below 54: ${Math.round(tir.veryLow)} % · 54–69: ${Math.round(tir.low)} % · 70–180: ${Math.round(tir.inRange)} % · 181–250: ${Math.round(tir.high)} % · above 250: ${Math.round(tir.veryHigh)} %`,
        )
      : null,
    h("div", { class: "charts" }, chart({
      title: "CGM glucose, last 24 h",
      unit: "mg/dL",
      series: [{ label: "CGM", cls: "s-cgm", points: lastDay }],
      target: [70, 180],
      yMin: 40,
    }),
    chart({
      title: "Glucose profile by time of day (AGP)",
      unit: "mg/dL",
      series: [{ label: "median", cls: "s-median", points: pick("p50") }],
      bands: [
        { cls: "b-outer", lower: pick("p5"), upper: pick("p95") },
        { cls: "b-inner", lower: pick("p25"), upper: pick("p75") },
      ],
      target: [70, 180],
      yMin: 40,
      xDomain: [0, 1440],
      xTicks: [0, 240, 480, 720, 960, 1200, 1440],
      xLabel: hourLabel,
    })),
    h(
      "p",
      { class: "muted agp-note" },
      "Band: 5th–95th and 25th–75th percentiles by hour of day; line: median; shaded: 70–180 mg/dL. ",
      trace.length ? `From ${num(spanDays(trace))} days of readings (an AGP needs 14 days).` : "",
    ),
  ];
}

function chemoPanel(pump) {
  return channelsOf(pump).map((ch) => {
    const infused = finite(ch.volume_infused_ml);
    const left = finite(ch.vtbi_remaining_ml);
    const total = infused !== null && left !== null ? infused + left : null;
    const pct = total !== null && total > 0 ? (100 * infused) / total : null;
    const remainingMin = finite(ch.time_remaining_min);
    // At a constant rate the pump's own figures give the elapsed and total time: volume
    // infused / rate, plus the time remaining (46 h for the 5-FU cassette).
    const rate = finite(ch.rate_ml_h);
    const elapsedH = rate !== null && rate > 0 && infused !== null ? infused / rate : null;
    const totalH = elapsedH !== null && remainingMin !== null ? elapsedH + remainingMin / 60 : null;
    const end = remainingMin !== null ? new Date(Date.now() + remainingMin * 60000).toISOString() : null;
    const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": pct === null ? null : String(Math.round(pct)) });
    bar.append(h("div", { class: "progress-fill" }));
    if (pct !== null) bar.firstChild.style.width = `${Math.min(100, Math.max(0, pct)).toFixed(1)}%`;
    return h(
      "div",
      { class: "chemo" },
      h("div", { class: "channel-head" }, h("span", { class: "drug" }, ch.drug || "no drug"), h("span", { class: "state" }, stateText(ch.state))),
      pct === null ? h("p", { class: "muted" }, "Progress unknown: the pump reports no volume remaining.") : bar,
      h(
        "dl",
        { class: "values" },
        h("div", {}, h("dt", {}, "Infused"), h("dd", {}, pct === null ? num(infused, "mL") : `${num(infused, "mL")} of ${num(total, "mL")} (${Math.round(pct)} %)`)),
        h("div", {}, h("dt", {}, "Elapsed"), h("dd", {}, elapsedH === null ? "—" : `${num(Math.round(elapsedH * 10) / 10)} h${totalH === null ? "" : ` of ${num(Math.round(totalH * 10) / 10)} h`}`)),
        h("div", {}, h("dt", {}, "Time remaining"), h("dd", {}, duration(ch.time_remaining_min))),
        h("div", {}, h("dt", {}, "Expected end"), h("dd", {}, end ? dateTime(end) : "—")),
      ),
    );
  });
}

function implantPanel(pump, messages) {
  const latest = latestPatient(messages);
  const ch = channelsOf(pump)[0] || {};
  return h(
    "dl",
    { class: "values" },
    h("div", {}, h("dt", {}, "Drug"), h("dd", {}, latest.drug || ch.drug || "—")),
    h("div", {}, h("dt", {}, "Reservoir"), h("dd", { class: "reservoir" }, num(latest.reservoir_ml ?? null, "mL"))),
    h("div", {}, h("dt", {}, "Last 24 h"), h("dd", {}, num(latest.last_24h_mcg ?? null, "mcg"))),
    h("div", {}, h("dt", {}, "Patient presses"), h("dd", {}, num(latest.ptm_presses ?? null))),
  );
}

async function loadAll(pumps) {
  view.loading = true;
  for (const pump of pumps) {
    if (pump.kind === "ambulatory") continue;
    const held = view.messages.get(pump.id) || null;
    const got = await recentMessages(pump, held).catch(() => ({ available: true, reason: null, messages: held || [] }));
    view.available = got.available;
    view.reason = got.reason;
    if (got.available) view.messages.set(pump.id, got.messages);
  }
  view.loading = false;
}

export async function renderRemote(root, { fresh = true } = {}) {
  view.root = root;
  draw(root, store.pumps.filter((p) => HOME_KINDS.has(p.kind)));
  if (!fresh) return;
  if (view.loading) {
    view.pending = true; // load again once the current load ends, never drop a change
    return;
  }
  do {
    view.pending = false;
    await loadAll(store.pumps.filter((p) => HOME_KINDS.has(p.kind)));
    draw(view.root, store.pumps.filter((p) => HOME_KINDS.has(p.kind)));
  } while (view.pending);
}

function draw(root, pumps) {
  replace(
    root,
    h("h1", {}, "Home patients"),
    pumps.length ? null : notice("info", "No insulin, ambulatory or implanted pump is connected."),
    pumps.map((pump) =>
      h(
        "section",
        { class: ["remote-card", !pump.online && "offline"], dataset: { pumpId: pump.id } },
        h(
          "h2",
          {},
          h("a", { href: `#/pump/${encodeURIComponent(pump.id)}` }, pumpLabel(pump)),
          " ",
          h("span", { class: "pump-kind" }, KIND_TITLE[pump.kind] || pump.kind),
        ),
        h("p", { class: ["link-state", pump.online ? "is-online" : "is-offline"] }, onlineText(pump)),
        pump.kind === "ambulatory"
          ? chemoPanel(pump)
          : !view.available
            ? notAvailable("Patient readings (pump messages)", view.reason)
            : pump.kind === "insulin_patch"
              ? insulinPanel(pump, view.messages.get(pump.id) || [])
              : implantPanel(pump, view.messages.get(pump.id) || []),
      ),
    ),
  );
}
