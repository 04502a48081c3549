// The wall: the whole city at a glance, no interaction needed.
"use strict";

const AQI_LEGEND = [["优", "#00E400"], ["良", "#FFFF00"], ["轻度污染", "#FF7E00"], ["中度污染", "#FF0000"], ["重度污染", "#99004C"], ["严重污染", "#7E0023"]];
let CITY = null, MARKS = {};

function legend() {
  const status = ["normal", "over", "abnormal", "offline", "maintenance", "unknown"]
    .map((s) => `<span><i style="background:${COLOURS[s]};transform:rotate(45deg)"></i>${esc(t(s))}</span>`).join("");
  const aqi = AQI_LEGEND.map(([n, c]) => `<span><i style="background:${c};border-radius:50%"></i>${n}</span>`).join("");
  // Outfalls and stacks share the status colours; each kind has its own shape on the map.
  document.getElementById("legend").innerHTML = `<div style="width:100%" class="dim"><span data-legend="outfall">◆ ${esc(t("outfalls"))}</span>
    · <span data-legend="stack">▲ ${esc(t("stacks"))}</span></div>${status}
    <div style="width:100%" class="dim" data-legend="air_station">● ${esc(t("air"))}</div>${aqi}`;
}

function caseTable(counts) {
  const states = ["reminded", "escalated", "acknowledged"];
  const names = Object.fromEntries(CITY.grids.map((g) => [g.id, g.name]));
  let rows = "";
  const total = { reminded: 0, escalated: 0, acknowledged: 0, overdue: 0 };
  for (const [grid, c] of Object.entries(counts.by_grid)) {
    for (const k of Object.keys(total)) total[k] += c[k];
    rows += `<tr data-grid="${esc(grid)}"><td>${esc(names[grid] || grid)}</td>${states.map((s) => `<td class="num">${c[s]}</td>`).join("")}
      <td class="num">${c.overdue ? `<span class="overdue">${c.overdue}</span>` : 0}</td></tr>`;
  }
  document.getElementById("cases").innerHTML = `<tr><th>${esc(t("grid"))}</th>${states.map((s) => `<th class="num">${esc(t(s))}</th>`).join("")}<th class="num">${esc(t("overdue"))}</th></tr>${rows}
    <tr><th>Σ</th>${states.map((s) => `<th class="num">${total[s]}</th>`).join("")}<th class="num">${total.overdue ? `<span class="overdue">${total.overdue}</span>` : 0}</th></tr>`;
}

function pulse(p) {
  document.getElementById("p-readings").textContent = p.readings_per_s.toFixed(1);
  document.getElementById("p-dead").textContent = p.dead_letters_per_s.toFixed(1);
  document.getElementById("p-age").textContent = p.bridge_age_s == null ? "–" : Math.max(0, p.bridge_age_s).toFixed(0);
  // Two clocks, each named: the readings' own (simulated in a demo) and the real one.
  document.getElementById("p-data").textContent = p.data_now ? when(p.data_now) : "–";
  document.getElementById("p-now").textContent = when(p.now);
  const behind = lag(p.data_now, p.now);
  document.getElementById("p-lag").textContent = behind ? `${t("data_lag")} ${behind}` : "";
}

// The city's transmission-validity rate over the last closed days (Σ有效/Σ应传 of every site)
// and the lowest sites; the server reads InfluxDB every few minutes, the wall asks every minute.
async function validity() {
  const { status, body } = await api("/api/validity");
  const err = document.getElementById("v-error");
  if (status !== 200) { err.textContent = `${status}: ${body.error || ""}`; return; }
  const days = body.days;
  document.getElementById("v-days").textContent = days.length ? `${t("closed_days")} ${days[0]} – ${days[days.length - 1].slice(5)}` : "";
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
    ? `<tr><th>${esc(t("lowest"))}</th><th class="num">${esc(t("tv_rate"))}</th><th class="num">${esc(t("t_rate"))}</th><th class="num">${esc(t("v_rate"))}</th></tr>${rows}`
    : "";
  // InfluxDB away: said, the last figures (and their days) kept.
  err.textContent = body.error || (days.length && !c.expected ? t("no_rate") : "");
}

async function load() {
  const { body } = await api("/api/city");
  CITY = body;
  showWho(body.me);
  const svg = document.getElementById("map");
  MARKS = drawMap(svg, body.sites, 1200, 1000, (s) => { location.href = "/desk?site=" + encodeURIComponent(s.id); }).marks;
  for (const [id, view] of Object.entries(body.state)) if (MARKS[id]) paint(MARKS[id], view);
  caseTable(body.cases);
  pulse(body.pulse);
  await validity();
  document.body.dataset.ready = "1";
}

headerBar("wall");
translate();
legend();
setInterval(validity, 60000);
load().then(() => live({
  site: (v) => { if (MARKS[v.id]) paint(MARKS[v.id], v); },
  cases: caseTable,
  pulse: pulse,
}, load));
