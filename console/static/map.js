// The city drawn from the catalogue's coordinates alone (no tiles): an equirectangular
// projection scaled by cos(latitude), each district as the hull of its sites.
"use strict";

function hull(points) {
  const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop(); lower.push(q); }
  for (const q of p.slice().reverse()) { while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop(); upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

// Draw the sites into an <svg> of width × height user units; `unit` is the size of one of the
// wall's units in those units (the viewBox is the element's own pixel size, so the marks and
// the labels keep their size on any screen). Returns site id → its marker element.
function drawMap(svg, sites, width, height, onClick, unit) {
  const NS = "http://www.w3.org/2000/svg";
  const u = unit || 10;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const lat0 = sites.reduce((s, x) => s + x.lat, 0) / sites.length;
  const k = Math.cos(lat0 * Math.PI / 180);
  const xs = sites.map((s) => s.lon * k), ys = sites.map((s) => -s.lat);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const pad = 7 * u;
  const scale = Math.min((width - 2 * pad) / (maxX - minX || 1), (height - 2 * pad) / (maxY - minY || 1));
  const offX = (width - (maxX - minX) * scale) / 2, offY = (height - (maxY - minY) * scale) / 2;
  const at = (s) => [offX + (s.lon * k - minX) * scale, offY + (-s.lat - minY) * scale];
  const el = (name, attrs, parent) => {
    const e = document.createElementNS(NS, name);
    for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
    (parent || svg).appendChild(e);
    return e;
  };
  svg.textContent = "";
  const byDistrict = {};
  for (const s of sites) (byDistrict[s.district] = byDistrict[s.district] || []).push(at(s));
  for (const [name, pts] of Object.entries(byDistrict)) {
    // A hull grown around its sites so that a district of one or two sites still shows.
    const cx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const ring = [];
    for (const [x, y] of pts) for (let i = 0; i < 8; i++) ring.push([x + 2.4 * u * Math.cos(i * Math.PI / 4), y + 2.4 * u * Math.sin(i * Math.PI / 4)]);
    el("polygon", { class: "district", points: hull(ring).map((p) => p.join(",")).join(" ") });
    const maxY2 = Math.max(...pts.map((p) => p[1]));
    const label = el("text", { class: "district-label", x: cx, y: Math.min(height - u, maxY2 + 5 * u) });
    label.textContent = name;
  }
  const marks = {};
  const r = 1.1 * u;
  for (const s of sites) {
    const [x, y] = at(s);
    const g = el("g", { transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` });
    // Each kind its own shape, so colour (status or AQI) never has to say what a site is:
    // an air station ●, a stack ▲ (a chimney's plume rising), an outfall ◆.
    const mark = s.kind === "air_station"
      ? el("circle", { r }, g)
      : s.kind === "stack"
        ? el("polygon", { points: `0,${-1.2 * r} ${r},${0.75 * r} ${-r},${0.75 * r}` }, g)
        : el("rect", { x: -0.8 * r, y: -0.8 * r, width: 1.6 * r, height: 1.6 * r, transform: "rotate(45)" }, g);
    mark.setAttribute("class", "site-mark");
    mark.dataset.site = s.id; mark.dataset.kind = s.kind; mark.dataset.status = "unknown";
    const title = document.createElementNS(NS, "title");
    title.textContent = `${s.name} (${s.id})`;
    mark.appendChild(title);
    if (onClick) mark.addEventListener("click", () => onClick(s));
    marks[s.id] = mark;
  }
  // Above every mark: each air station's AQI number, always; a site's name only while it
  // needs someone's eyes (paint() shows it).
  const labels = el("g", {});
  for (const s of sites) {
    const [x, y] = at(s);
    const label = el("text", { class: "site-label", x: x + 1.6 * u, y: y + 0.8 * u, visibility: "hidden" }, labels);
    label.textContent = s.name;
    marks[s.id].label = label;
    if (s.kind === "air_station") {
      const n = el("text", { class: "aqi-num", x: x - 1.6 * u, y: y + 0.8 * u }, labels);
      n.dataset.site = s.id;
      marks[s.id].number = n;
    }
  }
  return { marks, at };
}

// A site's colour: an air station's AQI category (HJ 633 Appendix A), an outfall's or a
// stack's status (a stack's "over" is its corrected value's). Only what changed is written:
// a wall repaints hundreds of sites a second.
function paint(mark, view) {
  const ds = mark.dataset;
  if (ds.status !== view.status) ds.status = view.status;
  let fill = COLOURS[view.status] || COLOURS.unknown;
  const air = ds.kind === "air_station";
  if (air && view.aqi && view.status !== "offline") fill = view.aqi.colour;
  if (mark.getAttribute("fill") !== fill) mark.setAttribute("fill", fill);
  const aqi = view.aqi ? String(view.aqi.aqi) : "";
  if (ds.aqi !== aqi) ds.aqi = aqi;
  if (mark.number) {
    // An offline station's last number is not the air now.
    const shown = view.aqi && view.status !== "offline" ? aqi : "–";
    if (mark.number.textContent !== shown) mark.number.textContent = shown;
  }
  const loud = ["over", "offline", "abnormal"].includes(view.status) ? "visible" : "hidden";
  if (mark.label && mark.label.getAttribute("visibility") !== loud) mark.label.setAttribute("visibility", loud);
}
