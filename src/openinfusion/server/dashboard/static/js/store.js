// The ward's current picture (pumps with their channels, active alarms), refreshed from the
// API whenever the event stream reports a change or the 5-s poll comes round.

import { listOf, request } from "./api.js";

const PRIORITY_RANK = { high: 3, medium: 2, low: 1 };

export function priorityRank(priority) {
  return PRIORITY_RANK[String(priority || "").toLowerCase()] || 0;
}

export const store = {
  pumps: [],
  alarms: [],
  loadedAt: null,
  error: null,
};

const listeners = new Set();
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
function notify() {
  for (const fn of listeners) fn(store);
}

let inFlight = null;
let again = false;

/** Fetch pumps and active alarms; concurrent calls collapse into one extra round. */
export function refresh() {
  if (inFlight) {
    again = true;
    return inFlight;
  }
  inFlight = (async () => {
    try {
      const [pumps, alarms] = await Promise.all([
        request("/api/pumps"),
        request("/api/alarms?active=true"),
      ]);
      store.pumps = listOf(pumps, "pumps");
      store.alarms = listOf(alarms, "alarms");
      store.loadedAt = Date.now();
      store.error = null;
    } catch (err) {
      store.error = err;
    } finally {
      inFlight = null;
    }
    notify();
    if (again) {
      again = false;
      await refresh();
    }
  })();
  return inFlight;
}

/** Active alarms of one pump (and channel, when given), highest priority first. */
export function alarmsFor(pumpId, channel) {
  return store.alarms
    .filter((a) => a.pump_id === pumpId && (channel === undefined || a.channel === channel))
    .sort((a, b) => priorityRank(b.priority) - priorityRank(a.priority));
}

export function highestPriority(alarms) {
  let best = null;
  for (const alarm of alarms) {
    if (!best || priorityRank(alarm.priority) > priorityRank(best)) best = String(alarm.priority).toLowerCase();
  }
  return best;
}

export function pumpLabel(pump) {
  return pump ? pump.serial || pump.id : "unknown pump";
}

export function pumpById(id) {
  return store.pumps.find((p) => p.id === id) || null;
}

export function channelsOf(pump) {
  const channels = pump && pump.channels;
  if (Array.isArray(channels)) return channels;
  if (channels && typeof channels === "object") {
    return Object.entries(channels).map(([key, value]) => ({ channel: Number(key), ...value }));
  }
  return [];
}
