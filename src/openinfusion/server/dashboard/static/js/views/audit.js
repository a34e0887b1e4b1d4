// Audit trail (roles that may read it): the newest entries first, filtered by action, and a
// check of the hash chain by the server (C-21). The API lists entries oldest first from
// `after_seq`, so the page walks forward to the end, 1000 at a time.

import { listOf, optional, request } from "../api.js";
import { dateTime, h, replace } from "../dom.js";
import { notAvailable, notice } from "./common.js";

const PAGE = 1000;
const MAX_PAGES = 20;
const SHOWN = 200;

const view = { entries: null, reason: null, error: null, action: "", check: null };

async function load() {
  const all = [];
  let after = 0;
  for (let i = 0; i < MAX_PAGES; i += 1) {
    const action = view.action ? `&action=${encodeURIComponent(view.action)}` : "";
    const got = await optional(`/api/audit?after_seq=${after}&limit=${PAGE}${action}`);
    if (!got.available) {
      view.entries = null;
      view.reason = got.reason;
      return;
    }
    const page = listOf(got.data, "entries");
    all.push(...page);
    if (page.length < PAGE) break;
    after = page[page.length - 1].seq;
  }
  view.entries = all.slice(-SHOWN).reverse();
  view.reason = null;
}

function details(entry) {
  const d = entry.details;
  if (!d || typeof d !== "object") return "";
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}

function draw(root) {
  const form = h(
    "form",
    { class: "diff-form", method: "post", action: "#" },
    h("label", {}, "Action ", h("input", { name: "action", value: view.action, placeholder: "e.g. alarm.ack", size: "18" })),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", class: "secondary", id: "verify-chain" }, "Verify chain"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    view.action = form.elements.action.value.trim();
    await refreshAudit(root);
  });
  form.querySelector("#verify-chain").addEventListener("click", async () => {
    try {
      view.check = await request("/api/audit/verify");
    } catch (err) {
      view.check = { ok: false, message: err.message };
    }
    draw(root);
  });
  replace(
    root,
    h("h1", {}, "Audit trail"),
    view.entries === null && view.reason ? notAvailable("Audit trail", view.reason) : form,
    view.check
      ? h(
          "p",
          { class: ["notice", view.check.ok ? "notice-ok" : "notice-error"], role: "status", id: "chain-check" },
          view.check.ok
            ? `Chain intact: ${view.check.checked} entries checked up to #${view.check.head_seq}.`
            : `Chain check failed${view.check.first_bad_seq ? ` at #${view.check.first_bad_seq}` : ""}: ${view.check.message}`,
        )
      : null,
    view.error ? notice("error", `Could not load the audit trail: ${view.error.message}`) : null,
    view.entries === null
      ? view.reason
        ? null
        : notice("info", "Loading…")
      : view.entries.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "audit" },
              h("thead", {}, h("tr", {}, ["#", "Time", "Who", "Action", "Object", "Details"].map((t) => h("th", {}, t)))),
              h(
                "tbody",
                {},
                view.entries.map((e) =>
                  h(
                    "tr",
                    { dataset: { seq: String(e.seq) } },
                    h("td", {}, String(e.seq)),
                    h("td", {}, dateTime(e.ts)),
                    h("td", {}, e.actor),
                    h("td", {}, e.action),
                    h("td", {}, e.object),
                    h("td", { class: "muted" }, details(e)),
                  ),
                ),
              ),
            ),
          )
        : notice("info", "No entry matches."),
  );
}

export async function refreshAudit(root) {
  try {
    await load();
    view.error = null;
  } catch (err) {
    view.error = err;
  }
  draw(root);
}

export function renderAudit(root, { reload = false } = {}) {
  draw(root);
  if (reload || view.entries === null) refreshAudit(root);
}
