// Live ward view: every pump and channel, worst alarms first, offline pumps greyed.

import { ago, h, replace } from "../dom.js";
import { alarmsFor, channelsOf, highestPriority, priorityRank, pumpLabel, store } from "../store.js";
import { alarmLine, batteryText, channelBlock, kindText, notice, onlineText, priorityBadge } from "./common.js";

function pumpCard(pump) {
  const alarms = alarmsFor(pump.id);
  const prio = highestPriority(alarms);
  const channels = channelsOf(pump);
  const gaps = Number(pump.missing ?? (Array.isArray(pump.gaps) ? pump.gaps.length : 0)) || 0;
  return h(
    "a",
    {
      class: ["pump-card", !pump.online && "offline", prio && `alarm-${prio}`],
      href: `#/pump/${encodeURIComponent(pump.id)}`,
      dataset: { pumpId: pump.id },
    },
    h(
      "div",
      { class: "pump-head" },
      h("span", { class: "pump-label" }, pumpLabel(pump)),
      h("span", { class: "pump-kind" }, kindText(pump.kind)),
      pump.unit ? h("span", { class: "pump-unit" }, pump.unit) : null,
      prio ? priorityBadge(prio) : null,
    ),
    h(
      "div",
      { class: "pump-meta" },
      h("span", { class: ["link-state", pump.online ? "is-online" : "is-offline"] }, onlineText(pump)),
      batteryText(pump) ? h("span", {}, batteryText(pump)) : null,
      pump.library_version ? h("span", {}, `library ${pump.library_version}`) : null,
      gaps ? h("span", { class: "gaps" }, `${gaps} missing message${gaps > 1 ? "s" : ""}`) : null,
    ),
    channels.length
      ? channels.map((ch) => channelBlock(pump, ch))
      : h("p", { class: "muted" }, "no channel reported yet"),
    alarmsFor(pump.id)
      .filter((a) => a.channel === null || a.channel === undefined)
      .map((a) => alarmLine(a)),
  );
}

function order(a, b) {
  const pa = priorityRank(highestPriority(alarmsFor(a.id)));
  const pb = priorityRank(highestPriority(alarmsFor(b.id)));
  if (pa !== pb) return pb - pa;
  if (Boolean(a.online) !== Boolean(b.online)) return a.online ? -1 : 1;
  return String(pumpLabel(a)).localeCompare(String(pumpLabel(b)));
}

export function renderWard(root) {
  const pumps = [...store.pumps].sort(order);
  const counts = { high: 0, medium: 0, low: 0 };
  for (const a of store.alarms) {
    const p = String(a.priority).toLowerCase();
    if (p in counts && !a.acknowledged_at) counts[p] += 1;
  }
  const online = pumps.filter((p) => p.online).length;
  replace(
    root,
    h("h1", {}, "Ward"),
    h(
      "div",
      { class: "summary", "aria-live": "polite" },
      h("span", { class: "summary-pumps" }, `${online} of ${pumps.length} pumps online`),
      ["high", "medium", "low"].map((p) =>
        h("span", { class: ["summary-alarms", `prio-${p}`, counts[p] && "has"] }, `${counts[p]} ${p}`),
      ),
      store.loadedAt ? h("span", { class: "muted" }, `updated ${ago(new Date(store.loadedAt).toISOString())}`) : null,
    ),
    store.error ? notice("error", `Could not load the ward: ${store.error.message}`) : null,
    pumps.length
      ? h("div", { class: "pump-grid" }, pumps.map(pumpCard))
      : store.loadedAt
        ? notice("info", "No pump has enrolled with this server yet.")
        : notice("info", "Loading…"),
  );
}
