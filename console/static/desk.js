// The desk: one site's live values against its limits, its chart, its cases and their trail.
"use strict";

let CITY = null, SITE = null, DETAIL = null, POLLUTANT = null, CASE = null;

function siteList() {
  const byDistrict = {};
  for (const s of CITY.sites) (byDistrict[s.district] = byDistrict[s.district] || []).push(s);
  let html = "";
  for (const [d, sites] of Object.entries(byDistrict)) {
    html += `<div class="dim" style="margin-top:6px">${esc(d)}</div>`;
    for (const s of sites) {
      const v = CITY.state[s.id] || { status: "unknown" };
      html += `<div class="item${s.id === SITE ? " chosen" : ""}" data-pick="${esc(s.id)}"><span class="dot" style="background:${COLOURS[v.status]}"></span>${esc(s.name)}</div>`;
    }
  }
  const box = document.getElementById("sites");
  box.innerHTML = html;
  box.querySelectorAll("[data-pick]").forEach((e) => { e.onclick = () => pick(e.dataset.pick); });
}

function head() {
  const d = DETAIL;
  const aqi = d.aqi ? ` · AQI <b style="color:${d.aqi.colour}">${d.aqi.aqi}</b> ${esc(d.aqi.category_zh)}` : "";
  document.getElementById("head").innerHTML = `<h2>${esc(d.name)} <span class="dim">${esc(d.id)}</span>
    <span class="badge s-${d.status}" id="site-status" data-status="${d.status}">${esc(t(d.status))}</span></h2>
    <div class="dim">${esc(d.enterprise)} · ${esc(d.district)} · ${esc(d.grid)} · ${esc(d.standard)}${d.permit ? " · 排污许可证 " + esc(d.permit) : ""}${aqi}</div>
    <div class="dim">${esc(t("data_time"))}: ${esc(when(d.ts))}${stackHead(d)}</div>`;
}

const O2_CODE = "a19001";
const isStack = (d) => d.o2_reference != null;
const pct = (v, digits) => v == null ? "–" : `${digits == null ? v : v.toFixed(digits)}%`;

// A stack is judged at its reference oxygen: the head says it, with the O2 measured now.
function stackHead(d) {
  if (!isStack(d)) return "";
  const o2 = d.values[O2_CODE];
  return ` · ${esc(t("o2_reference"))} <b id="o2-reference">${esc(pct(d.o2_reference))}</b>` +
    ` · ${esc(t("o2_measured"))} <b>${esc(pct(o2 ? o2.value : null, 1))}</b>`;
}

// Why a stack's value has no corrected one, when it has a value to correct.
function unjudged(d, v) {
  if (v.unjudged === "high_o2") return `${t("high_o2")}（≥${d.high_o2}%）`;
  return v.unjudged ? t(v.unjudged) : "–";
}

// A stack's table: each concentration measured, corrected (the value judged), the CEMS's own
// corrected value, the O2 measured and the reference; then the gas's state, never corrected.
function stackValues(d) {
  const num = (v) => v == null ? "–" : v.toFixed(2);
  let rows = `<tr><th>${esc(t("pollutant"))}</th><th class="num">${esc(t("measured"))}</th><th class="num">${esc(t("corrected"))}</th>
    <th class="num">${esc(t("zs"))}</th><th class="num">${esc(t("o2_measured"))}</th><th class="num">${esc(t("o2_reference"))}</th>
    <th>${esc(t("flag"))}</th><th>${esc(t("limit"))}</th><th>${esc(t("source"))}</th></tr>`;
  for (const code of d.pollutants.filter((c) => !d.gas_state.includes(c))) {
    const v = d.values[code], lim = d.limits[code];
    const corrected = !v ? "–" : v.corrected != null ? num(v.corrected) : `<span class="dim">${esc(unjudged(d, v))}</span>`;
    rows += `<tr data-pollutant="${code}"><td>${esc(pollutantName(code))} <span class="dim">${code}${v && v.derived ? " · " + esc(t(v.derived)) : ""}</span></td>
      <td class="num measured">${v ? num(v.value) : "–"}</td>
      <td class="num corrected ${v && v.over ? "over-value" : ""}">${corrected}</td>
      <td class="num zs">${v ? num(v.zs) : "–"}</td><td class="num">${esc(pct(v ? v.o2 : null, 1))}</td>
      <td class="num">${esc(pct(d.o2_reference))}</td><td>${v ? esc(v.flag) : ""}</td>
      <td>${lim ? esc(lim.text + " " + lim.unit + " (" + lim.basis + ")") : "–"}</td><td class="dim">${lim ? esc(lim.source) : ""}</td></tr>`;
  }
  // The gas's state on one line: the table stays short enough for the chart below it.
  const state = d.gas_state.map((code) => {
    const v = d.values[code];
    const flag = v && v.flag !== "N" ? ` <b class="flag">${esc(v.flag)}</b>` : "";
    return `<span class="gas" data-pollutant="${code}">${esc(pollutantName(code))} <b>${v ? num(v.value) : "–"}</b> ${v ? esc(v.unit) : ""}${flag}</span>`;
  }).join(" · ");
  return rows + `<tr class="group"><td colspan="9"><span class="dim">${esc(t("gas_state"))}</span> ${state}</td></tr>`;
}

function values() {
  const d = DETAIL;
  if (isStack(d)) { document.getElementById("values").innerHTML = stackValues(d); findings(d); return; }
  let rows = `<tr><th>${esc(t("pollutant"))}</th><th class="num">${esc(t("value"))}</th><th>${esc(t("flag"))}</th><th>${esc(t("limit"))}</th><th>${esc(t("source"))}</th></tr>`;
  for (const code of d.pollutants) {
    const v = d.values[code], lim = d.limits[code];
    rows += `<tr data-pollutant="${code}"><td>${esc(pollutantName(code))} <span class="dim">${code}</span></td>
      <td class="num ${v && v.over ? "over-value" : ""}">${v ? v.value.toFixed(2) : "–"}</td><td>${v ? esc(v.flag) : ""}</td>
      <td>${lim ? esc(lim.text + " " + lim.unit + " (" + lim.basis + ")") : "–"}</td><td class="dim">${lim ? esc(lim.source) : ""}</td></tr>`;
  }
  document.getElementById("values").innerHTML = rows;
  findings(d);
}

function findings(d) {
  const f = d.findings.length ? d.findings.map((x) => `<li>${esc(said(x.rule_name))} · ${esc(said(x.detail))}</li>`).join("") : `<li class="dim">${esc(t("none"))}</li>`;
  document.getElementById("findings").innerHTML = `<h2 style="margin-top:10px">${esc(t("findings"))}</h2><ul>${f}</ul>`;
}

function chart() {
  const d = DETAIL;
  document.getElementById("tabs").innerHTML = d.pollutants.map((p) => `<button class="${p === POLLUTANT ? "chosen" : ""}" data-p="${p}">${esc(pollutantName(p))}</button>`).join("");
  document.querySelectorAll("#tabs button").forEach((b) => { b.onclick = () => { POLLUTANT = b.dataset.p; chart(); }; });
  const lim = d.limits[POLLUTANT], svg = document.getElementById("chart"), note = document.getElementById("chart-note");
  if (isStack(d) && !d.gas_state.includes(POLLUTANT)) {
    // Only the corrected series is held against the limit; the measured one is shown beside.
    const labels = { main: t("corrected_line"), measured: t("measured_line") };
    drawChart(svg, d.history_corrected[POLLUTANT] || [], lim, lim ? lim.unit : "", { measured: d.history[POLLUTANT] || [], labels });
    note.textContent = d.history_corrected_error || d.history_error || t("corrected_note");
    return;
  }
  drawChart(svg, d.history[POLLUTANT] || [], lim, lim ? lim.unit : "");
  note.textContent = d.history_error || "";
}

// The site's last closed days: 应传/实传/有效 summed over its devices and pollutants, and the
// rates of those sums; under 90 % in red (the server says which: ``low``).
function validityTable() {
  const v = DETAIL.validity;
  const cells = (r) => r.expected == null
    ? `<td class="num dim" colspan="6">${esc(t("no_rate"))}</td>`
    : `<td class="num">${r.expected}</td><td class="num">${r.received}</td><td class="num">${r.valid}</td>
      <td class="num">${ratePct(r.transmission_rate)}</td><td class="num">${ratePct(r.validity_rate)}</td>
      <td class="num tv ${r.low ? "over-value" : ""}">${ratePct(r.transmission_validity_rate)}</td>`;
  const head = ["expected", "sent", "valid", "t_rate", "v_rate", "tv_rate"].map((k) => `<th class="num">${esc(t(k))}</th>`).join("");
  document.getElementById("validity").innerHTML = `<tr><th>${esc(t("day"))}</th>${head}</tr>` +
    v.days.map((r) => `<tr data-day="${esc(r.day)}"><td title="${esc(r.day)}">${esc(r.day.slice(5))}</td>${cells(r)}</tr>`).join("") +
    `<tr class="total"><th>Σ</th>${cells(v.total)}</tr>`;
  document.getElementById("validity-error").textContent = v.error || "";
}

// What a case waits for, from the case itself: the rectify-by while reminded, the
// acknowledge-by while escalated (data time), and whether it has passed.
function due(c) {
  const at = c.status === "escalated" ? c.ack_due : c.status === "reminded" ? c.deadline : null;
  if (!at) return "";
  return `<span class="dim">${esc(t("deadline"))} ${esc(when(at))}</span>${c.overdue ? ` <span class="overdue">${esc(t("overdue"))}</span>` : ""}`;
}

function cases() {
  const rows = DETAIL.cases.map((c) => `<tr class="case-row" data-case="${esc(c.id)}"><td>${esc(c.pollutant ? pollutantName(c.pollutant) : c.rule)}<br><span class="dim">${esc(c.rule)}</span></td>
    <td><span class="badge s-${{ acknowledged: "maintenance", pending: "unknown" }[c.status] || "over"}">${esc(t(c.status))}</span></td>
    <td class="ack">${c.acknowledged_by ? esc(t("by") + " " + c.acknowledged_by) : ""}</td>
    <td class="due">${due(c)}</td></tr>`).join("");
  document.getElementById("site-cases").innerHTML = rows || `<tr><td class="dim">${esc(t("no_cases"))}</td></tr>`;
  document.querySelectorAll("[data-case]").forEach((r) => { r.onclick = () => trail(r.dataset.case); });
  if (!CASE && DETAIL.cases.length) trail(DETAIL.cases[0].id);
}

async function trail(caseId) {
  CASE = caseId;
  const { status, body } = await api(`/api/cases/${encodeURIComponent(caseId)}/trail`);
  const box = document.getElementById("trail");
  if (status !== 200) { box.innerHTML = `<li class="error">${esc(body.error)}</li>`; return; }
  box.innerHTML = `<li class="dim">${esc(body.id)}${body.overdue ? ` <span class="overdue">${esc(t("overdue"))}</span>` : ""} · ${esc(t("data_clock_note"))}</li>` +
    body.trail.map((e) => e.type === "event"
      ? `<li><b>${esc(t(e.kind))}</b> ${esc(when(e.at))} · ${esc(e.actor)} <span class="dim">${esc(said(e.detail))}</span></li>`
      : `<li>✉ ${esc(e.kind)} → ${esc(e.audience)} ${esc((e.recipients || []).join(", "))} · ${esc(when(e.at))}${e.deadline ? " · " + esc(t("deadline")) + " " + esc(when(e.deadline)) : ""}</li>`).join("");
}

async function pick(siteId) {
  SITE = siteId; CASE = null;
  history.replaceState(null, "", "/desk?site=" + encodeURIComponent(siteId));
  const { status, body } = await api("/api/sites/" + encodeURIComponent(siteId));
  if (status !== 200) { document.getElementById("head").innerHTML = `<p class="error">${esc(body.error)}</p>`; return; }
  DETAIL = body;
  // First what the site is most watched for: COD, PM2.5, or a stack's first limited value.
  const limited = body.pollutants.find((p) => body.limits[p]);
  if (!POLLUTANT || !body.pollutants.includes(POLLUTANT)) POLLUTANT = body.pollutants.includes("w01018") ? "w01018" : (body.pollutants.includes("a34004") ? "a34004" : (isStack(body) && limited) || body.pollutants[0]);
  siteList(); head(); values(); chart(); cases(); validityTable();
  if (!body.cases.length) document.getElementById("trail").innerHTML = "";
  document.body.dataset.ready = "1";
}

// A live reading of the chosen site: its values, and a new point on the chart.
function onSite(v) {
  CITY.state[v.id] = v;
  if (v.id !== SITE || !DETAIL) return;
  Object.assign(DETAIL, { status: v.status, ts: v.ts, aqi: v.aqi, values: v.values, findings: v.findings });
  const ms = v.ts ? Date.parse(v.ts) : null;
  const add = (history, code, value) => {
    const series = history[code] = history[code] || [];
    if (ms && (!series.length || series[series.length - 1][0] < ms)) series.push([ms, value]);
  };
  for (const [code, val] of Object.entries(v.values)) {
    if (!val.derived) add(DETAIL.history, code, val.value);  // measured: what the CEMS sent
    // A stack's corrected line goes on from its minute means with the live corrected values.
    if (val.corrected != null) add(DETAIL.history_corrected, code, val.corrected);
  }
  head(); values(); chart();
}

// The weekly settlement (周周清) of the caller's grids: by default the week of data time (the
// console picks it), or the one chosen with ‹ ›.
let WEEK = null, SHOWN_WEEK = null;
function monday(iso, days) {
  const d = new Date(iso + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}
async function weekly() {
  const { status, body } = await api("/api/weekly" + (WEEK ? "?week=" + encodeURIComponent(WEEK) : ""));
  const table = document.getElementById("weekly"), note = document.getElementById("weekly-note");
  if (status !== 200) { table.innerHTML = ""; note.textContent = `${status}: ${body.error || ""}`; return; }
  SHOWN_WEEK = body.week;
  document.getElementById("week-label").textContent = `${body.week} – ${monday(body.week, 6).slice(5)}`;
  const cols = ["opened", "escalated", "acknowledged", "closed"];
  let rows = `<tr><th>${esc(t("grid"))}</th>${cols.map((c) => `<th class="num">${esc(t(c))}</th>`).join("")}<th class="num">${esc(t("overdue"))}</th><th></th></tr>`;
  for (const g of body.grids) {
    const late = g.overdue.length;
    rows += `<tr data-week-grid="${esc(g.grid)}"><td>${esc(g.name)} <span class="dim">${esc(g.grid)}</span></td>
      ${cols.map((c) => `<td class="num">${g[c]}</td>`).join("")}
      <td class="num" title="${esc(g.overdue.join(", "))}">${late ? `<span class="overdue">${late}</span>` : 0}</td>
      <td>${g.settled ? `<span class="badge s-normal">${esc(t("settled"))}</span>` : `<span class="badge s-over">${esc(t("unsettled"))}</span>`}</td></tr>`;
  }
  table.innerHTML = rows;
  note.textContent = `${t("overdue")}: ${t("open_at_end")} · ${t("data_clock_note")}`;
}

// Dead letters since the console started: by reason and by source, the newest with their detail.
function dead(v) {
  document.getElementById("dead-since").textContent = `${t("since")} ${when(v.since)} · Σ ${v.total}`;
  const chips = (o) => Object.entries(o).map(([k, n]) => `<span class="chip" data-reason="${esc(k)}">${esc(k)} <b>${n}</b></span>`).join("");
  document.getElementById("dead-counts").innerHTML = v.total
    ? `<div>${chips(v.by_reason)}</div><div class="dim">${esc(t("by_source"))}: ${Object.entries(v.by_source).map(([k, n]) => `${esc(k)} ${n}`).join(" · ")}</div>`
    : `<p class="dim">${esc(t("no_dead"))}</p>`;
  document.getElementById("dead-latest").innerHTML = v.latest.length
    ? `<tr><th>${esc(t("received"))}</th><th>${esc(t("reason"))}</th><th>${esc(t("origin"))}</th><th>${esc(t("detail"))}</th></tr>` +
      v.latest.map((d) => `<tr class="dead-row"><td class="dim">${esc(new Date(d.received_at).toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }))}</td>
        <td>${esc(d.reason)}<br><span class="dim">${esc(d.source)}</span></td><td class="origin">${esc(d.origin)}</td><td class="detail">${esc(d.detail)}</td></tr>`).join("")
    : "";
}

let REFRESH = null, WEEKLY_SOON = null;
function onCase(turn) {
  clearTimeout(WEEKLY_SOON);  // a case moved: the week's counts may have too
  WEEKLY_SOON = setTimeout(weekly, 1000);
  if (turn.site !== SITE) return;
  clearTimeout(REFRESH);  // a burst of turns, one reload
  REFRESH = setTimeout(async () => {
    const { status, body } = await api("/api/sites/" + encodeURIComponent(SITE));
    if (status === 200) { DETAIL.cases = body.cases; cases(); if (CASE) trail(CASE); }
  }, 150);
}

async function load() {
  const { body } = await api("/api/city");
  CITY = body;
  POLLUTANT_NAMES = body.pollutants || {};
  showWho(body.me);
  siteList();
  weekly();
  api("/api/dead-letters").then(({ status, body }) => { if (status === 200) dead(body); });
  const wanted = new URLSearchParams(location.search).get("site") || SITE;
  if (wanted) await pick(wanted); else document.body.dataset.ready = "1";
}

headerBar("desk");
translate();
document.getElementById("week-prev").onclick = () => { WEEK = monday(SHOWN_WEEK, -7); weekly(); };
document.getElementById("week-next").onclick = () => { WEEK = monday(SHOWN_WEEK, 7); weekly(); };
setInterval(weekly, 30000);  // the week of data time moves on by itself
load().then(() => live({ site: onSite, case: onCase, dead: dead }, load));
