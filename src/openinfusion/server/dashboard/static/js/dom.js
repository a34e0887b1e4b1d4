// Building the page from data without ever parsing it as HTML (threat C-14: text from a pump
// or the server is inserted as a text node, never through innerHTML or an attribute that
// runs code).

const SVG_NS = "http://www.w3.org/2000/svg";

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (/^on/i.test(name)) throw new Error(`event handler attribute ${name} refused`);
    if (name === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, built the same way as h(). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replace everything inside el with the given children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Run `render` (which rebuilds part of the page) without losing the keyboard focus: the
 * element that had it is found again by its tag, classes and data attributes.
 */
export function keepingFocus(root, render) {
  const active = document.activeElement;
  let selector = null;
  if (active && active.id && root.contains(active)) {
    selector = `#${CSS.escape(active.id)}`;
  } else if (active && active !== document.body && root.contains(active) && Object.keys(active.dataset).length) {
    const classes = [...active.classList].map((c) => `.${CSS.escape(c)}`).join("");
    const data = Object.entries(active.dataset)
      .map(([k, v]) => `[data-${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}="${CSS.escape(v)}"]`)
      .join("");
    selector = `${active.tagName.toLowerCase()}${classes}${data}`;
  }
  const result = render();
  if (selector) {
    const again = root.querySelector(selector);
    if (again) again.focus({ preventScroll: true });
  }
  return result;
}

const NUMBER = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
// Clinical records read in 24-hour time.
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

export function num(value, unit) {
  if (value === undefined || value === null || Number.isNaN(Number(value))) return "—";
  return unit ? `${NUMBER.format(Number(value))} ${unit}` : NUMBER.format(Number(value));
}

/** Minutes as "2 h 05 min" (time remaining on a channel). */
export function duration(minutes) {
  if (minutes === undefined || minutes === null || !Number.isFinite(Number(minutes))) return "—";
  const total = Math.max(0, Math.round(Number(minutes)));
  const hours = Math.floor(total / 60);
  const mins = total % 60;
  return hours ? `${hours} h ${String(mins).padStart(2, "0")} min` : `${mins} min`;
}

export function parseTime(text) {
  if (!text) return null;
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

export function clock(text) {
  const t = parseTime(text);
  return t === null ? "—" : TIME.format(t);
}

export function dateTime(text) {
  const t = parseTime(text);
  return t === null ? "—" : DATE_TIME.format(t);
}

/** "12 s ago", "5 min ago", "3 h ago" for a last-seen time. */
export function ago(text, now = Date.now()) {
  const t = parseTime(text);
  if (t === null) return "never";
  const seconds = Math.max(0, Math.round((now - t) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} days ago`;
}
