// Shared by the console's pages: words in Chinese and English, the JSON calls, the live feed.
"use strict";

const WORDS = {
  title: ["衢州市生态环境监控指挥中心", "Quzhou environmental command centre"],
  wall: ["大屏", "Wall"], desk: ["工作台", "Desk"], phone: ["移动执法", "Phone"],
  live: ["实时连接", "live"], lost: ["连接已断开，正在重连…", "connection lost, reconnecting…"],
  signout: ["退出", "Sign out"], lang: ["English", "中文"],
  normal: ["正常", "normal"], over: ["超标", "over the limit"], abnormal: ["数据异常", "abnormal data"],
  offline: ["离线", "offline"], maintenance: ["维护/校准", "maintenance"], unknown: ["无数据", "no data"],
  overdue: ["超期", "overdue"], grid: ["网格", "Grid"], cases: ["在办案件", "Open cases"],
  data_time: ["数据时间", "data time"], legend: ["图例", "Legend"],
  outfalls: ["排污口", "Outfalls"], air: ["空气站(AQI)", "Air stations (AQI)"],
  values: ["实时数据", "Live values"], pollutant: ["因子", "Pollutant"], value: ["数值", "Value"],
  flag: ["标记", "Flag"], limit: ["限值", "Limit"], source: ["依据", "Source"],
  findings: ["研判结果", "Findings"], none: ["无", "none"], site_cases: ["本站案件", "Cases here"],
  trail: ["案件轨迹", "Case trail"], chart: ["近几小时", "Last hours"],
  ack: ["确认接收", "Acknowledge"], record: ["录入核查结果", "Record findings"],
  ask_close: ["申请结案", "ask to close"], submit: ["提交", "Submit"],
  my_cases: ["我的网格案件", "My grid's cases"], no_cases: ["暂无在办案件", "no open cases"],
  by: ["确认人", "by"], first_seen: ["发现时间", "first seen"], pick_site: ["请选择站点", "pick a site"],
  token: ["令牌", "Token"], sign_in: ["登录", "Sign in"], sites: ["站点", "Sites"],
  aqi: ["AQI", "AQI"], done: ["已提交", "sent"], status: ["状态", "Status"],
  weekly: ["周周清 · 本周结清", "Weekly settlement"], opened: ["新发", "opened"],
  open_at_end: ["周末未结", "open at week's end"], settled: ["已结清", "settled"],
  unsettled: ["未结清", "not settled"], dead_letters: ["拒收数据 · 按原因", "Rejected messages by reason"],
  since: ["统计自", "since"], by_source: ["来源", "by source"], reason: ["原因", "Reason"],
  origin: ["来自", "From"], detail: ["详情", "Detail"], received: ["接收(北京时间)", "received (now)"],
  no_dead: ["暂无拒收数据", "no rejected messages"], now_clock: ["北京时间 · 现在", "now (China time)"],
  data_lag: ["数据时间落后现在", "data time behind now"], data_clock_note: ["案件时间均为数据时间", "case times are data time"],
  deadline: ["期限", "due"], detected: ["发现", "detected"], renotified: ["再通知", "renotified"],
  raised: ["上报主管", "raised"], findings_recorded: ["录入核查", "findings recorded"],
  normal_again: ["恢复正常", "normal again"], relapsed: ["再次超标", "relapsed"],
  close_requested: ["申请结案", "close requested"],
  // A stack (废气排放口): its limits hold at its reference oxygen, so it is judged corrected.
  stacks: ["废气排放口", "Stacks"], gas_state: ["烟气参数", "Flue-gas state"],
  measured: ["实测浓度", "Measured"], corrected: ["折算浓度", "Corrected"], zs: ["CEMS 折算值", "CEMS corrected"],
  o2_measured: ["实测氧含量", "Measured O2"], o2_reference: ["基准氧含量", "Reference O2"],
  not_judged: ["不判定", "not judged"], high_o2: ["氧含量过高，不判定", "O2 too high: not judged"],
  no_o2: ["无有效氧含量，不判定", "no valid O2: not judged"], no_no2: ["由NO、NO2计", "from NO and NO2"],
  measured_line: ["实测浓度（不对照限值）", "measured (not held against the limit)"],
  corrected_line: ["折算浓度（对照限值）", "corrected (held against the limit)"],
  corrected_note: ["折算浓度为分钟均值，其后接实时值；限值只对照折算浓度", "corrected: minute means, then live values; only they are held against the limit"],
  // Transmission and validity (传输有效率 = 有效/应传), over closed China-time days.
  tv_rate: ["传输有效率", "Transmission-validity rate"], t_rate: ["传输率", "Transmission rate"],
  v_rate: ["有效率", "Validity rate"], expected: ["应传", "Expected"], sent: ["实传", "Received"],
  valid: ["有效", "Valid"], day: ["日期", "Day"], city: ["全市", "City"],
  lowest: ["传输有效率最低站点", "Lowest sites"], closed_days: ["近7日", "Last 7 days"],
  under_90: ["低于90%标红", "under 90 % in red"], no_rate: ["暂无数据", "no data"],
  // Marks (标记): an enterprise declares and proves them, an officer of the grid reviews them.
  declare_mark: ["申报标记", "Declare a mark"], our_marks: ["本企业标记", "Our marks"],
  marks_to_review: ["待审核标记", "Marks to review"], site: ["站点", "Site"], device: ["设备", "Device"],
  whole_site: ["全厂（所有设备）", "whole site (every device)"], mark_type: ["标记类型", "Type"],
  mark_start: ["开始时间（北京时间）", "Start (China time)"], mark_end: ["结束时间（北京时间）", "End (China time)"],
  mark_reason: ["标记理由", "Reason"], proofs: ["证明材料", "Proofs"], no_proof: ["尚未上传", "none yet"],
  attach: ["上传证明材料", "Attach a proof"], pick_file: ["请先选择照片或文件", "choose a photo or file first"],
  attached: ["证明材料已上传", "proof attached"], declared: ["已申报，请上传证明材料", "declared: now attach a proof"],
  accept: ["接受", "Accept"], reject: ["驳回", "Reject"], review_reason: ["审核意见", "Review"],
  reason_needed: ["驳回须填写审核意见", "a rejection needs a reason"], reviewer: ["审核人", "reviewed by"],
  failed: ["提交失败：", "Failed: "], marks_unread: ["未能读取标记：", "marks not read: "],
  mark_pending: ["待审核", "to be reviewed"], mark_accepted: ["已接受", "accepted"], mark_rejected: ["已驳回", "rejected"],
  no_marks: ["暂无标记", "no marks"], nothing_to_review: ["暂无待审核标记", "no marks to review"],
};
let LANG = localStorage.getItem("ecowatch.lang") || "zh";
function t(key) { const w = WORDS[key]; return w ? w[LANG === "zh" ? 0 : 1] : key; }
// Pollutant names come with /api/city (ecowatch/pollutants.py): code → [Chinese, English].
let POLLUTANT_NAMES = {};
// Findings and case events come written in both languages by the server (alerts/wording.py).
function said(text) { return text && typeof text === "object" ? (text[LANG] ?? "") : (text ?? ""); }
// Every other name the server knows (/api/city "names", alerts/wording.py): group → key → pair.
// An unknown key is shown as it is: a newer server's, better than nothing.
let NAMES = {};
function named(group, key) { const n = (NAMES[group] || {})[key]; return n ? n[LANG === "zh" ? 0 : 1] : (key ?? ""); }
// What /api/city hands every page: its names, once.
// A case's state (pending, reminded, …) is said as t(status): the wording module's words.
function learnNames(city) {
  POLLUTANT_NAMES = city.pollutants || {}; NAMES = city.names || {};
  Object.assign(WORDS, NAMES.case_status || {});
}
function pollutantName(code) { const n = POLLUTANT_NAMES[code]; return n ? n[LANG === "zh" ? 0 : 1] : code; }
// A refusal (the case API's or the console's) in the page's language, by its ``code`` and, for
// a field, the field's name (alerts/wording.py REFUSALS); else by its HTTP status. The server's
// own words (English) belong in a title attribute, never in the text.
const STATUS_REFUSALS = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict", 413: "too_large", 415: "unsupported_type", 429: "too_many_attempts", 500: "internal", 502: "unavailable", 503: "unavailable", 504: "unavailable" };
function refusalText(status, body) {
  const code = body && body.code, field = body && body.field, known = NAMES.refusals || {};
  if (code === "invalid_field" && field && (NAMES.fields || {})[field]) return named("refusals", code) + named("fields", field);
  if (code && known[code] && code !== "invalid_field") return named("refusals", code);
  return named("refusals", STATUS_REFUSALS[status] || "refused");
}

// "Label: value" as each language writes it.
function colon() { return LANG === "zh" ? "：" : ": "; }
function translate(root) {
  (root || document).querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
}
function toggleLang() { localStorage.setItem("ecowatch.lang", LANG === "zh" ? "en" : "zh"); location.reload(); }

const COLOURS = {
  normal: "#2fbf71", over: "#ff3b30", abnormal: "#ffb000", offline: "#7d8a96",
  maintenance: "#3b82f6", unknown: "#3a4653",
};

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
// A rate (a fraction, 0..1) as the platform publishes it: a percentage to two decimals.
function ratePct(r) { return r == null ? "–" : `${(r * 100).toFixed(2)}%`; }
function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false });
}

// How far data time is behind now, in words ("6天3小时" / "6 d 3 h"); "" when about the same.
function lag(dataIso, nowIso) {
  if (!dataIso || !nowIso) return "";
  const s = (Date.parse(nowIso) - Date.parse(dataIso)) / 1000;
  if (Math.abs(s) < 120) return "";
  const zh = LANG === "zh", a = Math.abs(s), d = Math.floor(a / 86400), h = Math.floor(a % 86400 / 3600), m = Math.floor(a % 3600 / 60);
  const parts = d ? [[d, zh ? "天" : " d"], [h, zh ? "小时" : " h"]] : h ? [[h, zh ? "小时" : " h"], [m, zh ? "分" : " min"]] : [[m, zh ? "分钟" : " min"]];
  return (s < 0 ? "−" : "") + parts.filter(([n]) => n).map(([n, u]) => n + u).join(zh ? "" : " ");
}

// A call the page depends on: a missing or expired session sends the page to the login.
async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("401"); }
  let body = null;
  try { body = await r.json(); } catch (e) { body = { error: "not JSON" }; }
  return { status: r.status, body };
}
async function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
}

// The live feed. EventSource reconnects by itself; the page says when it is cut off, and
// reloads its snapshot once back (what happened meanwhile was not pushed to it).
function live(handlers, onBack) {
  const conn = document.getElementById("conn");
  let lost = false;
  const source = new EventSource("/live");
  source.addEventListener("hello", () => {
    conn.textContent = t("live"); conn.className = "";
    if (lost && onBack) onBack();
    lost = false;
  });
  source.onerror = () => {
    lost = true; conn.textContent = t("lost"); conn.className = "lost";
    fetch("/api/city", { credentials: "same-origin" }).then((r) => { if (r.status === 401) location.href = "/login"; }).catch(() => {});
  };
  for (const [kind, fn] of Object.entries(handlers)) {
    source.addEventListener(kind, (e) => fn(JSON.parse(e.data)));
  }
  return source;
}

function headerBar(titleKey) {
  const bar = document.createElement("header");
  bar.className = "bar";
  const title = document.body.classList.contains("phone") ? "ecowatch" : t("title");
  document.title = `ecowatch · ${t(titleKey)}`;  // the tab's name, in the page's language
  bar.innerHTML = `<h1>${esc(title)} · ${esc(t(titleKey))}</h1><span class="spacer"></span>
    <span id="who" class="dim"></span><span id="conn">…</span>
    <a href="/wall">${esc(t("wall"))}</a><a href="/desk">${esc(t("desk"))}</a><a href="/phone">${esc(t("phone"))}</a>
    <button id="lang">${esc(t("lang"))}</button><button id="signout">${esc(t("signout"))}</button>`;
  document.body.prepend(bar);
  bar.querySelector("#lang").onclick = toggleLang;
  bar.querySelector("#signout").onclick = async () => { await fetch("/logout", { method: "POST" }); location.href = "/login"; };
}
function showWho(me) {
  // A person's id (O-KC-03) as it is; an operator's "operator:王" as 值班员 王; else the role.
  const [role, name] = (me.who || "").split(":");
  const text = name && NAMES.roles && NAMES.roles[role] ? `${named("roles", role)} ${name}` : (me.who || named("roles", me.role));
  document.getElementById("who").textContent = text;
}
