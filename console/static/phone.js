// The phone: an officer's own grids, open cases first; acknowledge and record findings through
// the case API, with the officer's own token (the console passes it on). Marks (标记): an
// enterprise declares them for its own sites and attaches their proofs; an officer reviews
// the pending ones of their grids' sites.
"use strict";

const ORDER = { escalated: 0, reminded: 1, acknowledged: 2, pending: 3 };

// The case's own deadline (data time): the officers' acknowledge-by once escalated.
function dueText(c) {
  const at = c.status === "escalated" ? c.ack_due : c.status === "reminded" ? c.deadline : null;
  return at ? ` · ${esc(t("deadline"))} ${esc(when(at))}` : "";
}

function card(c) {
  // Pending: nobody has been told yet, so there is nothing for an officer to act on.
  const ack = c.status === "escalated" || c.status === "reminded";
  const acts = c.status !== "pending";
  return `<div class="card" data-case="${esc(c.id)}" data-status="${esc(c.status)}">
    <h3>${esc(c.site_name)} <span class="badge s-${{ acknowledged: "maintenance", pending: "unknown" }[c.status] || "over"}">${esc(t(c.status))}</span>
      ${c.overdue ? `<span class="overdue">${esc(t("overdue"))}</span>` : ""}</h3>
    <p>${esc(c.pollutant ? pollutantName(c.pollutant) : "")} · ${esc(said(c.detail))}</p>
    <p class="dim">${esc(t("first_seen"))} ${esc(when(c.first_seen))}${c.acknowledged_by ? " · " + esc(t("by")) + " " + esc(c.acknowledged_by) : ""}${dueText(c)}</p>
    ${c.findings.length ? `<p class="dim">${c.findings.map(esc).join("<br>")}</p>` : ""}
    <p>${ack ? `<button class="act" data-act="ack">${esc(t("ack"))}</button>` : ""}
      ${acts ? `<button class="act secondary" data-act="open">${esc(t("record"))}</button>` : ""}</p>
    <form hidden><textarea name="text"></textarea>
      <label><input type="checkbox" name="close"> ${esc(t("ask_close"))}</label>
      <button class="act" type="submit">${esc(t("submit"))}</button></form>
    <p class="message"></p></div>`;
}

async function act(c, path, body, el) {
  const { status, body: answer } = await post(`/api/sites/${encodeURIComponent(c.site)}/cases/${encodeURIComponent(c.id)}/${path}`, body);
  const msg = el.querySelector(".message");
  msg.textContent = status === 202 ? t("done") : `${status}: ${answer.error || ""}`;
  msg.className = "message " + (status === 202 ? "dim" : "error");
}

async function loadCases() {
  const { status, body } = await api("/api/cases");
  const box = document.getElementById("cards");
  if (status !== 200) { box.innerHTML = `<p class="error card">${esc(body.error)}</p>`; return; }
  const rows = body.cases.slice().sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || (a.first_seen < b.first_seen ? 1 : -1));
  document.getElementById("mine").textContent = `${t("my_cases")} · ${body.grids.join(", ")}`;
  box.innerHTML = (rows.length ? rows.map(card).join("") : `<p class="card dim">${esc(t("no_cases"))}</p>`) +
    `<p class="dim" style="margin:0 12px 12px;font-size:12px">${esc(t("data_clock_note"))}</p>`;
  for (const c of rows) {
    const el = box.querySelector(`[data-case="${CSS.escape(c.id)}"]`);
    const ackButton = el.querySelector('[data-act="ack"]');
    if (ackButton) ackButton.onclick = () => act(c, "ack", null, el);
    const form = el.querySelector("form");
    const open = el.querySelector('[data-act="open"]');
    if (open) open.onclick = () => { form.hidden = !form.hidden; };
    form.onsubmit = (e) => { e.preventDefault(); act(c, "findings", { text: form.text.value, close: form.close.checked }, el); };
  }
}

// -- marks (标记) ------------------------------------------------------------------------------

let CITY = null;
let MARKS = [];  // the marks shown: an enterprise's all, an officer's pending ones
let MARK_NOW = {};  // site → its data clock, the time the API judges a mark's deadlines by
const MARK_BADGE = { pending: "s-abnormal", accepted: "s-normal", rejected: "s-over" };
const enc = encodeURIComponent;

function siteName(id) { const s = CITY.sites.find((x) => x.id === id); return s ? s.name : id; }
function typeName(type) { const n = CITY.mark_types[type]; return n ? n[LANG === "zh" ? 0 : 1] : type; }
// A datetime-local field holds China time (the sites' clock), whatever the phone's own zone.
function chinaIso(local) { return local ? (local.length === 16 ? local + ":00" : local) + "+08:00" : ""; }
function chinaLocal(iso, plusHours) {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? "" : new Date(at + (8 + (plusHours || 0)) * 3600e3).toISOString().slice(0, 16);
}
// A refusal in the page's language first, then the API's own words.
function failed(status, body) { return t("failed") + ((body && body.error) || status); }
function say(el, text, bad) {
  const msg = el.querySelector(".message");
  msg.textContent = text;
  msg.className = "message " + (bad ? "error" : "dim");
}

function markCard(m, role) {
  const pending = m.status === "pending";
  // The console's own path (the API's url names the same one), so the phone's session fetches it.
  const proofs = m.proofs.map((p) => `<a href="/api/proofs/${enc(p.sha256)}?site=${enc(m.site)}" download data-proof="${esc(p.sha256)}">${esc(p.name)}</a>`).join("");
  const text = m.said ? said(m.said) : `${typeName(m.type)} ${when(m.start)}–${when(m.end)}: ${m.reason}`;
  return `<div class="card" data-mark="${esc(m.id)}" data-status="${esc(m.status)}">
    <h3>${esc(siteName(m.site))} <span class="badge ${MARK_BADGE[m.status] || "s-unknown"}">${esc(t("mark_" + m.status))}</span></h3>
    <p>${esc(text)}</p>
    <p class="dim">${esc(t("device"))}：${esc(m.device || t("whole_site"))}${m.reviewed_by ? ` · ${esc(t("reviewer"))} ${esc(m.reviewed_by)}` : ""}</p>
    <p class="proofs">${esc(t("proofs"))}：${proofs || `<span class="dim">${esc(t("no_proof"))}</span>`}</p>
    ${pending && role === "enterprise" ? `<p><input type="file" name="proof" accept="image/*,application/pdf,.doc,.docx,.xls,.xlsx">
      <button class="act secondary" data-act="attach">${esc(t("attach"))}</button></p>` : ""}
    ${pending && role === "officer" ? `<textarea name="review" placeholder="${esc(t("review_reason"))}"></textarea>
      <p><button class="act" data-act="accept">${esc(t("accept"))}</button>
      <button class="act secondary" data-act="reject">${esc(t("reject"))}</button></p>` : ""}
    <p class="message"></p></div>`;
}

// One card drawn again with the mark as the API answered it, and what happened said on it.
function showMark(m, role, text) {
  MARKS = MARKS.filter((x) => x.id !== m.id).concat([m]);
  const old = document.querySelector(`[data-mark="${CSS.escape(m.id)}"]`);
  if (!old) { drawMarks(role); } else { old.outerHTML = markCard(m, role); }
  const el = document.querySelector(`[data-mark="${CSS.escape(m.id)}"]`);
  bindMark(el, m, role);
  if (text) say(el, text, false);
}

async function attach(m, el, role) {
  const file = el.querySelector('input[type="file"]').files[0];
  if (!file) { say(el, t("pick_file"), true); return; }
  // The document itself is the body; its name travels percent-encoded (X-Filename).
  const { status, body } = await api(`/api/sites/${enc(m.site)}/marks/${enc(m.id)}/proofs`, {
    method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": enc(file.name) },
  });
  if (status === 202 && body.mark) showMark(body.mark, role, t("attached"));
  else say(el, failed(status, body), true);
}

async function review(m, el, role, accept) {
  const reason = el.querySelector("textarea").value.trim();
  if (!accept && !reason) { say(el, t("reason_needed"), true); return; }
  const { status, body } = await post(`/api/sites/${enc(m.site)}/marks/${enc(m.id)}/review`, { accept, reason });
  if (status === 202 && body.mark) showMark(body.mark, role, t("done"));
  else say(el, failed(status, body), true);
}

function bindMark(el, m, role) {
  const on = (act, fn) => { const b = el.querySelector(`[data-act="${act}"]`); if (b) b.onclick = fn; };
  on("attach", () => attach(m, el, role));
  on("accept", () => review(m, el, role, true));
  on("reject", () => review(m, el, role, false));
}

function drawMarks(role) {
  const box = document.getElementById("mark-cards");
  // An enterprise: its newest first; an officer: the oldest waiting first.
  const rows = MARKS.slice().sort((a, b) => role === "enterprise" ? (a.made_at < b.made_at ? 1 : -1) : (a.start < b.start ? -1 : 1));
  box.innerHTML = rows.length ? rows.map((m) => markCard(m, role)).join("")
    : `<p class="card dim">${esc(t(role === "enterprise" ? "no_marks" : "nothing_to_review"))}</p>`;
  for (const m of rows) bindMark(box.querySelector(`[data-mark="${CSS.escape(m.id)}"]`), m, role);
}

function declareForm() {
  const sites = CITY.sites.filter((s) => s.devices.length);
  const types = Object.entries(CITY.mark_types).map(([k, n]) => `<option value="${esc(k)}">${esc(n[LANG === "zh" ? 0 : 1])}</option>`);
  return `<form class="card" id="declare"><h3>${esc(t("declare_mark"))}</h3>
    <label>${esc(t("site"))}<select name="site">${sites.map((s) => `<option value="${esc(s.id)}">${esc(s.name)}</option>`).join("")}</select></label>
    <label>${esc(t("device"))}<select name="device"></select></label>
    <label>${esc(t("mark_type"))}<select name="type">${types.join("")}</select></label>
    <label>${esc(t("mark_start"))}<input type="datetime-local" name="start" required></label>
    <label>${esc(t("mark_end"))}<input type="datetime-local" name="end" required></label>
    <label>${esc(t("mark_reason"))}<textarea name="reason" required></textarea></label>
    <p><button class="act" type="submit">${esc(t("submit"))}</button></p>
    <p class="message"></p></form>`;
}

function bindDeclare(form) {
  const field = (name) => form.elements.namedItem(name);
  const pickSite = () => {
    const site = CITY.sites.find((s) => s.id === field("site").value);
    field("device").innerHTML = `<option value="">${esc(t("whole_site"))}</option>` +
      (site ? site.devices.map((d) => `<option value="${esc(d)}">${esc(d)}</option>`).join("") : "");
    // The site's data clock, not the phone's: deadlines run on it (a demo city lives in the past).
    const now = MARK_NOW[field("site").value];
    if (now && !field("start").value) field("start").value = chinaLocal(now);
    if (now && !field("end").value) field("end").value = chinaLocal(now, 2);
  };
  field("site").onchange = pickSite;
  pickSite();
  form.onsubmit = async (e) => {
    e.preventDefault();
    const body = { type: field("type").value, start: chinaIso(field("start").value), end: chinaIso(field("end").value), reason: field("reason").value.trim() };
    if (field("device").value) body.device = field("device").value;  // none: the whole site
    const { status, body: answer } = await post(`/api/sites/${enc(field("site").value)}/marks`, body);
    if (status === 202 && answer.mark) {
      say(form, t("declared"), false);
      showMark(answer.mark, "enterprise", t("declared"));
    } else say(form, failed(status, answer), true);
  };
}

async function loadMarks(role) {
  const box = document.getElementById("marks");
  const title = t(role === "enterprise" ? "our_marks" : "marks_to_review");
  const { status, body } = await api("/api/marks");
  if (status !== 200) {
    box.innerHTML = `<h2 class="section">${esc(title)}</h2><p class="error card">${esc(t("marks_unread"))}${esc(body.error || status)}</p>`;
    return;
  }
  MARK_NOW = body.now;
  MARKS = role === "enterprise" ? body.marks : body.marks.filter((m) => m.status === "pending");
  const unread = body.errors.map((e) => `<p class="error card">${esc(t("marks_unread"))}${esc(siteName(e.site))}：${esc(e.error)}</p>`).join("");
  box.innerHTML = (role === "enterprise" ? declareForm() : "") +
    `<h2 class="section">${esc(title)}</h2>${unread}<div id="mark-cards"></div>`;
  if (role === "enterprise") bindDeclare(document.getElementById("declare"));
  drawMarks(role);
}

async function load() {
  const city = await api("/api/city");
  CITY = city.body;
  POLLUTANT_NAMES = CITY.pollutants || {};
  const me = CITY.me;
  showWho(me);
  if (me.role === "enterprise") {
    // An enterprise has no cases and no live feed: its marks only, under its own name.
    document.getElementById("who").textContent = me.enterprise || me.who;
    document.getElementById("conn").hidden = true;
    document.getElementById("mine").hidden = true;
    await loadMarks("enterprise");
  } else {
    if (me.role === "officer") await loadMarks("officer");
    await loadCases();
  }
  document.body.dataset.ready = "1";
  return me;
}

let REFRESH = null;
function soon() { clearTimeout(REFRESH); REFRESH = setTimeout(loadCases, 300); }

headerBar("phone");
translate();
load().then((me) => { if (me.role !== "enterprise") live({ case: soon }, load); });
