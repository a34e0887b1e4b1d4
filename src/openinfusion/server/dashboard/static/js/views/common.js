// Pieces shared by several pages: priority badges, channel rows, notices.

import { ago, duration, h, num } from "../dom.js";
import { alarmsFor, highestPriority } from "../store.js";

export const PRIORITY_LABEL = { high: "HIGH", medium: "MEDIUM", low: "LOW" };

export function priorityBadge(priority) {
  const p = String(priority || "").toLowerCase();
  return h("span", { class: ["badge", `prio-${p}`] }, PRIORITY_LABEL[p] || p.toUpperCase() || "?");
}

/** Human text for an alarm code: "occlusion_downstream" -> "Occlusion downstream". */
export function codeText(code) {
  const text = String(code || "alarm")
    .replace(/_/g, " ")
    .replace(/\b(vtbi|kvo|pca|cgm)\b/gi, (w) => w.toUpperCase());
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function notice(kind, ...text) {
  return h("p", { class: ["notice", `notice-${kind}`], role: kind === "error" ? "alert" : "status" }, ...text);
}

/** A clear "this part is missing" line: the server lacks it, or the role may not see it. */
export function notAvailable(what, reason = "missing") {
  const why = reason === "forbidden" ? "your role is not permitted to see it" : "not available on this server";
  return h("p", { class: "notice notice-na", dataset: { reason } }, `${what}: ${why}.`);
}

const KIND_TEXT = {
  syringe: "syringe pump",
  lvp: "large-volume pump",
  pca: "PCA pump",
  ambulatory: "ambulatory pump",
  insulin_patch: "insulin pump",
  implant: "implanted pump",
};

export function kindText(kind) {
  return KIND_TEXT[kind] || String(kind || "").replace(/_/g, " ");
}

export function doseText(ch) {
  if (ch.dose === null || ch.dose === undefined) return "—";
  return num(ch.dose, ch.dose_unit || "");
}

export function stateText(state) {
  return state ? String(state).replace(/_/g, " ") : "—";
}

/** One channel of a pump as a block of labelled values, with its alarms. */
export function channelBlock(pump, ch) {
  const alarms = alarmsFor(pump.id, ch.channel);
  const prio = highestPriority(alarms);
  return h(
    "div",
    { class: ["channel", prio && `alarm-${prio}`], dataset: { channel: String(ch.channel) } },
    h(
      "div",
      { class: "channel-head" },
      h("span", { class: "channel-no" }, `Ch ${ch.channel}`),
      h("span", { class: "drug" }, ch.drug || "no drug"),
      h("span", { class: ["state", `state-${String(ch.state || "idle").toLowerCase()}`] }, stateText(ch.state)),
    ),
    h(
      "dl",
      { class: "values" },
      h("div", {}, h("dt", {}, "Dose"), h("dd", { class: "dose" }, doseText(ch))),
      h("div", {}, h("dt", {}, "Rate"), h("dd", { class: "rate" }, num(ch.rate_ml_h, "mL/h"))),
      h("div", {}, h("dt", {}, "Vol. remaining"), h("dd", { class: "vtbi" }, num(ch.vtbi_remaining_ml, "mL"))),
      h("div", {}, h("dt", {}, "Time remaining"), h("dd", { class: "time-left" }, duration(ch.time_remaining_min))),
    ),
    alarms.map((a) => alarmLine(a)),
  );
}

export function alarmLine(alarm) {
  const p = String(alarm.priority || "").toLowerCase();
  return h(
    "div",
    { class: ["alarm-line", `prio-${p}`, alarm.acknowledged_at && "acked"], dataset: { alarmId: String(alarm.id) } },
    priorityBadge(p),
    " ",
    h("span", { class: "alarm-code" }, codeText(alarm.code)),
    alarm.message ? h("span", { class: "alarm-msg" }, ` — ${alarm.message}`) : null,
    alarm.acknowledged_at ? h("span", { class: "ack-note" }, ` (ack. ${alarm.acknowledged_by || ""})`) : null,
  );
}

export function onlineText(pump) {
  return pump.online ? "online" : `offline — last seen ${ago(pump.last_seen)}`;
}

export function batteryText(pump) {
  const power = pump.power || {};
  const pct = power.battery_percent ?? (typeof power.battery === "number" ? power.battery : null);
  if (pct === null || pct === undefined) return null;
  return `battery ${Math.round(Number(pct))} %${power.on_mains ? " (mains)" : ""}`;
}
