// The desk: the city's sites (searched and filtered, their dots live), the city's queue of open
// cases and its alarms, one site's live values against its limits, its chart with the means it
// is judged on, its cases and their trail, and an operator's acts on a case (督办, 改派, 备注).
"use strict";

Object.assign(WORDS, {
  search: ["搜索站点名称、编号、企业", "search name, id or enterprise"], no_match: ["无匹配站点", "no site matches"],
  all_statuses: ["全部状态", "every status"], all_grids: ["全部网格", "every grid"], all_kinds: ["全部类型", "every kind"],
  kind_outfall: ["废水排放口", "outfalls"], kind_stack: ["废气排放口", "stacks"], kind_air_station: ["空气站", "air stations"],
  queue: ["全市待办案件", "City queue of open cases"], queue_overdue: ["超期", "overdue"],
  supervised_due: ["督办期限", "supervised, due"], permit: ["排污许可证", "permit"],
  supervise: ["督办", "Supervise"], reassign: ["改派", "Reassign"], comment: ["备注", "Comment"],
  note: ["督办意见", "What must be done"], new_deadline: ["新期限（北京时间）", "New deadline (China time)"],
  to_grid: ["转至网格", "To grid"], reassign_note: ["改派说明", "Why"], comment_text: ["备注内容", "Comment"],
  need_note: ["请填写督办意见", "write what must be done"], need_deadline: ["请选择新期限", "choose a deadline"],
  need_grid: ["请选择转至的网格", "choose a grid"], need_text: ["请填写备注内容", "write a comment"],
  sending: ["正在提交…", "sending…"], sent_ok: ["已提交，案件轨迹将显示此操作", "sent: the trail will show it"],
  err_network: ["网络中断，未能提交，请重试", "not sent (network): try again"],
  photo: ["现场照片", "photo"], location: ["核查位置", "location"], visited_at: ["核查时间", "visited"],
  trail_deadline: ["新期限", "new deadline"], trail_grid: ["转至", "to"],
  export_csv: ["导出 CSV", "Export CSV"], print: ["打印", "Print"], printed_at: ["打印时间", "printed"],
  history_down: ["历史数据暂时无法读取（InfluxDB）", "history not readable now (InfluxDB)"],
  means_note: ["粗线为判定所用的均值，对照其限值", "bold: the means judged, against their limit"],
  weekly_down: ["周周清暂时无法读取", "the weekly settlement is not readable now"],
});

const OPEN = ["reminded", "escalated", "acknowledged"];
const KINDS = ["outfall", "stack", "air_station"];
const STATUS_ORDER = ["over", "offline", "abnormal", "maintenance", "normal", "unknown"];
// The chart's fixed window: a stack is judged on hourly means (6 h shows several); an outfall's
// and an air station's daily means need yesterday whole beside today.
const CHART_HOURS = { stack: 6 };
const CHART_HOURS_DEFAULT = 48;
const SERIES_MAX = 4000;  // live points kept per series at most, whatever the window holds

let CITY = null, SITE = null, DETAIL = null, POLLUTANT = null, CASE = null, MEANS = null, DATA_NOW = null;
const CASE_ROWS = new Map();  // case id → its latest row from the case API (the queue's or the site's)
const FILTER = { q: "", status: "", grid: "", kind: "" };

const enc = encodeURIComponent;
const unitText = (u) => u && u !== "dimensionless" ? u : "";
function gridName(id) { const g = CITY && CITY.grids.find((x) => x.id === id); return g ? g.name : id || ""; }
function siteOf(id) { return CITY && CITY.sites.find((s) => s.id === id); }

// A refusal in the page's language (common.js refusalText); the API's own words in a title.
function refusalHtml(status, body, cls) {
  return `<span class="${cls || "error"}" title="${esc(body && body.error)}">${esc(refusalText(status, body))}</span>`;
}

// -- the sites: search, filters, live dots -----------------------------------------------------

function siteMatches(s) {
  const v = CITY.state[s.id] || { status: "unknown" };
  if (FILTER.status && v.status !== FILTER.status) return false;
  if (FILTER.grid && s.grid !== FILTER.grid) return false;
  if (FILTER.kind && s.kind !== FILTER.kind) return false;
  const q = FILTER.q.trim().toLowerCase();
  return !q || [s.name, s.id, s.enterprise].some((x) => String(x || "").toLowerCase().includes(q));
}

function siteList() {
  const shown = CITY.sites.filter(siteMatches);
  const byDistrict = {};
  for (const s of shown) (byDistrict[s.district] = byDistrict[s.district] || []).push(s);
  let html = "";
  for (const [d, sites] of Object.entries(byDistrict)) {
    html += `<div class="dim" style="margin-top:6px">${esc(d)}</div>`;
    for (const s of sites) {
      const v = CITY.state[s.id] || { status: "unknown" };
      html += `<div class="item${s.id === SITE ? " chosen" : ""}" data-pick="${esc(s.id)}" data-kind="${esc(s.kind)}" data-grid="${esc(s.grid)}">` +
        `<span class="dot" data-status="${esc(v.status)}" title="${esc(t(v.status))}" style="background:${COLOURS[v.status]}"></span>${esc(s.name)}</div>`;
    }
  }
  const box = document.getElementById("sites");
  box.innerHTML = html || `<p class="dim empty">${esc(t("no_match"))}</p>`;
  box.querySelectorAll("[data-pick]").forEach((e) => { e.onclick = () => pick(e.dataset.pick); });
  document.getElementById("site-count").textContent = `${shown.length}/${CITY.sites.length}`;
}

function filters() {
  const options = (all, pairs) => `<option value="">${esc(t(all))}</option>` + pairs.map(([v, text]) => `<option value="${esc(v)}">${esc(text)}</option>`).join("");
  const status = document.getElementById("filter-status"), grid = document.getElementById("filter-grid"), kind = document.getElementById("filter-kind");
  status.innerHTML = options("all_statuses", STATUS_ORDER.map((s) => [s, t(s)]));
  grid.innerHTML = options("all_grids", CITY.grids.map((g) => [g.id, g.name]));
  kind.innerHTML = options("all_kinds", KINDS.filter((k) => CITY.sites.some((s) => s.kind === k)).map((k) => [k, t("kind_" + k)]));
  status.value = FILTER.status; grid.value = FILTER.grid; kind.value = FILTER.kind;
  const search = document.getElementById("site-search");
  search.placeholder = t("search");
  search.value = FILTER.q;
  search.oninput = () => { FILTER.q = search.value; siteList(); };
  status.onchange = () => { FILTER.status = status.value; siteList(); };
  grid.onchange = () => { FILTER.grid = grid.value; siteList(); };
  kind.onchange = () => { FILTER.kind = kind.value; siteList(); };
}

// A live status repaints its dot; under a status filter the site may join or leave the list.
let LIST_SOON = null;
function repaintDot(v) {
  const item = document.querySelector(`#sites [data-pick="${CSS.escape(v.id)}"]`);
  if (item) {
    const dot = item.querySelector(".dot");
    dot.style.background = COLOURS[v.status]; dot.dataset.status = v.status; dot.title = t(v.status);
  }
  if (FILTER.status && !!item !== (v.status === FILTER.status)) {
    clearTimeout(LIST_SOON);
    LIST_SOON = setTimeout(siteList, 300);
  }
}

// -- the city's queue of open cases -------------------------------------------------------------

// A case the officers were pressed on (督办) is late once that deadline passes in data time.
function late(c) {
  return !!c.overdue || (!!c.supervised_due && !!DATA_NOW && Date.parse(c.supervised_due) < Date.parse(DATA_NOW));
}
function dueAt(c) { return c.status === "escalated" ? c.ack_due : c.status === "reminded" ? c.deadline : null; }
function dueMs(c) {
  const all = [dueAt(c), c.supervised_due].filter(Boolean).map(Date.parse);
  return all.length ? Math.min(...all) : Infinity;
}

// What a case waits for, from the case itself: the rectify-by while reminded, the
// acknowledge-by while escalated (data time), a 督办's deadline, and whether one has passed.
function due(c) {
  const parts = [], at = dueAt(c);
  if (at) parts.push(`<span class="dim">${esc(t("deadline"))} ${esc(when(at))}</span>`);
  if (c.supervised_due) parts.push(`<span class="dim">${esc(t("supervised_due"))} ${esc(when(c.supervised_due))}</span>`);
  if (late(c)) parts.push(`<span class="overdue">${esc(t("overdue"))}</span>`);
  return parts.join(" ");
}
function badge(status) {
  return `<span class="badge s-${{ acknowledged: "maintenance", pending: "unknown" }[status] || "over"}">${esc(named("case_status", status))}</span>`;
}
function what(c) { return c.pollutant ? pollutantName(c.pollutant) : named("rules", c.rule); }

async function queue() {
  const { status, body } = await api("/api/cases");
  const error = document.getElementById("queue-error");
  if (status !== 200) { error.innerHTML = refusalHtml(status, body); return; }
  error.innerHTML = "";
  const rows = (body.cases || []).filter((c) => OPEN.includes(c.status));
  for (const c of rows) CASE_ROWS.set(c.id, c);
  rows.sort((a, b) => (late(b) - late(a)) || (dueMs(a) - dueMs(b)) || (Date.parse(a.first_seen) - Date.parse(b.first_seen)));
  const html = rows.map((c) => `<tr class="queue-row${late(c) ? " is-overdue" : ""}${c.id === CASE ? " chosen" : ""}" data-case="${esc(c.id)}" data-site="${esc(c.site)}" data-overdue="${late(c) ? 1 : 0}">
    <td>${esc(c.site_name || (siteOf(c.site) || {}).name || c.site)}<br><span class="dim">${esc(gridName(c.grid || (siteOf(c.site) || {}).grid))}</span></td>
    <td>${esc(what(c))}<br><span class="dim">${esc(named("rules", c.rule))}</span></td>
    <td>${badge(c.status)}</td><td class="due">${due(c)}</td></tr>`).join("");
  document.getElementById("queue").innerHTML = html || `<tr><td class="dim">${esc(t("no_cases"))}</td></tr>`;
  const overdue = rows.filter(late).length;
  document.getElementById("queue-count").textContent = `${rows.length}${overdue ? ` · ${t("queue_overdue")} ${overdue}` : ""}`;
  document.querySelectorAll("#queue [data-case]").forEach((r) => { r.onclick = () => openCase(r.dataset.site, r.dataset.case); });
}
let QUEUE_SOON = null;
function queueSoon() { clearTimeout(QUEUE_SOON); QUEUE_SOON = setTimeout(queue, 500); }

async function openCase(siteId, caseId) {
  if (siteId !== SITE || !DETAIL) { await pick(siteId, caseId); return; }
  await trail(caseId);
}

function markChosen() {
  document.querySelectorAll("[data-case]").forEach((r) => r.classList.toggle("chosen", r.dataset.case === CASE));
}

// -- one site ------------------------------------------------------------------------------------

function head() {
  const d = DETAIL;
  const category = d.aqi ? (d.aqi.category_said ? said(d.aqi.category_said) : LANG === "zh" ? d.aqi.category_zh : "") : "";
  const aqi = d.aqi ? ` · AQI <b style="color:${d.aqi.colour}">${d.aqi.aqi}</b> ${esc(category)}` : "";
  document.getElementById("head").innerHTML = `<h2>${esc(d.name)} <span class="dim">${esc(d.id)}</span>
    <span class="badge s-${d.status}" id="site-status" data-status="${d.status}">${esc(t(d.status))}</span></h2>
    <div class="dim">${esc(d.enterprise)} · ${esc(d.district)} · ${esc(gridName(d.grid))} · ${esc(standardText(d))}${d.permit ? ` · ${esc(t("permit"))} ${esc(d.permit)}` : ""}${aqi}</div>
    <div class="dim">${esc(t("data_time"))}${colon()}${esc(when(d.ts))}${stackHead(d)}</div>`;
}

// The site's standard and class as the page's language names it ("GB 8978-1996 一级标准").
function standardText(d) { return said(d.standard_said) || d.standard || ""; }

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

// A limit as officers write it (the server's words, "≤ 80 mg/L（日均值）"), and where it comes from.
function limitText(lim) { return said(lim.said); }
function limitSource(lim) { return said(lim.source_said); }
function flagText(v) { return v ? named("flags", v.flag) : ""; }

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
      <td class="num">${esc(pct(d.o2_reference))}</td><td>${esc(flagText(v))}</td>
      <td>${lim ? esc(limitText(lim)) : "–"}</td><td class="dim">${lim ? esc(limitSource(lim)) : ""}</td></tr>`;
  }
  // The gas's state on one line: the table stays short enough for the chart below it.
  const state = d.gas_state.map((code) => {
    const v = d.values[code];
    const flag = v && v.flag !== "N" ? ` <b class="flag">${esc(flagText(v))}</b>` : "";
    return `<span class="gas" data-pollutant="${code}">${esc(pollutantName(code))} <b>${v ? num(v.value) : "–"}</b> ${v ? esc(unitText(v.unit)) : ""}${flag}</span>`;
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
      <td class="num ${v && v.over ? "over-value" : ""}">${v ? v.value.toFixed(2) : "–"}</td><td>${esc(flagText(v))}</td>
      <td>${lim ? esc(limitText(lim)) : "–"}</td><td class="dim">${lim ? esc(limitSource(lim)) : ""}</td></tr>`;
  }
  document.getElementById("values").innerHTML = rows;
  findings(d);
}

function findings(d) {
  const f = d.findings.length ? d.findings.map((x) => `<li>${esc(said(x.rule_name))} · ${esc(said(x.detail))}</li>`).join("") : `<li class="dim">${esc(t("none"))}</li>`;
  document.getElementById("findings").innerHTML = `<h2 style="margin-top:10px">${esc(t("findings"))}</h2><ul>${f}</ul>`;
}

// -- the chart: a fixed window of time ------------------------------------------------------------

function chartHours() { return CHART_HOURS[DETAIL ? DETAIL.kind : ""] || CHART_HOURS_DEFAULT; }
function chartWindow() {
  const series = Object.values(DETAIL.history || {}).concat(Object.values(DETAIL.history_corrected || {}));
  const newest = Math.max(DETAIL.ts ? Date.parse(DETAIL.ts) : 0, ...series.map((s) => s.length ? s[s.length - 1][0] : 0));
  const end = newest || Date.now();
  return [end - chartHours() * 3600e3, end];
}
// Points older than the window go, and a series never holds more than SERIES_MAX.
function trim(series, t0) {
  let i = 0;
  while (i < series.length && series[i][0] < t0) i++;
  if (series.length - i > SERIES_MAX) i = series.length - SERIES_MAX;
  if (i) series.splice(0, i);
}

function chart() {
  const d = DETAIL;
  document.getElementById("tabs").innerHTML = d.pollutants.map((p) => `<button class="${p === POLLUTANT ? "chosen" : ""}" data-p="${p}">${esc(pollutantName(p))}</button>`).join("");
  document.querySelectorAll("#tabs button").forEach((b) => { b.onclick = () => { POLLUTANT = b.dataset.p; chart(); }; });
  const svg = document.getElementById("chart"), note = document.getElementById("chart-note");
  // Each limit of the pollutant against the mean it is judged on (an 8-hour mean is not stored).
  const one = d.limits[POLLUTANT];
  const limits = ((MEANS && MEANS.limits[POLLUTANT]) || (one ? [one] : [])).filter((l) => l.basis === "1h" || l.basis === "24h");
  const means = MEANS ? { hour: MEANS.hour[POLLUTANT] || [], day: MEANS.day[POLLUTANT] || [] } : {};
  const unit = unitText(limits.length ? limits[0].unit : (d.values[POLLUTANT] || {}).unit);
  const [t0, t1] = chartWindow();
  const v = d.values[POLLUTANT];
  const extra = { window: [t0, t1], means, limits, over: v ? !!v.over : undefined };
  const hours = LANG === "zh" ? `近${chartHours()}小时` : `last ${chartHours()} h`;
  const parts = [hours, t("means_note")];
  let main = d.history[POLLUTANT] || [];
  if (isStack(d) && !d.gas_state.includes(POLLUTANT)) {
    // Only the corrected series is held against the limit; the measured one is shown beside.
    extra.labels = { main: t("corrected_line"), measured: t("measured_line") };
    extra.measured = d.history[POLLUTANT] || [];
    main = d.history_corrected[POLLUTANT] || [];
    parts.push(t("corrected_note"));
  }
  for (const s of [main, extra.measured || []]) trim(s, t0);
  drawChart(svg, main, null, unit, extra);
  const errors = [d.history_error, d.history_corrected_error, MEANS && MEANS.error].filter(Boolean);
  if (errors.length) parts.push(t("history_down"));
  note.textContent = parts.join(" · ");
  note.title = errors.join("\n");
}

async function loadMeans() {
  if (!SITE) return;
  const site = SITE;
  const { status, body } = await api(`/api/sites/${enc(site)}/means?hours=${chartHours()}`);
  if (site !== SITE) return;
  MEANS = status === 200 ? body : null;
  if (DETAIL) chart();
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
  const error = document.getElementById("validity-error");
  error.textContent = v.error ? t("history_down") : "";
  error.title = v.error || "";
}

// -- the site's cases, a case's trail, acting on it -----------------------------------------------

function cases() {
  for (const c of DETAIL.cases) CASE_ROWS.set(c.id, c);
  const rows = DETAIL.cases.map((c) => `<tr class="case-row${c.id === CASE ? " chosen" : ""}" data-case="${esc(c.id)}"><td>${esc(what(c))}<br><span class="dim">${esc(named("rules", c.rule))}</span></td>
    <td>${badge(c.status)}</td>
    <td class="ack">${c.acknowledged_by ? esc(t("by") + " " + c.acknowledged_by) : ""}</td>
    <td class="due">${due(c)}</td></tr>`).join("");
  document.getElementById("site-cases").innerHTML = rows || `<tr><td class="dim">${esc(t("no_cases"))}</td></tr>`;
  document.querySelectorAll("#site-cases [data-case]").forEach((r) => { r.onclick = () => trail(r.dataset.case); });
  if (CASE) trail(CASE); else if (DETAIL.cases.length) trail(DETAIL.cases[0].id);
}

function actorName(e) {
  if (e.actor_said) return said(e.actor_said);
  const [role, name] = String(e.actor || "").split(":");
  return name && NAMES.roles && NAMES.roles[role] ? `${named("roles", role)} ${name}` : named("roles", e.actor);
}

// What an act carries beside its words: the server's words say a 督办's note and deadline and
// a visit's place and time (an older server's rows have none: said here); the grid a case went
// to by its name; a visit's photos as thumbnails, through the console.
function extras(e, site) {
  const detail = said(e.detail);
  let html = "";
  if (e.note && !detail.includes(e.note)) html += `<div class="note">${esc(e.note)}</div>`;
  const line = [];
  if (e.grid && !detail.includes(gridName(e.grid))) line.push(`${t("trail_grid")} ${gridName(e.grid)}`);
  if (!detail) {
    if (e.kind === "supervised" && e.deadline) line.push(`${t("trail_deadline")} ${when(e.deadline)}`);
    if (e.visited_at) line.push(`${t("visited_at")} ${when(e.visited_at)}`);
    if (e.location) {
      const l = e.location;
      line.push(`${t("location")} ${Number(l.lat).toFixed(5)}, ${Number(l.lon).toFixed(5)}${l.accuracy_m != null ? ` (±${Math.round(l.accuracy_m)} m)` : ""}`);
    }
  }
  if (line.length) html += `<div class="visit dim">${esc(line.join(" · "))}</div>`;
  if (e.photos && e.photos.length) {
    html += `<div class="photos">${e.photos.map((sha) => {
      const path = esc(`${enc(sha)}?site=${enc(site)}`);  // the PHONE's proxy of the case API's photo
      return `<a href="/api/photos/${path}" target="_blank" rel="noopener" data-photo="${esc(sha)}"><img class="thumb" src="/api/photos/${path}" alt="${esc(t("photo"))}" loading="lazy"></a>`;
    }).join("")}</div>`;
  }
  return html;
}

function trailRow(e, site) {
  if (e.type === "event") {
    return `<li data-kind="${esc(e.kind)}"><b>${esc(named("event_kinds", e.kind))}</b> ${esc(when(e.at))} · ${esc(actorName(e))} <span class="dim">${esc(said(e.detail))}</span>${extras(e, site)}</li>`;
  }
  const to = (e.recipients || []).join(", ");
  return `<li data-kind="notification">✉ ${esc(named("steps", e.kind))} → ${esc(named("audiences", e.audience))} ${esc(to)} · ${esc(when(e.at))}${e.deadline ? " · " + esc(t("deadline")) + " " + esc(when(e.deadline)) : ""}</li>`;
}

async function trail(caseId) {
  CASE = caseId;
  markChosen();
  const { status, body } = await api(`/api/cases/${enc(caseId)}/trail`);
  if (CASE !== caseId) return;  // another case was chosen meanwhile
  const box = document.getElementById("trail");
  if (status !== 200) { box.innerHTML = `<li>${refusalHtml(status, body)}</li>`; actions(null); return; }
  box.innerHTML = `<li class="dim" data-trail="${esc(body.id)}">${esc(body.id)}${body.overdue ? ` <span class="overdue">${esc(t("overdue"))}</span>` : ""} · ${esc(t("data_clock_note"))}</li>` +
    body.trail.map((e) => trailRow(e, body.site)).join("");
  actions(body);
}

// Which acts the desk offers on a case: an operator's 督办, 改派 and 备注, an officer's 备注; the
// API's row says what it accepts now (``can``), which leaves the forms it would refuse out.
function offered(found) {
  if (["closed", "dismissed"].includes(found.status)) return [];
  const row = CASE_ROWS.get(found.id), can = row && Array.isArray(row.can) ? row.can : null;
  const operator = CITY.me.role === "operator";
  return ["supervise", "reassign", "comment"].filter((a) => {
    if (!operator && a !== "comment") return false;
    // 改派 only where the API says it takes it (a row from the worker's case list).
    return can ? can.includes(a) : a !== "reassign";
  });
}

let ACTIONS_FOR = null;
function actions(found) {
  const box = document.getElementById("case-actions");
  const acts = found ? offered(found) : [];
  const key = found ? `${found.id}|${found.grid}|${acts.join(",")}` : null;
  if (key === ACTIONS_FOR) return;  // the forms keep what was typed while the trail reloads
  ACTIONS_FOR = key;
  if (!acts.length) { box.innerHTML = ""; return; }
  const grids = CITY.grids.filter((g) => g.id !== found.grid);
  const forms = {
    supervise: `<label>${esc(t("note"))}<textarea name="note" maxlength="1000"></textarea></label>
      <label>${esc(t("new_deadline"))}<input type="datetime-local" name="deadline"></label>`,
    reassign: `<label>${esc(t("to_grid"))}<select name="grid"><option value=""></option>${grids.map((g) => `<option value="${esc(g.id)}">${esc(g.name)}</option>`).join("")}</select></label>
      <label>${esc(t("reassign_note"))}<textarea name="note" maxlength="1000"></textarea></label>`,
    comment: `<label>${esc(t("comment_text"))}<textarea name="text" maxlength="1000"></textarea></label>`,
  };
  box.innerHTML = `<div class="case-actions" data-for="${esc(found.id)}"><div class="act-tabs">${acts.map((a, i) => `<button type="button" data-tab="${a}" class="${i ? "" : "chosen"}">${esc(t(a))}</button>`).join("")}</div>` +
    acts.map((a, i) => `<form data-action="${a}"${i ? " hidden" : ""}>${forms[a]}<button type="submit">${esc(t("submit"))}</button><p class="message"></p></form>`).join("") + "</div>";
  box.querySelectorAll("[data-tab]").forEach((b) => {
    b.onclick = () => {
      box.querySelectorAll("[data-tab]").forEach((x) => x.classList.toggle("chosen", x === b));
      box.querySelectorAll("form").forEach((f) => { f.hidden = f.dataset.action !== b.dataset.tab; });
    };
  });
  box.querySelectorAll("form").forEach((f) => {
    defaults(f);
    f.onsubmit = (ev) => { ev.preventDefault(); act(f, found.site, found.id); };
  });
}

// China time as a datetime-local input shows it, and back.
function chinaLocal(ms) { return new Date(ms + 8 * 3600e3).toISOString().slice(0, 16); }
function fromChinaLocal(value) { return `${value}:00+08:00`; }
function defaults(form) {
  // A new deadline a day after the site's data time (cases run on data time, not the wall's).
  const input = form.querySelector("[name='deadline']");
  if (input && !input.value) input.value = chinaLocal((DETAIL && DETAIL.ts ? Date.parse(DETAIL.ts) : DATA_NOW ? Date.parse(DATA_NOW) : Date.now()) + 24 * 3600e3);
}

// A client-made id per act: a retry after a lost answer is the same act, done once by the API.
function actionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "desk-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function act(form, site, caseId) {
  const action = form.dataset.action, message = form.querySelector(".message"), button = form.querySelector("button[type='submit']");
  if (button.disabled) return;  // pressed twice: one act
  const value = (name) => { const f = form.querySelector(`[name='${name}']`); return f ? f.value.trim() : ""; };
  const say = (key, cls) => { message.className = "message " + (cls || "error"); message.textContent = t(key); message.title = ""; };
  let body;
  if (action === "supervise") {
    if (!value("note")) return say("need_note");
    if (!value("deadline")) return say("need_deadline");
    body = { note: value("note"), deadline: fromChinaLocal(value("deadline")) };
  } else if (action === "reassign") {
    if (!value("grid")) return say("need_grid");
    body = { grid: value("grid"), note: value("note") };
  } else {
    if (!value("text")) return say("need_text");
    body = { text: value("text") };
  }
  form.dataset.actionId = form.dataset.actionId || actionId();
  body.action_id = form.dataset.actionId;
  button.disabled = true;
  say("sending", "dim");
  let answer = null;
  try { answer = await post(`/api/sites/${enc(site)}/cases/${enc(caseId)}/${action}`, body); } catch (e) { answer = null; }
  button.disabled = false;
  if (!answer) return say("err_network");  // the same id again on a retry: done at most once
  if (answer.status === 200 || answer.status === 202) {
    delete form.dataset.actionId;
    form.reset(); defaults(form);
    say("sent_ok", "ok");
    queueSoon();
    return;
  }
  if (answer.status < 500) delete form.dataset.actionId;  // refused: nothing was done under it
  message.className = "message error";
  message.textContent = refusalText(answer.status, answer.body);
  message.title = (answer.body && answer.body.error) || "";
}

// -- picking a site --------------------------------------------------------------------------------

async function pick(siteId, caseId) {
  SITE = siteId; CASE = caseId || null; MEANS = null; ACTIONS_FOR = null;
  history.replaceState(null, "", "/desk?site=" + enc(siteId) + (caseId ? "&case=" + enc(caseId) : ""));
  const s = siteOf(siteId);
  const hours = CHART_HOURS[s ? s.kind : ""] || CHART_HOURS_DEFAULT;
  const [{ status, body }, means] = await Promise.all([
    api(`/api/sites/${enc(siteId)}?hours=${hours}`), api(`/api/sites/${enc(siteId)}/means?hours=${hours}`),
  ]);
  if (siteId !== SITE) return;
  if (status !== 200) { document.getElementById("head").innerHTML = `<p>${refusalHtml(status, body)}</p>`; document.body.dataset.ready = "1"; return; }
  DETAIL = body;
  MEANS = means.status === 200 ? means.body : null;
  LAST_HOUR = DETAIL.ts ? Math.floor(Date.parse(DETAIL.ts) / 3600e3) : null;
  // First what the site is most watched for: COD, PM2.5, or a stack's first limited value.
  const limited = body.pollutants.find((p) => body.limits[p]);
  if (!POLLUTANT || !body.pollutants.includes(POLLUTANT)) POLLUTANT = body.pollutants.includes("w01018") ? "w01018" : (body.pollutants.includes("a34004") ? "a34004" : (isStack(body) && limited) || body.pollutants[0]);
  siteList(); head(); values(); chart(); cases(); validityTable();
  if (!body.cases.length && !CASE) { document.getElementById("trail").innerHTML = ""; actions(null); }
  document.body.dataset.ready = "1";
}

// A live reading: its site's dot, and for the chosen site its values and a point on the chart.
let LAST_HOUR = null, MEANS_SOON = null;
function onSite(v) {
  CITY.state[v.id] = v;
  repaintDot(v);
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
  // The window moves on with data time: what fell out of it goes, on every series.
  const [t0] = chartWindow();
  for (const series of Object.values(DETAIL.history).concat(Object.values(DETAIL.history_corrected || {}))) trim(series, t0);
  // A new hour: the worker has closed the last one's windows; their means are read again.
  const hour = ms ? Math.floor(ms / 3600e3) : null;
  if (hour != null && hour !== LAST_HOUR) { LAST_HOUR = hour; clearTimeout(MEANS_SOON); MEANS_SOON = setTimeout(loadMeans, 5000); }
  head(); values(); chart();
}

// -- the weekly settlement: shown, exported, printed ------------------------------------------------

// The weekly settlement (周周清) of the caller's grids: by default the week of data time (the
// console picks it), or the one chosen with ‹ ›.
let WEEK = null, SHOWN_WEEK = null;
function monday(iso, days) {
  const d = new Date(iso + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}
async function weekly() {
  const { status, body } = await api("/api/weekly" + (WEEK ? "?week=" + enc(WEEK) : ""));
  const table = document.getElementById("weekly"), note = document.getElementById("weekly-note");
  if (status !== 200) { table.innerHTML = ""; note.innerHTML = refusalHtml(status, body); return; }
  SHOWN_WEEK = body.week;
  document.getElementById("week-label").textContent = `${body.week} – ${monday(body.week, 6).slice(5)}`;
  document.getElementById("weekly-csv").href = `/api/weekly.csv?week=${enc(body.week)}&lang=${LANG}`;
  const cols = ["opened", "escalated", "acknowledged", "closed"];
  let rows = `<tr><th>${esc(t("grid"))}</th>${cols.map((c) => `<th class="num">${esc(t(c))}</th>`).join("")}<th class="num">${esc(t("overdue"))}</th><th></th></tr>`;
  for (const g of body.grids) {
    const lateCount = g.overdue.length;
    rows += `<tr data-week-grid="${esc(g.grid)}"><td>${esc(g.name)} <span class="dim">${esc(g.grid)}</span></td>
      ${cols.map((c) => `<td class="num">${g[c]}</td>`).join("")}
      <td class="num" title="${esc(g.overdue.join(", "))}">${lateCount ? `<span class="overdue">${lateCount}</span>` : 0}</td>
      <td>${g.settled ? `<span class="badge s-normal">${esc(t("settled"))}</span>` : `<span class="badge s-over">${esc(t("unsettled"))}</span>`}</td></tr>`;
  }
  table.innerHTML = rows;
  note.textContent = `${t("overdue")}: ${t("open_at_end")} · ${t("data_clock_note")}`;
}

// Dead letters since the console started: by reason and by source, the newest with their detail.
function dead(v) {
  document.getElementById("dead-since").textContent = `${t("since")} ${when(v.since)} · Σ ${v.total}`;
  const chips = (o) => Object.entries(o).map(([k, n]) => `<span class="chip" data-reason="${esc(k)}">${esc(named("reject_reasons", k))} <b>${n}</b></span>`).join("");
  document.getElementById("dead-counts").innerHTML = v.total
    ? `<div>${chips(v.by_reason)}</div><div class="dim">${esc(t("by_source"))}: ${Object.entries(v.by_source).map(([k, n]) => `${esc(named("reading_sources", k))} ${n}`).join(" · ")}</div>`
    : `<p class="dim">${esc(t("no_dead"))}</p>`;
  // A rejection's detail is the parser's English: a column in English, a tooltip in Chinese.
  const en = LANG === "en";
  document.getElementById("dead-latest").innerHTML = v.latest.length
    ? `<tr><th>${esc(t("received"))}</th><th>${esc(t("reason"))}</th><th>${esc(t("origin"))}</th>${en ? `<th>${esc(t("detail"))}</th>` : ""}</tr>` +
      v.latest.map((d) => `<tr class="dead-row" title="${esc(d.detail)}"><td class="dim">${esc(new Date(d.received_at).toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }))}</td>
        <td>${esc(named("reject_reasons", d.reason))}<br><span class="dim">${esc(named("reading_sources", d.source))}</span></td><td class="origin">${esc(d.origin)}</td>${en ? `<td class="detail">${esc(d.detail)}</td>` : ""}</tr>`).join("")
    : "";
}

let REFRESH = null, WEEKLY_SOON = null;
function onCase(turn) {
  clearTimeout(WEEKLY_SOON);  // a case moved: the week's counts may have too
  WEEKLY_SOON = setTimeout(weekly, 1000);
  queueSoon();
  if (turn.site !== SITE) return;
  clearTimeout(REFRESH);  // a burst of turns, one reload
  REFRESH = setTimeout(async () => {
    const { status, body } = await api("/api/sites/" + enc(SITE) + "?hours=" + chartHours());
    if (status === 200 && DETAIL && body.id === SITE) { DETAIL.cases = body.cases; cases(); }
  }, 150);
}

// Clicking an alarm (not its 消警 button) picks its site, and its case if it has one.
document.getElementById("alarms").addEventListener("click", async (ev) => {
  const item = ev.target.closest("[data-alarm]");
  if (!item || ev.target.closest("button")) return;
  const { status, body } = await api("/api/alarms");
  const found = status === 200 && body.alarms.find((a) => a.id === item.dataset.alarm);
  if (found) await (found.case_id ? openCase(found.site, found.case_id) : pick(found.site));
});

let ALARMS_MOUNTED = false;
async function load() {
  const { body } = await api("/api/city");
  CITY = body;
  learnNames(body);
  DATA_NOW = (body.pulse || {}).data_now || null;
  showWho(body.me);
  filters();
  siteList();
  weekly();
  queue();
  api("/api/dead-letters").then(({ status, body }) => { if (status === 200) dead(body); });
  if (window.signinCode && !ALARMS_MOUNTED) signinCode(document.getElementById("signin"));
  if (window.Alarms) {
    if (!ALARMS_MOUNTED) Alarms.mount(document.getElementById("alarms"), { canSilence: true });
    else Alarms.reload();
    ALARMS_MOUNTED = true;
  }
  const query = new URLSearchParams(location.search);
  const wanted = query.get("site") || SITE;
  if (wanted) await pick(wanted, query.get("case") || CASE); else document.body.dataset.ready = "1";
}

headerBar("desk");
translate();
document.getElementById("week-prev").onclick = () => { WEEK = monday(SHOWN_WEEK, -7); weekly(); };
document.getElementById("week-next").onclick = () => { WEEK = monday(SHOWN_WEEK, 7); weekly(); };
document.getElementById("print").onclick = () => {
  document.getElementById("print-title").textContent = `${t("title")} · ${t("printed_at")} ${when(new Date().toISOString())}`;
  window.print();
};
setInterval(weekly, 30000);  // the week of data time moves on by itself
setInterval(queue, 30000);  // and the cases' deadlines with it
load().then(() => live({
  site: onSite, case: onCase, dead: dead,
  alarm: (msg) => { if (window.Alarms) Alarms.onAlarm(msg); },
  pulse: (p) => { DATA_NOW = p.data_now || DATA_NOW; },
}, load));
