// Drug library page: which library version each pump runs (from the fleet), the versions the
// server holds, and the difference between two versions when the server offers a diff.

import { listOf, optional } from "../api.js";
import { dateTime, h, replace } from "../dom.js";
import { pumpLabel, store } from "../store.js";
import { notAvailable, notice } from "./common.js";

const view = { libraries: null, available: true, error: null, diff: null, diffAvailable: true, from: "", to: "" };

/** {version: [pump, ...]} with pumps lacking a version under "none". */
export function fleetVersions(pumps) {
  const groups = new Map();
  for (const pump of pumps) {
    const version = pump.library_version || "none";
    if (!groups.has(version)) groups.set(version, []);
    groups.get(version).push(pump);
  }
  return [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
}

async function loadLibraries() {
  try {
    const got = await optional("/api/libraries");
    view.available = got.available;
    view.libraries = got.available ? listOf(got.data, "libraries") : [];
    view.error = null;
  } catch (err) {
    view.error = err;
  }
}

function versionOf(lib) {
  return String(lib.version ?? lib.id ?? "");
}

async function loadDiff() {
  const got = await optional(
    `/api/libraries/${encodeURIComponent(view.from)}/diff/${encodeURIComponent(view.to)}`,
  ).catch((err) => ({ available: true, data: { error: err.message } }));
  view.diffAvailable = got.available;
  view.diff = got.data;
}

function diffLines(diff) {
  if (!diff) return null;
  if (diff.error) return notice("error", `Diff: ${diff.error}`);
  const changes = listOf(diff, "changes");
  if (!changes.length) return notice("info", "The two versions have the same content.");
  return h(
    "ul",
    { class: "diff" },
    changes.map((c) => {
      const kind = String(c.kind || c.change || c.type || "changed").toLowerCase();
      const text = typeof c === "string" ? c : c.text || c.summary || [c.path || c.drug || c.entry, c.field, c.old !== undefined ? `${c.old} → ${c.new}` : null].filter((x) => x !== undefined && x !== null).join(" · ");
      return h("li", { class: ["diff-line", `diff-${kind}`] }, h("span", { class: "diff-kind" }, kind), " ", text);
    }),
  );
}

export function renderLibrary(root, { reload = false } = {}) {
  if (view.libraries === null || reload) {
    loadLibraries().then(() => draw(root));
  }
  draw(root);
}

function draw(root) {
  const groups = fleetVersions(store.pumps);
  const libs = view.libraries || [];
  const picker = (name, value) =>
    h("select", { name, "aria-label": name === "from" ? "older version" : "newer version" },
      h("option", { value: "" }, "choose…"),
      libs.map((lib) => h("option", { value: versionOf(lib), selected: versionOf(lib) === value }, versionOf(lib))));
  const form = h(
    "form",
    { class: "diff-form", method: "post", action: "#" },
    h("label", {}, "From ", picker("from", view.from)),
    h("label", {}, " to ", picker("to", view.to)),
    h("button", { type: "submit" }, "Compare"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    view.from = form.elements.from.value;
    view.to = form.elements.to.value;
    if (!view.from || !view.to) return;
    await loadDiff();
    draw(root);
  });
  replace(
    root,
    h("h1", {}, "Drug library"),
    h("h2", {}, "Versions on the fleet"),
    groups.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "fleet-versions" },
            h("thead", {}, h("tr", {}, h("th", {}, "Library version"), h("th", {}, "Pumps"), h("th", {}, "Which"))),
            h(
              "tbody",
              {},
              groups.map(([version, pumps]) =>
                h("tr", {}, h("td", {}, version), h("td", {}, String(pumps.length)), h("td", { class: "which" }, pumps.map(pumpLabel).join(", "))),
              ),
            ),
          ),
        )
      : notice("info", "No pump has reported yet."),
    h("h2", {}, "Versions on the server"),
    view.error ? notice("error", `Could not load libraries: ${view.error.message}`) : null,
    !view.available
      ? notAvailable("Library versions")
      : view.libraries === null
        ? notice("info", "Loading…")
        : libs.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "libraries" },
                h("thead", {}, h("tr", {}, ["Version", "Name", "Signed by", "Published", "On pumps", "SHA-256"].map((t) => h("th", {}, t)))),
                h(
                  "tbody",
                  {},
                  libs.map((lib) =>
                    h(
                      "tr",
                      { dataset: { version: versionOf(lib) } },
                      h("td", {}, versionOf(lib)),
                      h("td", {}, lib.name || "—"),
                      h("td", {}, `${lib.signer || "—"}${lib.signed_at ? `, ${dateTime(lib.signed_at)}` : ""}`),
                      h("td", {}, `${lib.published_by || "—"}${lib.published_at ? `, ${dateTime(lib.published_at)}` : ""}`),
                      h("td", {}, String(store.pumps.filter((p) => p.library_version === versionOf(lib)).length)),
                      h("td", { class: "digest", title: lib.sha256 || "" }, lib.sha256 ? `${String(lib.sha256).slice(0, 12)}…` : "—"),
                    ),
                  ),
                ),
              ),
            )
          : notice("info", "The server holds no library yet."),
    view.available && libs.length > 1 ? [h("h2", {}, "Compare versions"), form] : null,
    !view.diffAvailable ? notAvailable("Library diff") : diffLines(view.diff),
  );
}
