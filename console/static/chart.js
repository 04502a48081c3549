// A line chart in plain SVG: the last hours of one pollutant, with the limit as a red line.
// A stack's chart holds its corrected series against the limit; its measured one is drawn
// beside it, dashed and named, never against the limit (``extra``: {measured, labels}).
"use strict";

function drawChart(svg, points, limit, unit, extra) {
  // The viewBox says the drawing size: text stays undistorted where it matches the box.
  const W = svg.viewBox.baseVal.width || 900, H = svg.viewBox.baseVal.height || 300, L = 56, R = 12, B = 28;
  const labels = extra && extra.labels, T = labels ? 30 : 14;  // the series' names above the plot
  const NS = "http://www.w3.org/2000/svg";
  svg.innerHTML = "";
  const el = (name, attrs, text) => {
    const e = document.createElementNS(NS, name);
    for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
    if (text != null) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  const measured = (extra && extra.measured) || [];
  svg.dataset.points = points.length;
  svg.dataset.last = points.length ? points[points.length - 1][1] : "";
  svg.dataset.measuredPoints = measured.length;
  const lines = limit ? [limit.max, limit.min, limit.low, limit.high].filter((v) => v != null) : [];
  if (!points.length && !measured.length) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#8aa3b8" }, "–"); return; }
  const all = points.concat(measured);
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]), t0 + 60000);
  const vals = all.map((p) => p[1]).concat(lines);
  let lo = Math.min(0, ...vals), hi = Math.max(...vals) * 1.1 || 1;
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#1f3a52" });
    el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#8aa3b8" }, v.toFixed(v < 10 ? 2 : 0));
  }
  for (let i = 0; i <= 4; i++) {
    const tt = t0 + (t1 - t0) * i / 4;
    const short = t1 - t0 < 10 * 60000;  // minutes apart: show the seconds
    const d = new Date(tt).toLocaleTimeString("zh-CN", Object.assign({ timeZone: "Asia/Shanghai", hour12: false, hour: "2-digit", minute: "2-digit" }, short ? { second: "2-digit" } : {}));
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";  // the ends stay inside
    el("text", { x: x(tt), y: H - 8, "text-anchor": anchor, "font-size": 11, fill: "#8aa3b8" }, d);
  }
  // A stack's limit holds at its reference oxygen: the label says which.
  const at = limit && limit.o2_reference != null ? ` · ${t("o2_reference")} ${limit.o2_reference}%` : "";
  for (const v of lines) {
    el("line", { class: "limit-line", x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#ff3b30", "stroke-width": 2, "stroke-dasharray": "8 5" });
    el("text", { x: W - R - 4, y: y(v) - 5, "text-anchor": "end", "font-size": 12, fill: "#ff6b60" }, `${t("limit")} ${v} ${unit || ""} · ${limit.source}${at}`);
  }
  const path = (pts) => pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  if (measured.length) el("polyline", { class: "measured-line", points: path(measured), fill: "none", stroke: "#8aa3b8", "stroke-width": 1.5, "stroke-dasharray": "4 3" });
  if (labels) {  // which line is which: only the solid one is held against the limit
    el("text", { class: "series-label", x: L, y: 14, "font-size": 12, fill: "#38bdf8" }, `━ ${labels.main}`);
    el("text", { class: "series-label measured-label", x: L + 260, y: 14, "font-size": 12, fill: "#8aa3b8" }, `┅ ${labels.measured}`);
  }
  if (!points.length) return;
  el("polyline", { class: "main-line", points: path(points), fill: "none", stroke: "#38bdf8", "stroke-width": 2 });
  const [lt, lv] = points[points.length - 1];
  const over = limit && ((limit.max != null && lv > limit.max) || (limit.min != null && lv < limit.min) || (limit.low != null && (lv < limit.low || lv > limit.high)));
  el("circle", { cx: x(lt), cy: y(lv), r: 5, fill: over ? "#ff3b30" : "#38bdf8", class: "last-point" });
}
