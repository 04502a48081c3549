// A line chart in plain SVG: one pollutant over a fixed window of time, its raw values, the
// worker's hourly and daily means (each a step over its window), and each limit drawn against
// the mean it is judged on (a 1 h limit: the hourly means; a 24 h one: the daily means).
// A stack's chart holds its corrected series; its measured one is drawn beside it, dashed and
// named, never against the limit (``extra``: {measured, labels}).
// extra: {window: [t0, t1] ms, means: {hour, day: [[start ms, value, valid]]}, limits: [limit
// views with their basis], over: bool (the latest value judged over), measured, labels}.
"use strict";

Object.assign(WORDS, {
  raw_line: ["实时值", "live values"], hour_mean: ["小时均值", "hourly mean"], day_mean: ["日均值", "daily mean"],
  limit_1h: ["小时均值限值", "hourly-mean limit"], limit_24h: ["日均值限值", "daily-mean limit"],
  limit_8h: ["8小时滑动均值限值", "8-hour mean limit"], invalid_mean: ["无效均值", "invalid mean"],
});

const MEAN_SPAN = { hour: 3600e3, day: 86400e3 };
const BASIS_MEAN = { "1h": "hour", "24h": "day" };  // the stored means a basis is judged on
const CHART_COLOURS = { raw: "#38bdf8", measured: "#8aa3b8", hour: "#fbbf24", day: "#c084fc", limit: "#ff3b30" };

// At most two points (the lowest and the highest) per slice of the width: a week of minutes
// draws as many elements as a few hours.
function thin(points, t0, t1, slices) {
  if (points.length <= slices * 2) return points;
  const out = [], width = (t1 - t0) / slices || 1;
  let slice = null, lo = null, hi = null;
  const flush = () => { if (lo) { if (lo === hi) out.push(lo); else out.push(...(lo[0] < hi[0] ? [lo, hi] : [hi, lo])); } };
  for (const p of points) {
    const s = Math.floor((p[0] - t0) / width);
    if (s !== slice) { flush(); slice = s; lo = hi = p; continue; }
    if (p[1] < lo[1]) lo = p;
    if (p[1] > hi[1]) hi = p;
  }
  flush();
  return out;
}

// A line's bound as officers write it: a maximum plainly (限值 80), a minimum ≥ 5, a range's
// ends ≥ 6 and ≤ 9.
function boundText(lim, v) {
  if (lim.low != null && lim.high != null) return v === lim.low ? `≥ ${v}` : `≤ ${v}`;
  return lim.min != null && v === lim.min ? `≥ ${v}` : `${v}`;
}

function drawChart(svg, points, limit, unit, extra) {
  extra = extra || {};
  // The viewBox says the drawing size: text stays undistorted where it matches the box.
  const W = svg.viewBox.baseVal.width || 900, H = svg.viewBox.baseVal.height || 300, L = 56, R = 12, B = 28, T = 30;
  const NS = "http://www.w3.org/2000/svg";
  svg.innerHTML = "";
  const el = (name, attrs, text) => {
    const e = document.createElementNS(NS, name);
    for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
    if (text != null) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  const measured = extra.measured || [];
  const limits = extra.limits || (limit ? [limit] : []);
  const means = extra.means || {};
  svg.dataset.points = points.length;
  svg.dataset.last = points.length ? points[points.length - 1][1] : "";
  svg.dataset.firstT = points.length ? points[0][0] : "";
  svg.dataset.lastT = points.length ? points[points.length - 1][0] : "";
  svg.dataset.measuredPoints = measured.length;
  const all = points.concat(measured);
  let [t0, t1] = extra.window || [null, null];
  if (t0 == null) {
    if (!all.length) { svg.dataset.hourly = svg.dataset.daily = 0; el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#8aa3b8" }, "–"); return; }
    t0 = Math.min(...all.map((p) => p[0])); t1 = Math.max(...all.map((p) => p[0]), t0 + 60000);
  }
  // The means whose window overlaps the chart's, each clipped to it.
  const shown = {};
  for (const period of ["hour", "day"]) {
    shown[period] = (means[period] || []).filter((m) => m[0] < t1 && m[0] + MEAN_SPAN[period] > t0);
  }
  svg.dataset.hourly = shown.hour.length;
  svg.dataset.daily = shown.day.length;
  const judged = new Set(limits.map((l) => BASIS_MEAN[l.basis]).filter(Boolean));
  svg.dataset.judged = [...judged].sort().join(" ");
  const lines = [];
  for (const lim of limits) for (const v of [lim.max, lim.min, lim.low, lim.high]) if (v != null) lines.push([lim, v]);
  const vals = all.map((p) => p[1]).concat(shown.hour.map((m) => m[1]), shown.day.map((m) => m[1]), lines.map((l) => l[1]));
  if (!vals.length) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#8aa3b8" }, "–"); return; }
  const lo = Math.min(0, ...vals), hi = Math.max(...vals) * 1.1 || 1;
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#1f3a52" });
    el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#8aa3b8" }, v.toFixed(v < 10 ? 2 : 0));
  }
  const long = t1 - t0 > 20 * 3600e3, short = t1 - t0 < 10 * 60000;  // days: the date too; minutes: the seconds
  for (let i = 0; i <= 4; i++) {
    const tt = t0 + (t1 - t0) * i / 4;
    const opts = Object.assign({ timeZone: "Asia/Shanghai", hour12: false, hour: "2-digit", minute: "2-digit" },
      short ? { second: "2-digit" } : {}, long ? { month: "2-digit", day: "2-digit" } : {});
    const d = new Date(tt).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", opts);
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";  // the ends stay inside
    el("text", { x: x(tt), y: H - 8, "text-anchor": anchor, "font-size": 11, fill: "#8aa3b8" }, d);
  }
  // The means: a step over each window, the judged ones bold; an invalid window (too little
  // data to be judged) dashed.
  for (const period of ["hour", "day"]) {
    for (const [start, v, valid] of shown[period]) {
      const a = Math.max(start, t0), b = Math.min(start + MEAN_SPAN[period], t1);
      el("line", {
        class: `mean mean-${period}${judged.has(period) ? " judged" : ""}`, "data-valid": valid ? "1" : "0",
        x1: x(a), x2: x(b), y1: y(v), y2: y(v), stroke: CHART_COLOURS[period],
        "stroke-width": judged.has(period) ? 4 : 2, "stroke-dasharray": valid ? "none" : "3 3",
      });
    }
  }
  // A stack's limit holds at its reference oxygen: the label says which.
  for (const [lim, v] of lines) {
    const at = lim.o2_reference != null ? ` · ${t("o2_reference")} ${lim.o2_reference}%` : "";
    const source = typeof limitSource === "function" ? limitSource(lim) : (lim.source || "");
    el("line", { class: "limit-line", "data-basis": lim.basis || "", x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: CHART_COLOURS.limit, "stroke-width": 2, "stroke-dasharray": "8 5" });
    el("text", { class: "limit-label", x: W - R - 4, y: y(v) - 5, "text-anchor": "end", "font-size": 12, fill: "#ff6b60" },
      `${t("limit_" + lim.basis)} ${boundText(lim, v)} ${unit || ""} · ${source}${at}`);
  }
  const path = (pts) => thin(pts, t0, t1, Math.round(W - L - R)).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  if (measured.length) el("polyline", { class: "measured-line", points: path(measured), fill: "none", stroke: CHART_COLOURS.measured, "stroke-width": 1.5, "stroke-dasharray": "4 3" });
  // Which line is which: only the judged ones are held against the limit.
  const labels = extra.labels || { main: t("raw_line") };
  const legend = [[labels.main, CHART_COLOURS.raw, "━", "series-label"]];
  if (measured.length || extra.labels) legend.push([labels.measured, CHART_COLOURS.measured, "┅", "series-label measured-label"]);
  if (shown.hour.length) legend.push([t("hour_mean"), CHART_COLOURS.hour, "▬", "series-label hour-label"]);
  if (shown.day.length) legend.push([t("day_mean"), CHART_COLOURS.day, "▬", "series-label day-label"]);
  let lx = L;
  for (const [text, colour, mark, cls] of legend) {
    if (!text) continue;
    el("text", { class: cls, x: lx, y: 14, "font-size": 12, fill: colour }, `${mark} ${text}`);
    lx += 34 + [...text].reduce((n, c) => n + (c.charCodeAt(0) > 0x2e80 ? 12 : 7), 0);
  }
  if (!points.length) return;
  el("polyline", { class: "main-line", points: path(points), fill: "none", stroke: CHART_COLOURS.raw, "stroke-width": 1.5 });
  const [lt, lv] = points[points.length - 1];
  let over = extra.over;
  if (over == null) {  // no judgement given: the value against the one limit drawn
    const l = limits[0];
    over = !!l && ((l.max != null && lv > l.max) || (l.min != null && lv < l.min) || (l.low != null && (lv < l.low || lv > l.high)));
  }
  el("circle", { cx: x(lt), cy: y(lv), r: 5, fill: over ? CHART_COLOURS.limit : CHART_COLOURS.raw, class: "last-point" });
}
