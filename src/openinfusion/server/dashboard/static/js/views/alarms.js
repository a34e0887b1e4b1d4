// Alarm list: active alarms (or the recent history), worst first, with acknowledge and who
// acknowledged when. Acknowledging on the dashboard records that a clinician has seen the
// alarm; it never silences or clears the pump's own alarm.

import { listOf, request } from "../api.js";
import { dateTime, h, keepingFocus, replace } from "../dom.js";
import { priorityRank, pumpById, pumpLabel, refresh, store } from "../store.js";
import { codeText, notice, priorityBadge } from "./common.js";

const view = { showAll: false, history: null, error: null, pending: new Set(), failures: new Map() };

function ackCell(alarm, rerender) {
  if (alarm.acknowledged_at) {
    return h("span", { class: "ack-note" }, `${alarm.acknowledged_by || "?"} at ${dateTime(alarm.acknowledged_at)}`);
  }
  if (alarm.cleared_at) return h("span", { class: "muted" }, "—");
  const button = h(
    "button",
    { type: "button", class: "ack", disabled: view.pending.has(alarm.id), dataset: { alarmId: String(alarm.id) } },
    view.pending.has(alarm.id) ? "Acknowledging…" : "Acknowledge",
  );
  button.addEventListener("click", async () => {
    view.pending.add(alarm.id);
    view.failures.delete(alarm.id);
    rerender();
    try {
      await request(`/api/alarms/${encodeURIComponent(alarm.id)}/ack`, { method: "POST" });
    } catch (err) {
      view.failures.set(alarm.id, err.message);
    }
    view.pending.delete(alarm.id);
    await refresh();
    if (view.showAll) await loadHistory();
    rerender();
  });
  const failure = view.failures.get(alarm.id);
  return h("span", {}, button, failure ? h("span", { class: "error-text", role: "alert" }, ` ${failure}`) : null);
}

function row(alarm, rerender) {
  const p = String(alarm.priority || "").toLowerCase();
  const pump = pumpById(alarm.pump_id);
  return h(
    "tr",
    { class: [`prio-${p}`, alarm.cleared_at && "cleared", alarm.acknowledged_at && "acked"], dataset: { alarmId: String(alarm.id) } },
    h("td", { "data-label": "Priority" }, priorityBadge(p)),
    h("td", { "data-label": "Pump" }, h("a", { href: `#/pump/${encodeURIComponent(alarm.pump_id)}` }, pump ? pumpLabel(pump) : alarm.pump_id)),
    h("td", { "data-label": "Channel" }, alarm.channel ?? "—"),
    h("td", { class: "alarm-what", "data-label": "Alarm" }, h("div", {}, h("strong", {}, codeText(alarm.code)), alarm.message ? h("div", { class: "muted" }, alarm.message) : null)),
    h("td", { "data-label": "Raised" }, dateTime(alarm.raised_at)),
    h("td", { "data-label": "Cleared" }, alarm.cleared_at ? dateTime(alarm.cleared_at) : h("span", { class: "active-tag" }, "active")),
    h("td", { class: "ack-cell", "data-label": "Acknowledged" }, ackCell(alarm, rerender)),
  );
}

async function loadHistory() {
  try {
    view.history = listOf(await request("/api/alarms?limit=200"), "alarms");
    view.error = null;
  } catch (err) {
    view.error = err;
  }
}

export function renderAlarms(root) {
  keepingFocus(root, () => drawAlarms(root));
}

function drawAlarms(root) {
  const rerender = () => renderAlarms(root);
  const source = view.showAll ? view.history || [] : store.alarms;
  const alarms = [...source].sort(
    (a, b) =>
      Boolean(a.cleared_at) - Boolean(b.cleared_at) ||
      Boolean(a.acknowledged_at) - Boolean(b.acknowledged_at) ||
      priorityRank(b.priority) - priorityRank(a.priority) ||
      String(b.raised_at).localeCompare(String(a.raised_at)),
  );
  const toggle = h("button", { type: "button", class: "secondary", id: "alarm-scope" }, view.showAll ? "Show active only" : "Show recent history");
  toggle.addEventListener("click", async () => {
    view.showAll = !view.showAll;
    if (view.showAll) await loadHistory();
    rerender();
  });
  replace(
    root,
    h("h1", {}, view.showAll ? "Alarms — recent" : "Active alarms"),
    h("div", { class: "toolbar" }, toggle),
    view.error ? notice("error", `Could not load alarms: ${view.error.message}`) : null,
    store.error ? notice("error", `Could not load alarms: ${store.error.message}`) : null,
    alarms.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "alarms" },
            h(
              "thead",
              {},
              h("tr", {}, ["Priority", "Pump", "Ch", "Alarm", "Raised", "Cleared", "Acknowledged"].map((t) => h("th", {}, t))),
            ),
            h("tbody", {}, alarms.map((a) => row(a, rerender))),
          ),
        )
      : notice("info", view.showAll ? "No alarm recorded." : "No active alarm."),
  );
}

/** Called when the stream reports a change while the page is open. */
export async function refreshAlarms(root) {
  if (view.showAll) await loadHistory();
  renderAlarms(root);
}
