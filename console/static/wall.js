// The wall: the whole city at a glance from 5 m, no interaction needed. Live updates are
// kept and painted once per animation frame: 50 site updates a second cost one repaint.
"use strict";

Object.assign(WORDS, {
  city_aqi: ["全市 AQI", "City AQI"], city_state: ["全市站点状态", "Sites by status"],
  primary: ["首要污染物", "primary pollutant"], stations_range: ["各站", "stations"],
  no_aqi: ["暂无空气质量数据", "no air quality data"],
  today_alarms: ["今日报警", "Alarms today"], today_total: ["今日共", "today"],
  alarms_unread: ["未能读取报警：", "alarms not read: "],
  hour_0: ["0时", "00:00"], hour_6: ["6时", "06:00"], hour_12: ["12时", "12:00"], hour_18: ["18时", "18:00"],
  most_in_breach: ["超标报警最多企业", "Enterprises most in breach"], enterprise: ["企业", "Enterprise"],
  // The lowest sites' rates, headed in words short enough for a third of a wall.
  w_tv: ["传输有效率", "valid / owed"], w_t: ["传输率", "sent / owed"], w_v: ["有效率", "valid / sent"],
  open_all: ["在办", "open"], alarm_count: ["报警", "Alarms"], open_cases: ["在办", "Open cases"], no_breach: ["今日暂无", "none today"],
  aqi_excellent: ["优", "excellent"], aqi_good: ["良", "good"], aqi_lightly_polluted: ["轻度污染", "lightly polluted"],
  aqi_moderately_polluted: ["中度污染", "moderately polluted"], aqi_heavily_polluted: ["重度污染", "heavily polluted"],
  aqi_severely_polluted: ["严重污染", "severely polluted"],
});

// HJ 633 Appendix A's colours, and the ink that reads on each at 4.5:1 or better.
const AQI_LEGEND = [
  ["excellent", "#00E400", "#000"], ["good", "#FFFF00", "#000"], ["lightly_polluted", "#FF7E00", "#000"],
  ["moderately_polluted", "#FF0000", "#000"], ["heavily_polluted", "#99004C", "#fff"], ["severely_polluted", "#7E0023", "#fff"],
];
const AQI_INK = Object.fromEntries(AQI_LEGEND.map(([k, , ink]) => [k, ink]));
const STATUS_ORDER = ["normal", "over", "abnormal", "offline", "maintenance", "unknown"];
let CITY = null, MARKS = {}, STATE = {};
const PENDING = new Map();  // site id → its newest view, not yet painted
let frame = 0;

function legend() {
  const status = STATUS_ORDER.map((s) => `<span><i style="background:${COLOURS[s]};transform:rotate(45deg) scale(0.8)"></i>${esc(t(s))}</span>`).join("");
  const aqi = AQI_LEGEND.map(([k, c]) => `<span><i style="background:${c};border-radius:50%"></i>${esc(t("aqi_" + k))}</span>`).join("");
  // Outfalls and stacks share the status colours; each kind has its own shape on the map.
  document.getElementById("legend").innerHTML = `<span data-legend="outfall">◆ ${esc(t("outfalls"))}</span>
    <span data-legend="stack">▲ ${esc(t("stacks"))}</span>${status}
    <span data-legend="air_station">● ${esc(t("air"))}</span>${aqi}`;
}

// Sites by status: counted from the views the wall holds, after each repaint.
function statuses() {
  const n = Object.fromEntries(STATUS_ORDER.map((s) => [s, 0]));
  for (const v of Object.values(STATE)) n[v.status] = (n[v.status] || 0) + 1;
  const box = document.getElementById("statuses");
  if (!box.firstChild) {
    box.innerHTML = STATUS_ORDER.map((s) => `<div class="st" data-status="${s}"><i style="background:${COLOURS[s]}"></i><span>${esc(t(s))}</span><b>0</b></div>`).join("");
  }
  for (const s of STATUS_ORDER) {
    const b = box.querySelector(`[data-status="${s}"] b`);
    if (b.textContent !== String(n[s])) b.textContent = n[s];
  }
}

// The city's AQI from the city-mean concentrations (console/wall_api.py), not a mean of AQIs.
async function cityAqi() {
  const { status, body } = await api("/api/wall");
  if (status !== 200) return;
  const a = body.aqi, box = document.getElementById("city-aqi");
  const num = document.getElementById("city-aqi-num"), cat = document.getElementById("city-aqi-cat");
  const sub = document.getElementById("city-aqi-primary");
  if (!a) {
    num.textContent = "–"; cat.textContent = ""; box.style.background = ""; box.style.color = "";
    sub.textContent = t("no_aqi"); box.dataset.aqi = "";
    return;
  }
  box.dataset.aqi = a.aqi;
  num.textContent = a.aqi;
  cat.textContent = t("aqi_" + a.category);
  box.style.background = a.colour; box.style.color = AQI_INK[a.category] || "#000";
  const primary = a.primary.length ? `${t("primary")} ${a.primary.map(pollutantName).join("、")}` : "";
  const range = a.station_min != null ? `${t("stations_range")} ${a.station_min}–${a.station_max}` : "";
  sub.textContent = [primary, range].filter(Boolean).join(" · ");
}

// Open cases by grid: all open (the enterprise reminded, the officers told, acknowledged),
// those with the officers, and the overdue; three numbers that read from 5 m in any language.
function caseTable(counts) {
  const names = Object.fromEntries(CITY.grids.map((g) => [g.id, g.name]));
  const cols = (c) => [c.reminded + c.escalated + c.acknowledged, c.escalated, c.overdue];
  const total = [0, 0, 0];
  let rows = "";
  for (const [grid, c] of Object.entries(counts.by_grid)) {
    const n = cols(c);
    n.forEach((v, i) => { total[i] += v; });
    rows += `<tr data-grid="${esc(grid)}"><td>${esc(names[grid] || grid)}</td><td class="num">${n[0]}</td>
      <td class="num">${n[1]}</td><td class="num">${n[2] ? `<span class="overdue">${n[2]}</span>` : 0}</td></tr>`;
  }
  const head = ["grid", "open_all", "escalated", "overdue"].map((k, i) => `<th${i ? ' class="num"' : ""}>${esc(t(k))}</th>`).join("");
  document.getElementById("cases").innerHTML = `<tr>${head}</tr>${rows}
    <tr class="total"><th>Σ</th><th class="num">${total[0]}</th><th class="num">${total[1]}</th>
    <th class="num">${total[2] ? `<span class="overdue">${total[2]}</span>` : 0}</th></tr>`;
}

let DATA_NOW = null;  // the newest data time heard (the pulse's)
function pulse(p) {
  // Data time (simulated in a demo) named as such, and how far it is behind now.
  DATA_NOW = p.data_now || DATA_NOW;
  document.getElementById("p-data").textContent = p.data_now ? when(p.data_now) : "–";
  const behind = lag(p.data_now, p.now);
  document.getElementById("p-lag").textContent = behind ? `${t("data_lag")} ${behind}` : "";
}

// /api/alarms's charts: today's alarms hour by hour, and the enterprises most in breach.
// alarms.js calls it after each of its loads; without alarms.js the wall asks itself.
function onAlarmsView(view) {
  document.getElementById("alarms-error").textContent = "";
  const hours = (view.today && view.today.hours) || [];
  const top = Math.max(1, ...hours);
  const current = view.today && view.today.current_hour != null ? view.today.current_hour : nowHour(view.today);
  document.getElementById("hours").innerHTML = hours.map((n, h) =>
    `<i data-hour="${h}" data-count="${n}" class="${h === current ? "now" : ""}" style="height:${(100 * n / top).toFixed(1)}%"></i>`).join("");
  document.getElementById("hours-axis").innerHTML = ["hour_0", "hour_6", "hour_12", "hour_18"].map((k) => `<span>${esc(t(k))}</span>`).join("");
  const total = hours.reduce((a, b) => a + b, 0);
  document.getElementById("today-total").textContent = view.today ? `${view.today.day.slice(5)} · ${t("today_total")} ${total}` : "";
  const rows = (view.most_in_breach || []).map((e) => `<tr data-enterprise="${esc(e.enterprise)}"><td>${esc(e.name)}</td>
    <td class="num">${e.alarms}</td><td class="num">${e.open_cases}</td></tr>`).join("");
  document.getElementById("breach").innerHTML = rows
    ? `<tr><th>${esc(t("enterprise"))}</th><th class="num">${esc(t("alarm_count"))}</th><th class="num">${esc(t("open_cases"))}</th></tr>${rows}`
    : `<tr><td class="dim">${esc(t("no_breach"))}</td></tr>`;
}
// The hour of data time in China today, if the day shown is data time's day.
function nowHour(today) {
  if (!DATA_NOW || !today) return -1;
  const china = new Date(Date.parse(DATA_NOW) + 8 * 3600e3).toISOString();
  return china.slice(0, 10) === today.day ? Number(china.slice(11, 13)) : -1;
}
async function alarmsView() {
  if (window.Alarms) return window.Alarms.reload();
  const { status, body } = await api("/api/alarms");
  if (status === 200) onAlarmsView(body);
  else document.getElementById("alarms-error").textContent = `${t("alarms_unread")}${status}`;
}

// The city's transmission-validity rate over the last closed days (Σ有效/Σ应传 of every site)
// and the lowest sites; the server reads InfluxDB every few minutes, the wall asks every minute.
async function validity() {
  const { status, body } = await api("/api/validity");
  const err = document.getElementById("v-error");
  if (status !== 200) { err.textContent = `${status}: ${said(body.error) || ""}`; return; }
  const days = body.days;
  document.getElementById("v-days").textContent = days.length ? `${t("closed_days")} ${days[0].slice(5)} – ${days[days.length - 1].slice(5)}` : "";
  const c = body.city, city = document.getElementById("v-city");
  city.textContent = ratePct(c.transmission_validity_rate);
  city.className = c.low ? "over-value" : "";
  city.dataset.rate = c.transmission_validity_rate ?? "";
  document.getElementById("v-city-sub").textContent = c.expected
    ? `${t("t_rate")} ${ratePct(c.transmission_rate)} · ${t("v_rate")} ${ratePct(c.validity_rate)} · ${t("valid")} ${c.valid} / ${t("expected")} ${c.expected}` : "";
  const rows = body.lowest.map((s) => `<tr data-site="${esc(s.site)}"><td>${esc(s.name)}</td>
    <td class="num tv ${s.low ? "over-value" : ""}">${ratePct(s.transmission_validity_rate)}</td>
    <td class="num">${ratePct(s.transmission_rate)}</td><td class="num">${ratePct(s.validity_rate)}</td></tr>`).join("");
  document.getElementById("v-lowest").innerHTML = rows
    ? `<tr><th>${esc(t("lowest"))}</th><th class="num">${esc(t("w_tv"))}</th><th class="num">${esc(t("w_t"))}</th><th class="num">${esc(t("w_v"))}</th></tr>${rows}`
    : "";
  // InfluxDB away: said, the last figures (and their days) kept.
  err.textContent = said(body.error) || (days.length && !c.expected ? t("no_rate") : "");
}

// The map in the svg's own pixels, so marks and numbers keep the wall's sizes on any screen.
function drawCity() {
  const svg = document.getElementById("map");
  const box = svg.getBoundingClientRect();
  const unit = parseFloat(getComputedStyle(document.body).getPropertyValue("font-size")) / 2.3;
  MARKS = drawMap(svg, CITY.sites, Math.max(200, box.width), Math.max(200, box.height),
    (s) => { location.href = "/desk?site=" + encodeURIComponent(s.id); }, unit).marks;
  for (const [id, view] of Object.entries(STATE)) if (MARKS[id]) paint(MARKS[id], view);
}

// A site's update: kept, and painted with the others of the same frame.
function onSite(view) {
  PENDING.set(view.id, view);
  if (!frame) frame = requestAnimationFrame(repaint);
}
function repaint() {
  frame = 0;
  for (const [id, view] of PENDING) {
    STATE[id] = view;
    if (MARKS[id]) paint(MARKS[id], view);
  }
  const n = PENDING.size;
  PENDING.clear();
  statuses();
  document.body.dataset.painted = String(Number(document.body.dataset.painted || 0) + n);
}

async function load() {
  const { body } = await api("/api/city");
  CITY = body;
  learnNames(body);
  showWho(body.me);
  STATE = Object.assign({}, body.state);
  PENDING.clear();
  statuses();  // first: the map takes the room left
  drawCity();
  caseTable(body.cases);
  pulse(body.pulse);
  await Promise.all([validity(), cityAqi()]);
  document.body.dataset.role = body.me.role;
  document.body.dataset.ready = "1";
}

headerBar("wall");
translate();
legend();
setInterval(validity, 60000);
setInterval(cityAqi, 10000);
setInterval(alarmsView, 300000);  // today's hours move on even when nothing rings
// Drawn again in its new pixels when its room changes (another screen, a panel that grew).
let resized = 0;
new ResizeObserver(() => {
  clearTimeout(resized);
  resized = setTimeout(() => { if (CITY) drawCity(); }, 100);
}).observe(document.getElementById("map"));
load().then(() => {
  if (window.Alarms) window.Alarms.mount(document.getElementById("alarms"), { canSilence: CITY.me.role !== "kiosk" });
  else alarmsView();
  live({
    site: onSite,
    cases: caseTable,
    pulse: pulse,
    alarm: (msg) => { if (window.Alarms) window.Alarms.onAlarm(msg); else alarmsView(); },
  }, () => { load(); if (window.Alarms) window.Alarms.reload(); });
});
