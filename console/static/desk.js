// The desk: one site's live values against its limits, its chart, its cases and their trail.
"use strict";

let CITY = null, SITE = null, DETAIL = null, POLLUTANT = null, CASE = null;
const NAMES = { w01018: "COD", w21003: "NH3-N", w21011: "TP", w21001: "TN", w00000: "流量 flow", w01001: "pH",
  a34004: "PM2.5", a34002: "PM10", a21026: "SO2", a21004: "NO2", a05024: "O3", a21005: "CO" };

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
    <div class="dim">${esc(t("data_time"))}: ${esc(when(d.ts))}</div>`;
}

function values() {
  const d = DETAIL;
  let rows = `<tr><th>${esc(t("pollutant"))}</th><th class="num">${esc(t("value"))}</th><th>${esc(t("flag"))}</th><th>${esc(t("limit"))}</th><th>${esc(t("source"))}</th></tr>`;
  for (const code of d.pollutants) {
    const v = d.values[code], lim = d.limits[code];
    rows += `<tr data-pollutant="${code}"><td>${esc(NAMES[code] || code)} <span class="dim">${code}</span></td>
      <td class="num ${v && v.over ? "over-value" : ""}">${v ? v.value.toFixed(2) : "–"}</td><td>${v ? esc(v.flag) : ""}</td>
      <td>${lim ? esc(lim.text + " " + lim.unit + " (" + lim.basis + ")") : "–"}</td><td class="dim">${lim ? esc(lim.source) : ""}</td></tr>`;
  }
  document.getElementById("values").innerHTML = rows;
  const f = d.findings.length ? d.findings.map((x) => `<li>${esc(x.rule)} · ${esc(x.detail)}</li>`).join("") : `<li class="dim">${esc(t("none"))}</li>`;
  document.getElementById("findings").innerHTML = `<h2 style="margin-top:10px">${esc(t("findings"))}</h2><ul>${f}</ul>`;
}

function chart() {
  const d = DETAIL;
  document.getElementById("tabs").innerHTML = d.pollutants.map((p) => `<button class="${p === POLLUTANT ? "chosen" : ""}" data-p="${p}">${esc(NAMES[p] || p)}</button>`).join("");
  document.querySelectorAll("#tabs button").forEach((b) => { b.onclick = () => { POLLUTANT = b.dataset.p; chart(); }; });
  const lim = d.limits[POLLUTANT];
  drawChart(document.getElementById("chart"), d.history[POLLUTANT] || [], lim, lim ? lim.unit : "");
  document.getElementById("chart-note").textContent = d.history_error || "";
}

function cases() {
  const rows = DETAIL.cases.map((c) => `<tr class="case-row" data-case="${esc(c.id)}"><td>${esc(NAMES[c.pollutant] || c.pollutant || c.rule)}<br><span class="dim">${esc(c.rule)}</span></td>
    <td><span class="badge s-${{ acknowledged: "maintenance", pending: "unknown" }[c.status] || "over"}">${esc(t(c.status))}</span></td>
    <td class="ack">${c.acknowledged_by ? esc(t("by") + " " + c.acknowledged_by) : ""}</td></tr>`).join("");
  document.getElementById("site-cases").innerHTML = rows || `<tr><td class="dim">${esc(t("no_cases"))}</td></tr>`;
  document.querySelectorAll("[data-case]").forEach((r) => { r.onclick = () => trail(r.dataset.case); });
  if (!CASE && DETAIL.cases.length) trail(DETAIL.cases[0].id);
}

async function trail(caseId) {
  CASE = caseId;
  const { status, body } = await api(`/api/cases/${encodeURIComponent(caseId)}/trail`);
  const box = document.getElementById("trail");
  if (status !== 200) { box.innerHTML = `<li class="error">${esc(body.error)}</li>`; return; }
  box.innerHTML = `<li class="dim">${esc(body.id)}${body.overdue ? ` <span class="overdue">${esc(t("overdue"))}</span>` : ""}</li>` +
    body.trail.map((e) => e.type === "event"
      ? `<li><b>${esc(t(e.kind))}</b> ${esc(when(e.at))} · ${esc(e.actor)} <span class="dim">${esc(e.detail)}</span></li>`
      : `<li>✉ ${esc(e.kind)} → ${esc(e.audience)} ${esc((e.recipients || []).join(", "))} · ${esc(when(e.at))}${e.deadline ? " · 期限 " + esc(when(e.deadline)) : ""}</li>`).join("");
}

async function pick(siteId) {
  SITE = siteId; CASE = null;
  history.replaceState(null, "", "/desk?site=" + encodeURIComponent(siteId));
  const { status, body } = await api("/api/sites/" + encodeURIComponent(siteId));
  if (status !== 200) { document.getElementById("head").innerHTML = `<p class="error">${esc(body.error)}</p>`; return; }
  DETAIL = body;
  if (!POLLUTANT || !body.pollutants.includes(POLLUTANT)) POLLUTANT = body.pollutants.includes("w01018") ? "w01018" : (body.pollutants.includes("a34004") ? "a34004" : body.pollutants[0]);
  siteList(); head(); values(); chart(); cases();
  if (!body.cases.length) document.getElementById("trail").innerHTML = "";
  document.body.dataset.ready = "1";
}

// A live reading of the chosen site: its values, and a new point on the chart.
function onSite(v) {
  CITY.state[v.id] = v;
  if (v.id !== SITE || !DETAIL) return;
  Object.assign(DETAIL, { status: v.status, ts: v.ts, aqi: v.aqi, values: v.values, findings: v.findings });
  const ms = v.ts ? Date.parse(v.ts) : null;
  for (const [code, val] of Object.entries(v.values)) {
    const series = DETAIL.history[code] = DETAIL.history[code] || [];
    if (ms && (!series.length || series[series.length - 1][0] < ms)) series.push([ms, val.value]);
  }
  head(); values(); chart();
}

let REFRESH = null;
function onCase(turn) {
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
  showWho(body.me);
  siteList();
  const wanted = new URLSearchParams(location.search).get("site") || SITE;
  if (wanted) await pick(wanted); else document.body.dataset.ready = "1";
}

headerBar("desk");
translate();
load().then(() => live({ site: onSite, case: onCase }, load));
