// A small SVG time-series chart: lines or steps, optional percentile bands and a shaded
// target range, time on x, "nice" ticks on y. Drawn with a viewBox so it scales to any width.

import { s } from "./dom.js";

// User units: wide screens draw on 640 x 220; phones on 360 x 200, so that the labels keep
// a readable size once the drawing is scaled to the screen.
function frame() {
  return window.innerWidth < 600 ? { W: 360, H: 200 } : { W: 640, H: 220 };
}
const PAD = { left: 48, right: 12, top: 14, bottom: 26 };

/** Round tick step (1, 2, 2.5 or 5 × 10^k) giving about `count` ticks over [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) {
    hi = lo + 1;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => raw <= st) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toFixed(10)));
  }
  // One more tick above the data, so the highest value never sits over the top gridline.
  if (ticks.length && ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toFixed(10)));
  return ticks;
}

const DAY_MS = 86400000;
const DAY_LABEL = new Intl.DateTimeFormat(undefined, { day: "2-digit", month: "short" });

function timeLabel(t, spanMs) {
  const d = new Date(t);
  if (spanMs > 2 * DAY_MS) return DAY_LABEL.format(d);
  const hh = String(d.getHours()).padStart(2, "0");
  const mm = String(d.getMinutes()).padStart(2, "0");
  if (spanMs < 10 * 60 * 1000) return `${hh}:${mm}:${String(d.getSeconds()).padStart(2, "0")}`;
  return `${hh}:${mm}`;
}

function timeTicks(t0, t1, most) {
  const span = t1 - t0;
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map(
    (x) => x * 1000,
  );
  const step = steps.find((st) => span / st <= most) || 604800000;
  const ticks = [];
  // Ticks fall on whole steps of local time (midnight for days), not of UTC.
  const offset = new Date(t0).getTimezoneOffset() * 60000;
  for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) ticks.push(t);
  return ticks.length >= 2 ? ticks : [t0, t1];
}

/**
 * chart({title, unit, series: [{label, cls, points: [[t_ms, v], ...], step}],
 *        bands: [{cls, lower: [[t, v]], upper: [[t, v]]}], target: [lo, hi], xDomain, yMin,
 *        xLabel: (t) => text, xTicks: [t, ...], markers: [{t, cls, label}]})
 * Markers are vertical lines at moments such as alarms.
 */
export function chart({ title, unit, series = [], bands = [], target = null, xDomain = null, yMin = 0, yMax = null, xLabel = null, xTicks = null, markers = [] }) {
  const { W, H } = frame();
  const all = [
    ...series.flatMap((sr) => sr.points),
    ...bands.flatMap((b) => [...b.lower, ...b.upper]),
  ].filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v));
  const figure = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": title,
    preserveAspectRatio: "xMidYMid meet",
  });
  figure.append(s("text", { x: PAD.left, y: 11, class: "chart-title" }, unit ? `${title} (${unit})` : title));
  if (!all.length) {
    figure.append(s("text", { x: W / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle" }, "no data yet"));
    return figure;
  }
  const times = [...all.map((p) => p[0]), ...markers.map((m) => m.t).filter(Number.isFinite)];
  let [t0, t1] = xDomain || [Math.min(...times), Math.max(...times)];
  if (t1 === t0) t1 = t0 + 60000;
  let lo = Math.min(yMin ?? Infinity, ...all.map((p) => p[1]));
  let hi = Math.max(...all.map((p) => p[1]), ...(target ? target : []));
  if (yMax !== null) hi = Math.max(hi, yMax);
  if (hi === lo) hi = lo + 1;
  hi += (hi - lo) * 0.05;
  const yt = niceTicks(lo, hi);
  lo = Math.min(lo, yt[0]);
  hi = Math.max(hi, yt[yt.length - 1]);
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);

  const grid = s("g", { class: "chart-grid" });
  for (const v of yt) {
    grid.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    grid.append(s("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  const most = W < 640 ? 4 : 6;
  const xticks = xTicks || (xLabel ? niceTicks(t0, t1, most) : timeTicks(t0, t1, most));
  for (const t of xticks) {
    grid.append(s("line", { x1: x(t), x2: x(t), y1: PAD.top, y2: H - PAD.bottom, class: "chart-xgrid" }));
    grid.append(
      s(
        "text",
        { x: x(t), y: H - 8, "text-anchor": x(t) > W - 30 ? "end" : x(t) < PAD.left + 20 ? "start" : "middle" },
        xLabel ? xLabel(t) : timeLabel(t, t1 - t0),
      ),
    );
  }
  figure.append(grid);
  if (target) {
    const [a, b] = target;
    figure.append(
      s("rect", { class: "chart-target", x: PAD.left, width: W - PAD.left - PAD.right, y: y(b), height: Math.max(0, y(a) - y(b)) }),
    );
  }
  for (const band of bands) {
    if (!band.lower.length) continue;
    const upper = band.upper.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    const lower = band.lower.slice().reverse().map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    figure.append(s("polygon", { class: ["chart-band", band.cls], points: [...upper, ...lower].join(" ") }));
  }
  for (const sr of series) {
    const pts = sr.points.filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v));
    if (!pts.length) continue;
    const coords = [];
    pts.forEach(([t, v], i) => {
      if (sr.step && i > 0) coords.push(`${x(t).toFixed(1)},${y(pts[i - 1][1]).toFixed(1)}`);
      coords.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    });
    if (pts.length === 1) coords.push(`${(x(pts[0][0]) + 2).toFixed(1)},${y(pts[0][1]).toFixed(1)}`);
    figure.append(s("polyline", { class: ["chart-line", sr.cls], points: coords.join(" ") }, s("title", {}, sr.label)));
  }
  for (const m of markers) {
    if (!(m.t >= t0 && m.t <= t1)) continue;
    figure.append(
      s("line", { class: ["chart-marker", m.cls], x1: x(m.t), x2: x(m.t), y1: PAD.top, y2: H - PAD.bottom }, s("title", {}, m.label)),
    );
  }
  const legend = s("g", { class: "chart-legend" });
  let lx = W - PAD.right;
  for (const sr of [...series].reverse()) {
    const width = 14 + sr.label.length * 6.5;
    lx -= width;
    legend.append(s("line", { x1: lx, x2: lx + 10, y1: 7, y2: 7, class: ["chart-line", sr.cls] }));
    legend.append(s("text", { x: lx + 13, y: 11 }, sr.label));
  }
  figure.append(legend);
  return figure;
}
