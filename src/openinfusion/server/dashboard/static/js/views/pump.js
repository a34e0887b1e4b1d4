// Pump detail: its channels, the infusion history chart (rate and volume over time, from the
// stored status messages), its alarms and its recent events.

import { listOf, optional, request } from "../api.js";
import { chart } from "../chart.js";
import { dateTime, h, num, parseTime, replace } from "../dom.js";
import { alarmsFor, channelsOf, pumpLabel } from "../store.js";
import { alarmLine, batteryText, channelBlock, codeText, kindText, notAvailable, notice, onlineText } from "./common.js";

/** Channel items of a status body, as a list with a `channel` number each. */
export function statusChannels(body) {
  const channels = body && body.channels;
  if (Array.isArray(channels)) return channels.filter((c) => c && typeof c === "object");
  if (channels && typeof channels === "object") {
    return Object.entries(channels).map(([k, v]) => ({ channel: Number(k), ...v }));
  }
  return [];
}

/** Missing sequence numbers as "7, 12–15" (the API gives numbers and [lo, hi] runs). */
export function gapText(gaps) {
  const shown = gaps.slice(0, 10).map((g) => (Array.isArray(g) ? `${g[0]}–${g[1]}` : String(g)));
  return shown.join(", ") + (gaps.length > 10 ? ", …" : "");
}

function messageTime(m) {
  return parseTime(m.sent_at) ?? parseTime(m.received_at);
}

/** [[t, rate], ...] and [[t, volume], ...] for one channel from status messages, and the
 * alarms raised on it (or on the whole pump) as chart markers. */
export function history(messages, channel) {
  const rate = [];
  const volume = [];
  const markers = [];
  for (const m of messages) {
    const body = m.body || {};
    if (m.type === "alarm" && (body.state || "raised") === "raised" && (body.channel === channel || body.channel === null || body.channel === undefined)) {
      const t = messageTime(m);
      const p = String(body.priority || "").toLowerCase();
      if (t !== null) markers.push({ t, cls: `marker-${p}`, label: `${p} alarm: ${codeText(body.code)}` });
    }
    if (m.type !== "status") continue;
    const t = messageTime(m);
    if (t === null) continue;
    for (const c of statusChannels(m.body)) {
      if (Number(c.channel ?? c.index) !== channel) continue;
      if (typeof c.rate_ml_h === "number") rate.push([t, c.rate_ml_h]);
      const v = typeof c.volume_infused_ml === "number" ? c.volume_infused_ml : c.patient_ml;
      if (typeof v === "number") volume.push([t, v]);
    }
  }
  rate.sort((a, b) => a[0] - b[0]);
  volume.sort((a, b) => a[0] - b[0]);
  return { rate, volume, markers };
}

const MESSAGE_PAGE = 1000;
const RELOAD_MS = 1000;

const view = { pumpId: null, channel: null, messages: null, messagesAvailable: true, loadedAt: 0 };

/**
 * The pump's latest stored messages (the API pages upwards from after_seq, 1000 at most).
 * Given the messages already held, only newer ones are fetched and the last 1000 kept.
 */
export async function recentMessages(pump, held = null, count = MESSAGE_PAGE) {
  const newest = held && held.length ? Number(held[held.length - 1].seq) : null;
  const after = newest !== null ? newest : Math.max(0, Number(pump.last_seq || 0) - count);
  const got = await optional(
    `/api/pumps/${encodeURIComponent(pump.id)}/messages?after_seq=${after}&limit=${count}`,
  );
  const fresh = got.available ? listOf(got.data, "messages") : [];
  const messages =
    newest !== null ? [...held, ...fresh.filter((m) => Number(m.seq) > newest)].slice(-count) : fresh;
  return { available: got.available, reason: got.reason, messages };
}

async function loadInfusions(pump) {
  const got = await optional(`/api/infusions?pump_id=${encodeURIComponent(pump.id)}&limit=50`);
  view.infusions = got.available ? listOf(got.data, "infusions") : null;
  view.infusionsReason = got.reason;
}

function infusionTable() {
  if (view.infusions === null) return notAvailable("Infusion records", view.infusionsReason || "missing");
  if (!view.infusions.length) return h("p", { class: "muted" }, "none recorded");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "infusions" },
      h("thead", {}, h("tr", {}, ["Ch", "Drug", "Started", "Ended", "Volume", "Dose delivered"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        view.infusions.map((inf) =>
          h(
            "tr",
            { dataset: { infusionId: String(inf.id) } },
            h("td", {}, inf.channel ?? "—"),
            h("td", {}, inf.drug || "no drug"),
            h("td", {}, dateTime(inf.started_at)),
            h("td", {}, inf.ended_at ? `${dateTime(inf.ended_at)}${inf.end_reason ? ` (${inf.end_reason})` : ""}` : "running"),
            h("td", {}, num(inf.volume_infused_ml, "mL")),
            h("td", {}, inf.dose_delivered === null || inf.dose_delivered === undefined ? "—" : num(inf.dose_delivered, inf.dose_delivered_unit || "")),
          ),
        ),
      ),
    ),
  );
}

async function loadMessages(pump) {
  await loadInfusions(pump).catch(() => {
    view.infusions = null;
  });
  const got = await recentMessages(pump, view.messages);
  view.messagesAvailable = got.available;
  view.reason = got.reason;
  view.messages = got.messages;
  view.loadedAt = Date.now();
}

/** Channel of an event or alarm body: ``channel`` (1-based, as in the protocol), else the
 * journal record's own ``data.channel`` (0-based index inside the pump engine). */
function eventChannel(body) {
  if (Number.isInteger(body.channel)) return body.channel;
  const data = body.data;
  return data && Number.isInteger(data.channel) ? data.channel + 1 : "—";
}

function eventRow(m) {
  const body = m.body || {};
  const what =
    m.type === "alarm"
      ? `${codeText(body.code)} ${body.state || body.action || "raised"}`
      : String(body.kind || body.event || m.type);
  return h(
    "tr",
    {},
    h("td", {}, dateTime(m.sent_at || m.received_at)),
    h("td", {}, m.type),
    h("td", {}, eventChannel(body)),
    h("td", {}, what),
  );
}

function render(root, pump) {
  const channels = channelsOf(pump);
  if (view.channel === null || !channels.some((c) => c.channel === view.channel)) {
    view.channel = channels.length ? channels[0].channel : 1;
  }
  const messages = view.messages || [];
  const series = history(messages, view.channel);
  const events = messages.filter((m) => m.type === "event" || m.type === "alarm").slice(-20).reverse();
  const pumpAlarms = alarmsFor(pump.id);
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/ward" }, "← Ward")),
    h("h1", {}, pumpLabel(pump), " ", h("span", { class: "pump-kind" }, kindText(pump.kind))),
    h(
      "div",
      { class: ["pump-meta", !pump.online && "offline"] },
      h("span", { class: ["link-state", pump.online ? "is-online" : "is-offline"] }, onlineText(pump)),
      pump.model ? h("span", {}, pump.model) : null,
      pump.unit ? h("span", {}, pump.unit) : null,
      batteryText(pump) ? h("span", {}, batteryText(pump)) : null,
      h("span", {}, `library ${pump.library_version || "none"}`),
      h("span", {}, `last message #${pump.last_seq ?? "—"}`),
      Array.isArray(pump.gaps) && pump.gaps.length
        ? h("span", { class: "gaps" }, `missing messages: ${gapText(pump.gaps)}`)
        : null,
    ),
    h("div", { class: "channels-wide" }, channels.map((ch) => channelBlock(pump, ch))),
    h("h2", {}, "Infusion history"),
    channels.length > 1
      ? h(
          "div",
          { class: "tabs", role: "tablist" },
          channels.map((ch) =>
            h(
              "button",
              { type: "button", role: "tab", class: "tab", "aria-selected": String(ch.channel === view.channel), dataset: { channel: String(ch.channel) } },
              `Ch ${ch.channel}${ch.drug ? ` · ${ch.drug}` : ""}`,
            ),
          ),
        )
      : null,
    !view.messagesAvailable
      ? notAvailable("Infusion history (pump messages)", view.reason)
      : view.messages === null
        ? notice("info", "Loading history…")
        : h(
            "div",
            { class: "charts" },
            chart({ title: "Rate", unit: "mL/h", series: [{ label: "rate", cls: "s-rate", points: series.rate, step: true }], markers: series.markers }),
            chart({ title: "Volume infused", unit: "mL", series: [{ label: "volume", cls: "s-volume", points: series.volume }], markers: series.markers }),
          ),
    series.markers.length ? h("p", { class: "muted" }, "Dashed lines: alarms raised on this channel or the pump, coloured by priority.") : null,
    h("h2", {}, "Infusions on this pump"),
    view.infusions === undefined ? notice("info", "Loading…") : infusionTable(),
    h("h2", {}, "Active alarms"),
    pumpAlarms.length ? h("div", {}, pumpAlarms.map(alarmLine)) : h("p", { class: "muted" }, "none"),
    h("h2", {}, "Recent events"),
    events.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "events" },
            h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Type"), h("th", {}, "Ch"), h("th", {}, "What"))),
            h("tbody", {}, events.map(eventRow)),
          ),
        )
      : h("p", { class: "muted" }, "none"),
  );
  for (const tab of root.querySelectorAll("button.tab")) {
    tab.addEventListener("click", () => {
      view.channel = Number(tab.dataset.channel);
      render(root, pump);
    });
  }
}

// One load at a time; a change that arrives while loading, or sooner than RELOAD_MS after
// the last load, is not dropped but loaded when its turn comes.
let loading = null;
let pending = false;
let timer = null;

function schedule() {
  if (loading) {
    pending = true;
    return;
  }
  const wait = view.loadedAt + RELOAD_MS - Date.now();
  if (view.messages !== null && wait > 0) {
    clearTimeout(timer);
    timer = setTimeout(schedule, wait);
    return;
  }
  loading = load(view.pumpId).finally(() => {
    loading = null;
    if (pending) {
      pending = false;
      schedule();
    }
  });
}

async function load(pumpId) {
  let pump;
  try {
    pump = await request(`/api/pumps/${encodeURIComponent(pumpId)}`);
  } catch (err) {
    if (view.pumpId === pumpId) {
      replace(view.root, h("p", { class: "crumbs" }, h("a", { href: "#/ward" }, "← Ward")), notice("error", `Pump ${pumpId}: ${err.message}`));
    }
    return;
  }
  if (view.pumpId !== pumpId) return;
  if (view.messages === null) render(view.root, pump);
  try {
    await loadMessages(pump);
  } catch (err) {
    view.messages = view.messages || [];
    view.loadedAt = Date.now();
    if (view.pumpId === pumpId) {
      render(view.root, pump);
      view.root.append(notice("error", `History: ${err.message}`));
    }
    return;
  }
  if (view.pumpId === pumpId) render(view.root, pump);
}

/** Show the pump page in `root` and bring it up to date (a new record arrived). */
export function renderPump(root, pumpId) {
  if (view.pumpId !== pumpId) {
    clearTimeout(timer);
    Object.assign(view, { pumpId, channel: null, messages: null, messagesAvailable: true, loadedAt: 0, infusions: undefined });
  }
  view.root = root;
  schedule();
}
