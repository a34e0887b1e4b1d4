// EHR infusion orders (IHE PCD-03 and FHIR MedicationRequest): each order with its status on
// the pump — unconfirmed until the pump answers, pre-populated while it waits for a clinician
// at the bedside, then confirmed, running, completed or stopped; or rejected or expired, with
// the reason — and the pump channels waiting for bedside re-verification after a patient
// merge. The list follows the live event stream (reloaded at most every second).

import { listOf, optional } from "../api.js";
import { dateTime, h, keepingFocus, replace } from "../dom.js";
import { pumpById, pumpLabel } from "../store.js";
import { notAvailable, notice } from "./common.js";

const STATUSES = ["unconfirmed", "pre-populated", "confirmed", "running", "completed", "stopped", "rejected", "expired"];
const STATUS_TEXT = {
  unconfirmed: "sent, unconfirmed",
  "pre-populated": "pre-populated: confirm at the bedside",
  confirmed: "confirmed at the bedside",
  running: "running",
  completed: "completed",
  stopped: "stopped",
  rejected: "rejected",
  expired: "expired",
};
const RELOAD_MS = 1000;

const view = {
  orders: null,
  flags: [],
  reason: null,
  error: null,
  status: "",
  mrn: "",
  loading: false,
  again: false,
  lastLoad: 0,
  timer: null,
  root: null,
};

function query() {
  const params = new URLSearchParams({ limit: "200" });
  if (view.status) params.set("status", view.status);
  if (view.mrn) params.set("mrn", view.mrn);
  return params.toString();
}

async function load() {
  if (view.loading) {
    view.again = true;
    return;
  }
  view.loading = true;
  view.lastLoad = Date.now();
  try {
    const got = await optional(`/api/orders?${query()}`);
    if (!got.available) {
      view.orders = null;
      view.reason = got.reason;
    } else {
      view.orders = listOf(got.data, "orders");
      view.reason = null;
      const flags = await optional("/api/orders/reverifications");
      view.flags = flags.available ? listOf(flags.data, "reverifications") : [];
    }
    view.error = null;
  } catch (err) {
    view.error = err;
  } finally {
    view.loading = false;
  }
  if (view.again) {
    view.again = false;
    await load();
  }
}

function statusCell(order) {
  const text = STATUS_TEXT[order.status] || order.status;
  return h(
    "div",
    {},
    h("span", { class: ["order-status", `order-${order.status}`] }, text),
    order.soft_limit ? h("span", { class: "badge prio-medium soft-flag", title: "soft limit crossed" }, "SOFT LIMIT") : null,
    order.awaiting_reverification
      ? h("span", { class: "badge prio-high reverify-flag", title: "patient merged: re-verify at the bedside" }, "RE-VERIFY PATIENT")
      : null,
    order.reason ? h("div", { class: "muted order-reason" }, order.reason) : null,
  );
}

function drugCell(order) {
  const parts = [order.concentration, order.dose, order.rate_ml_h != null ? `${order.rate_ml_h} mL/h` : null]
    .filter(Boolean)
    .join(" · ");
  return h("div", {}, h("strong", {}, order.drug || order.drug_code || "—"), parts ? h("div", { class: "muted" }, parts) : null);
}

function pumpCell(order) {
  if (!order.pump_id) return h("span", { class: "muted" }, order.pump_serial || "—");
  const pump = pumpById(order.pump_id);
  return h("a", { href: `#/pump/${encodeURIComponent(order.pump_id)}` }, pump ? pumpLabel(pump) : order.pump_serial || order.pump_id);
}

function row(order) {
  return h(
    "tr",
    { class: [`order-row`, `order-row-${order.status}`], dataset: { orderId: String(order.id), status: order.status } },
    h("td", { "data-label": "Order" }, h("div", {}, order.placer_order_id), h("div", { class: "muted" }, order.source.toUpperCase())),
    h("td", { class: "order-status-cell", "data-label": "Status" }, statusCell(order)),
    h("td", { "data-label": "Patient" }, order.patient_mrn),
    h("td", { "data-label": "Pump" }, pumpCell(order)),
    h("td", { "data-label": "Channel" }, order.channel ?? "—"),
    h("td", { "data-label": "Drug" }, drugCell(order)),
    h("td", { "data-label": "Received" }, dateTime(order.created_at)),
  );
}

function flagsBlock() {
  if (!view.flags.length) return null;
  return h(
    "section",
    { class: "reverify", id: "reverify" },
    h("h2", {}, "Re-verify at the bedside"),
    h(
      "ul",
      {},
      view.flags.map((f) =>
        h(
          "li",
          { class: "notice notice-error", dataset: { associationId: String(f.association_id) } },
          `Patient merge: MRN ${f.prior_mrn} is now MRN ${f.surviving_mrn}. Pump `,
          h("a", { href: `#/pump/${encodeURIComponent(f.pump_id)}` }, pumpById(f.pump_id) ? pumpLabel(pumpById(f.pump_id)) : f.pump_id),
          ` channel ${f.channel}${f.infusing ? " (infusing)" : ""}: end the association and associate the patient again; no order is pre-populated until then.`,
        ),
      ),
    ),
  );
}

function filters(root) {
  const form = h(
    "form",
    { class: "diff-form", method: "post", action: "#", id: "order-filter" },
    h(
      "label",
      {},
      "Status ",
      h(
        "select",
        { name: "status" },
        h("option", { value: "" }, "any"),
        STATUSES.map((s) => h("option", { value: s, selected: s === view.status }, s)),
      ),
    ),
    h("label", {}, "MRN ", h("input", { name: "mrn", value: view.mrn, size: "14", placeholder: "any" })),
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    view.status = form.elements.status.value;
    view.mrn = form.elements.mrn.value.trim();
    await load();
    draw(root);
  });
  return form;
}

function draw(root) {
  keepingFocus(root, () =>
    replace(
      root,
      h("h1", {}, "EHR orders"),
      view.orders === null && view.reason ? notAvailable("EHR orders", view.reason) : filters(root),
      view.error ? notice("error", `Could not load orders: ${view.error.message}`) : null,
      flagsBlock(),
      view.orders === null
        ? view.reason
          ? null
          : notice("info", "Loading orders…")
        : view.orders.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "orders" },
                h("thead", {}, h("tr", {}, ["Order", "Status", "Patient", "Pump", "Ch", "Drug", "Received"].map((t) => h("th", {}, t)))),
                h("tbody", {}, view.orders.map(row)),
              ),
            )
          : notice("info", "No order received."),
    ),
  );
}

/** Draw the page; ``fresh`` (navigation or a live event) reloads the orders, at most once a second. */
export function renderOrders(root, { fresh = true } = {}) {
  const first = view.root !== root;
  view.root = root;
  draw(root);
  if (!fresh && !first) return;
  const wait = Math.max(0, view.lastLoad + RELOAD_MS - Date.now());
  clearTimeout(view.timer);
  view.timer = setTimeout(async () => {
    await load();
    if (view.root === root) draw(root);
  }, first ? 0 : wait);
}
