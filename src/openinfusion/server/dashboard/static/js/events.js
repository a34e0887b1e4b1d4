// Live updates: the server's authenticated event stream (/api/events, Server-Sent Events read
// with fetch so that the token travels in a header, not the URL). When the stream is down
// the page polls every 5 s and keeps trying to reopen the stream.

import { session } from "./api.js";

export const POLL_MS = 5000;
const RETRY_MS = 10000;

let mode = "stopped"; // "connecting" | "live" | "polling" | "stopped"
let controller = null;
let pollTimer = null;
let retryTimer = null;
let handlers = { onRecord: () => {}, onPoll: () => {}, onMode: () => {} };

export function liveMode() {
  return mode;
}

function setMode(next) {
  if (mode === next) return;
  mode = next;
  handlers.onMode(mode);
}

function startPolling() {
  if (pollTimer === null) {
    pollTimer = setInterval(() => handlers.onPoll(), POLL_MS);
  }
}

function stopPolling() {
  if (pollTimer !== null) clearInterval(pollTimer);
  pollTimer = null;
}

function fallBack() {
  if (mode === "stopped") return;
  setMode("polling");
  startPolling();
  handlers.onPoll();
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, RETRY_MS);
}

/** Parse one SSE block ("event: x\ndata: {...}") into {event, data}; comments give null. */
function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch {
    parsed = { text: data.join("\n") };
  }
  return { event, data: parsed };
}

async function connect() {
  const current = session();
  if (!current || mode === "stopped") return;
  controller = new AbortController();
  setMode(mode === "live" ? "live" : "connecting");
  try {
    const response = await fetch("/api/events", {
      headers: { Accept: "text/event-stream", Authorization: `Bearer ${current.token}` },
      signal: controller.signal,
      cache: "no-store",
    });
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
      throw new Error(`event stream unavailable (HTTP ${response.status})`);
    }
    setMode("live");
    stopPolling();
    handlers.onPoll(); // catch up on anything missed while the stream was down
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        const record = parseBlock(block);
        if (record) handlers.onRecord(record);
      }
    }
    throw new Error("event stream closed");
  } catch (err) {
    if (mode !== "stopped") fallBack();
  }
}

/** Start live updates; handlers: onRecord({event, data}), onPoll(), onMode(mode). */
export function startLive(newHandlers) {
  stopLive();
  handlers = { ...handlers, ...newHandlers };
  mode = "connecting";
  handlers.onMode(mode);
  connect();
}

export function stopLive() {
  mode = "stopped";
  stopPolling();
  clearTimeout(retryTimer);
  if (controller) controller.abort();
  controller = null;
}
