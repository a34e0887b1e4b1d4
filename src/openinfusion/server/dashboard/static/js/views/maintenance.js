// Maintenance queue (biomedical engineers, administrators): pumps ranked by risk of failure
// within the horizon, each with the reasons in words and the time since service, from
// /api/analytics/maintenance; "Serviced" records a preventive maintenance
// (POST /api/analytics/maintenance/service). Definitions in docs/analytics.md.

import { optional, request } from "../api.js";
import { h, replace } from "../dom.js";
import { kindText, notAvailable, notice } from "./common.js";

const HORIZONS = ["7", "14", "30"];
const view = { horizon: "14", data: null, reason: null, error: null, done: null };

async function load() {
  const got = await optional(`/api/analytics/maintenance?horizon_days=${encodeURIComponent(view.horizon)}`);
  view.data = got.available ? got.data : null;
  view.reason = got.available ? null : got.reason;
}

/** Risk as a percentage with one decimal. */
export function riskText(risk) {
  return Number.isFinite(risk) ? `${(100 * risk).toFixed(1)} %` : "—";
}

function daysText(days) {
  if (!Number.isFinite(days)) return "—";
  return days < 2 ? `${(days * 24).toFixed(0)} h` : `${days.toFixed(0)} d`;
}

async function serviced(root, pump) {
  try {
    await request("/api/analytics/maintenance/service", {
      method: "POST",
      json: { pump_id: pump.pump_id, kind: "preventive" },
    });
    view.done = `Preventive maintenance recorded for ${pump.serial || pump.pump_id}.`;
    await refreshMaintenance(root);
  } catch (err) {
    view.error = err;
    draw(root);
  }
}

function row(root, pump, index) {
  const button = h("button", { type: "button", class: "secondary serviced" }, "Serviced");
  button.addEventListener("click", () => serviced(root, pump));
  return h(
    "tr",
    { dataset: { pumpId: pump.pump_id } },
    h("td", {}, String(index + 1)),
    h("td", {}, h("a", { href: `#/pump/${encodeURIComponent(pump.pump_id)}` }, pump.serial || pump.pump_id)),
    h("td", {}, kindText(pump.kind)),
    h("td", {}, pump.unit || "—"),
    h(
      "td",
      { class: "risk" },
      h("meter", { min: "0", max: "1", low: "0.2", high: "0.5", optimum: "0", value: String(pump.risk) }),
      " ",
      riskText(pump.risk),
    ),
    h("td", { class: "since-service" }, daysText(pump.days_since_service)),
    h("td", { class: "reasons" }, h("ul", {}, pump.reasons.map((r) => h("li", {}, r)))),
    h("td", {}, button),
  );
}

function draw(root) {
  const form = h(
    "form",
    { class: "diff-form", method: "post", action: "#" },
    h(
      "label",
      {},
      "Failure within ",
      h("select", { name: "horizon" }, HORIZONS.map((d) => h("option", { value: d, selected: d === view.horizon }, `${d} days`))),
    ),
    h("button", { type: "submit" }, "Rank"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    view.horizon = form.elements.horizon.value;
    view.done = null;
    await refreshMaintenance(root);
  });
  const data = view.data;
  const pumps = data ? data.pumps : [];
  replace(
    root,
    h("h1", {}, "Maintenance queue"),
    view.reason ? notAvailable("Maintenance queue", view.reason) : form,
    view.done ? notice("ok", view.done) : null,
    view.error ? notice("error", `Could not load the maintenance queue: ${view.error.message}`) : null,
    data === null
      ? view.reason
        ? null
        : notice("info", "Ranking the fleet…")
      : pumps.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "maintenance" },
              h(
                "thead",
                {},
                h("tr", {}, ["#", "Pump", "Kind", "Unit", "Risk", "Since service", "Why", ""].map((t) => h("th", {}, t))),
              ),
              h("tbody", {}, pumps.map((p, i) => row(root, p, i))),
            ),
          )
        : notice("info", "No pump in service reports telemetry yet."),
    data
      ? h(
          "p",
          { class: "muted", id: "maintenance-model" },
          `Risk of failure within ${data.horizon_days} days from ${data.telemetry_days} days of telemetry; ` +
            `${data.model.method}, trained on a simulated fleet of ${data.model.trained_on.pumps} pumps.`,
        )
      : null,
  );
}

export async function refreshMaintenance(root) {
  try {
    await load();
    view.error = null;
  } catch (err) {
    view.error = err;
  }
  draw(root);
}

export function renderMaintenance(root, { reload = true } = {}) {
  if (reload || view.data === null) {
    view.done = null;
    draw(root);
    return refreshMaintenance(root);
  }
  draw(root);
  return Promise.resolve();
}
