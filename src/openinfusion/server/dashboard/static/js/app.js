// The single-page app: hash routes, the header (live state, sound, user), and keeping the
// open page current from the event stream or the 5-s poll.

import { logout, onSessionEnd, request, session } from "./api.js";
import { h, keepingFocus, replace } from "./dom.js";
import { liveMode, startLive, stopLive } from "./events.js";
import { dueBurst, playBurst, setSound, soundEnabled } from "./sound.js";
import { refresh, store, subscribe } from "./store.js";
import { refreshAlarms, renderAlarms } from "./views/alarms.js";
import { renderAnalytics } from "./views/analytics.js";
import { renderAudit } from "./views/audit.js";
import { renderLibrary } from "./views/library.js";
import { renderLogin } from "./views/login.js";
import { renderMaintenance } from "./views/maintenance.js";
import { renderOrders } from "./views/orders.js";
import { renderPump } from "./views/pump.js";
import { renderRemote } from "./views/remote.js";
import { renderWard } from "./views/ward.js";

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const liveBadge = document.getElementById("live");
const soundButton = document.getElementById("sound");
const userBox = document.getElementById("user");
const logoutButton = document.getElementById("logout");

let page = null; // {name, arg, root}
let role = "";
const soundState = { announced: new Set(), last: {} };

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const name = parts[0] || "ward";
  return { name, arg: parts[1] ? decodeURIComponent(parts[1]) : null };
}

function draw(reason) {
  if (!page) return;
  const { name, arg, root } = page;
  const fresh = reason !== "tick";
  if (name === "ward") keepingFocus(root, () => renderWard(root));
  else if (name === "pump" && arg) {
    if (fresh) renderPump(root, arg);
  }
  else if (name === "alarms") (reason === "store" ? refreshAlarms(root) : renderAlarms(root));
  else if (name === "library") renderLibrary(root, { reload: reason === "navigate" });
  else if (name === "remote") renderRemote(root, { fresh });
  else if (name === "orders") renderOrders(root, { fresh });
  else if (name === "analytics") {
    if (reason === "navigate") renderAnalytics(root, { reload: true });
  }
  else if (name === "maintenance") {
    if (reason === "navigate") renderMaintenance(root, { reload: true });
  }
  else if (name === "audit") {
    if (reason === "navigate") renderAudit(root, { reload: true });
  }
  else replace(root, h("p", { class: "notice notice-error" }, "No such page."), h("a", { href: "#/ward" }, "Go to the ward"));
}

function navigate() {
  if (!session()) return showLogin();
  const { name, arg } = route();
  const root = h("div", { class: `page page-${name}` });
  replace(main, root);
  page = { name, arg, root };
  for (const link of nav.querySelectorAll("a")) {
    link.setAttribute("aria-current", link.dataset.page === name ? "page" : "false");
  }
  draw("navigate");
  main.focus({ preventScroll: true });
}

function updateHeader() {
  const s = session();
  document.body.classList.toggle("logged-out", !s);
  userBox.textContent = s ? (role ? `${s.user} (${role})` : s.user) : "";
  const mode = liveMode();
  liveBadge.className = `live live-${mode}`;
  liveBadge.textContent =
    mode === "live" ? "Live" : mode === "polling" ? "Polling every 5 s" : mode === "connecting" ? "Connecting…" : "";
  if (store.error && store.error.status === 0) {
    liveBadge.className = "live live-down";
    liveBadge.textContent = "Server unreachable";
  }
  const on = soundEnabled();
  soundButton.textContent = on ? "Sound on" : "Sound off";
  soundButton.setAttribute("aria-pressed", String(on));
  const unacked = store.alarms.filter((a) => !a.acknowledged_at).length;
  const alarmLink = nav.querySelector('[data-page="alarms"]');
  if (alarmLink) alarmLink.textContent = unacked ? `Alarms (${unacked})` : "Alarms";
}

function soundCheck() {
  const due = dueBurst(store.alarms.filter((a) => !a.acknowledged_at && !a.cleared_at), soundState, Date.now());
  if (due) playBurst(due);
}

function showLogin() {
  stopLive();
  page = null;
  updateHeader();
  renderLogin(main, start);
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

function start() {
  role = "";
  request("/api/auth/me")
    .then((me) => {
      role = me && typeof me.role === "string" ? me.role : "";
      updateHeader();
    })
    .catch(() => {});
  updateHeader();
  if (!location.hash) history.replaceState(null, "", "#/ward");
  navigate();
  refresh();
  startLive({
    onRecord: () => refreshSoon(),
    onPoll: () => refresh(),
    onMode: () => updateHeader(),
  });
}

subscribe(() => {
  updateHeader();
  soundCheck();
  draw("store");
});
// A session that ends (logout, expiry, revoked token) reloads the page: nothing the last
// user saw stays in memory on a shared ward computer.
onSessionEnd(() => location.reload());
window.addEventListener("hashchange", navigate);
soundButton.addEventListener("click", () => {
  setSound(!soundEnabled());
  updateHeader();
  if (soundEnabled()) {
    soundState.last = {};
    soundCheck();
  }
});
logoutButton.addEventListener("click", () => logout());
// Relative times ("last seen 40 s ago") and sound repeats move on between updates. A pump
// falling silent publishes no event, so even a live page re-reads the ward every 10 s to
// show it offline.
const LIVE_REFRESH_MS = 10000;
setInterval(() => {
  if (!session()) return;
  if (liveMode() === "live" && Date.now() - (store.loadedAt || 0) >= LIVE_REFRESH_MS) refresh();
  soundCheck();
  if (page && page.name === "ward") draw("tick");
}, 5000);

if (session()) start();
else showLogin();
