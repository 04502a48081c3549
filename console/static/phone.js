// The phone: an officer's field visit (移动执法). The cases of their grids that they can act on
// come first, each with its evidence (values, limit, 超标倍数, a trend), the enterprise's
// contact and the way to the site; the rest are folded into one line. Acknowledging and
// recording findings (with photos, the location and the time of the visit) go out through a
// queue kept in localStorage: on a weak network they wait and are retried, each with the
// action_id made when the officer pressed, so a retry is answered as a duplicate and nothing
// is done twice. Drafts are kept per case and survive a reload. Marks (标记): an enterprise
// declares them for its own sites and attaches their proofs; an officer reviews the pending
// ones of their grids' sites.
"use strict";

Object.assign(WORDS, {
  nothing_now: ["另有 {n} 件暂无需处理", "{n} more with nothing to do now"],
  excess: ["超标 {x} 倍", "{y}× the limit"],
  now_value: ["当前值", "now"], trend: ["近 6 小时", "last 6 h"], no_trend: ["暂无趋势数据", "no trend data"],
  contact: ["环保负责人", "Contact"], call: ["拨打", "Call"], no_contact: ["未登记联系人", "no contact on file"],
  go_there: ["导航", "Go there"], map_amap: ["高德地图", "Amap"], map_baidu: ["百度地图", "Baidu Maps"],
  findings_label: ["核查情况", "What you found"], take_photo: ["拍照", "Take a photo"],
  photo_wait: ["待上传", "to upload"], photo_refused: ["照片上传被拒绝：", "photo refused: "],
  photo_unread: ["无法读取这张照片", "this photo could not be read"],
  locating: ["正在定位…", "locating…"], located: ["位置 ±{m} 米", "location ±{m} m"],
  no_location: ["未获得定位（不影响提交）", "no location (you can still submit)"],
  visited_at: ["到场时间", "arrived"], text_needed: ["请填写核查情况", "write what you found"],
  queued: ["已保存，联网后自动发送", "saved: it goes out when back online"],
  sending: ["正在发送…", "sending…"], sent_ok: ["已送达", "sent"],
  signin_again: ["登录已过期：请重新登录，登录后自动发送", "signed out: sign in again and it goes out"],
  gone: ["此案件已不在待办列表", "this case is no longer open"],
});
// A sentence with its numbers: t("excess") with {x}, {y}, {n}, {m} filled in.
function tf(key, values) { return t(key).replace(/\{(\w)\}/g, (_, k) => values[k] ?? ""); }

const ORDER = { escalated: 0, acknowledged: 1, reminded: 2, pending: 3 };
const KEY = "ecowatch.phone.";  // localStorage: drafts, the queue, uploaded photos' hashes
let ME = null;
const ROWS = new Map();  // case id → its row as last listed
const SITES = new Map();  // site id → /api/sites/{site} as last read (evidence, trend, contact, maps)
const ASKED = new Map();  // site id → {at, promise}: one request at a time, again after a while
const SITE_FRESH_MS = 120000;

function recall(key, fallback) {
  try { const v = JSON.parse(localStorage.getItem(KEY + key)); return v ?? fallback; } catch (e) { return fallback; }
}
function store(key, value) {
  if (value == null) localStorage.removeItem(KEY + key); else localStorage.setItem(KEY + key, JSON.stringify(value));
}
// An id made once, when the officer presses (crypto.randomUUID needs a secure context).
function newId() { return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join(""); }
function casePath(site, id, tail) { return `/api/sites/${enc(site)}/cases/${enc(id)}/${tail}`; }

// What the officer may do now: the API says (row.can); an older API's rows are judged as the
// case API judges them (acknowledge once escalated; findings while an officer holds it).
function can(c) {
  if (Array.isArray(c.can)) return c.can;
  if (!ME || ME.role !== "officer") return [];
  return c.status === "escalated" ? ["ack", "findings"] : c.status === "acknowledged" ? ["findings"] : [];
}
// A case's state by the server's names (LEAD's), else the page's own.
function statusName(s) { return NAMES.case_status && NAMES.case_status[s] ? named("case_status", s) : t(s); }
function gridNames(ids) { return ids.map((g) => { const x = (CITY.grids || []).find((y) => y.id === g); return x && LANG === "zh" ? x.name : g; }).join(LANG === "zh" ? "、" : ", "); }  // the names are Chinese
function actionable(c) { const k = can(c); return k.includes("ack") || k.includes("findings"); }

// -- drafts ------------------------------------------------------------------------------------

function draftOf(id) { return recall("draft." + id, null); }
function saveDraft(id, draft) { store("draft." + id, draft); }

// -- the queue: actions and photos, in order, until the API answers --------------------------

let QUEUE = recall("queue", []);
let SHAS = recall("shas", {});  // a photo's local key → its sha256 once uploaded (null: refused)
let DRAINING = false, BACKOFF = 0, RETRY = null;
const STATE = {};  // case id → what its card says about its last action

function saveQueue() { store("queue", QUEUE); }
function inFlight(id, kind) { return QUEUE.some((q) => q.case === id && q.kind === kind && q.who === ME.who); }
function enqueue(item) {
  QUEUE.push(Object.assign({ who: ME.who, at: new Date().toISOString() }, item));
  saveQueue();
  if (item.kind !== "photo") tell(item.case, "sending");
  drain();
}

// Photos are kept in IndexedDB until uploaded (too big for localStorage).
function photoDb() {
  return new Promise((done, fail) => {
    const open = indexedDB.open("ecowatch-phone", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("photos");
    open.onsuccess = () => done(open.result);
    open.onerror = () => fail(open.error);
  });
}
async function photoDo(mode, fn) {
  const db = await photoDb();
  return new Promise((done, fail) => {
    const tx = db.transaction("photos", mode);
    const req = fn(tx.objectStore("photos"));
    tx.oncomplete = () => { db.close(); done(req.result); };
    tx.onerror = () => { db.close(); fail(tx.error); };
  });
}

async function send(item) {
  let options;
  if (item.kind === "photo") {
    const blob = await photoDo("readonly", (s) => s.get(item.key));
    if (!blob) return { refused: true, status: 410, body: {} };  // gone from this phone
    options = { body: blob, headers: { "Content-Type": blob.type || "image/jpeg", "X-Filename": enc(item.key + ".jpg") } };
  } else {
    const body = Object.assign({}, item.body, { action_id: item.id });
    if (body.photos) body.photos = body.photos.map((p) => p.startsWith("local:") ? SHAS[p.slice(6)] : p).filter(Boolean);
    options = { body: JSON.stringify(body), headers: { "Content-Type": "application/json" } };
  }
  let r;
  try {
    r = await fetch(casePath(item.site, item.case, item.kind === "photo" ? "photos" : item.kind), Object.assign({ method: "POST", credentials: "same-origin" }, options));
  } catch (e) { return { retry: true }; }  // offline, or the network dropped it
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) return { retry: true, signin: true };
  if (r.status >= 500 || r.status === 429 || r.status === 408) return { retry: true };
  if (r.ok) return { ok: true, body };
  return { refused: true, status: r.status, body };
}

// One at a time, oldest first (a findings' photos are queued ahead of it); a failure to reach
// the API waits and tries again, longer each time, or at once when the phone is back online.
async function drain() {
  if (DRAINING || !ME) return;
  DRAINING = true;
  clearTimeout(RETRY);
  try {
    for (;;) {
      const item = QUEUE.find((q) => q.who === ME.who);
      if (!item) { BACKOFF = 0; break; }
      if (item.kind !== "photo") tell(item.case, "sending");
      const result = await send(item);
      if (result.retry) {
        if (item.kind !== "photo" || QUEUE.some((q) => q.case === item.case && q.kind === "findings")) tell(item.case, result.signin ? "signin_again" : "queued");
        BACKOFF = Math.min(BACKOFF ? BACKOFF * 2 : 2000, 60000);
        RETRY = setTimeout(drain, BACKOFF);
        break;
      }
      QUEUE = QUEUE.filter((q) => q !== item);
      saveQueue();
      BACKOFF = 0;
      if (item.kind === "photo") photoDone(item, result);
      else tell(item.case, result.ok ? "sent_ok" : "refused", result);
      if (result.ok && item.kind !== "photo") soon();
    }
  } finally {
    DRAINING = false;
  }
}
window.addEventListener("online", () => { BACKOFF = 0; drain(); });

function photoDone(item, result) {
  SHAS[item.key] = result.ok ? result.body.sha256 : null;
  store("shas", SHAS);
  photoDo("readwrite", (s) => s.delete(item.key)).catch(() => {});
  const draft = draftOf(item.case);
  if (draft) {
    for (const p of draft.photos) if (p.key === item.key) p.sha = SHAS[item.key];
    draft.photos = draft.photos.filter((p) => p.sha !== null);
    saveDraft(item.case, draft);
  }
  const el = cardOf(item.case);
  if (el) {
    drawThumbs(el, item.site, item.case);
    if (!result.ok) tell(item.case, "photo_refused", result);
  }
}

// What a card says about its last action: in the page's language; the API's own (English)
// words, if any, only in the title.
function refusal(result) { return refusalText(result.status, result.body); }
function tell(id, what, result) {
  STATE[id] = { what, result };
  const el = cardOf(id);
  if (el) showState(el, id);
}
function showState(el, id) {
  const msg = el.querySelector(".c-message");
  const s = STATE[id] || (QUEUE.some((q) => q.case === id && q.kind !== "photo") ? { what: "queued" } : null);
  el.querySelectorAll("[data-act]").forEach((b) => { b.disabled = inFlight(id, b.dataset.act === "ack" ? "ack" : "findings") && b.dataset.act !== "open"; });
  if (!s) { msg.textContent = ""; msg.removeAttribute("title"); msg.dataset.state = ""; return; }
  const bad = s.what === "refused" || s.what === "photo_refused";
  msg.textContent = s.what === "refused" ? refusal(s.result) : s.what === "photo_refused" ? t("photo_refused") + refusal(s.result) : t(s.what);
  msg.className = "c-message message " + (bad || s.what === "signin_again" ? "error" : "dim");
  msg.dataset.state = s.what;
  const error = s.result && s.result.body && s.result.body.error;
  if (error) msg.title = String(error); else msg.removeAttribute("title");
}

// -- a case's card: drawn once, its parts filled in again as the case changes -----------------

function cardOf(id) { return document.querySelector(`#cards [data-case="${CSS.escape(id)}"]`); }

function newCard(c) {
  const el = document.createElement("div");
  el.className = "card case";
  el.dataset.case = c.id;
  el.innerHTML = `<div class="c-head"></div><div class="c-ev"></div><div class="c-where"></div>
    <div class="c-past"></div><p class="c-acts"></p><div class="c-work"></div><p class="c-message message"></p>`;
  return el;
}

function dueText(c) {
  const at = c.status === "escalated" ? c.ack_due : c.status === "reminded" ? c.deadline : null;
  return at ? ` · ${esc(t("deadline"))} ${esc(when(at))}` : "";
}

function fill(el, c) {
  el.dataset.status = c.status;
  const badge = { acknowledged: "maintenance", pending: "unknown", reminded: "abnormal" }[c.status] || "over";
  el.querySelector(".c-head").innerHTML = `<h3>${esc(c.site_name)} <span class="badge s-${badge}">${esc(statusName(c.status))}</span>
      ${c.overdue ? `<span class="overdue">${esc(t("overdue"))}</span>` : ""}</h3>
    <p class="dim">${esc(c.pollutant ? pollutantName(c.pollutant) + " · " : "")}${esc(t("first_seen"))} ${esc(when(c.first_seen))}${dueText(c)}</p>`;
  el.querySelector(".c-past").innerHTML = c.findings && c.findings.length
    ? `<p class="dim">${c.findings.map(esc).join("<br>")}</p>` : "";
  const k = can(c);
  el.querySelector(".c-acts").innerHTML =
    (k.includes("ack") ? `<button class="act" data-act="ack">${esc(t("ack"))}</button>` : "") +
    (k.includes("findings") ? `<button class="act secondary" data-act="open">${esc(t("record"))}</button>` : "");
  const ack = el.querySelector('[data-act="ack"]');
  if (ack) ack.onclick = () => { ack.disabled = true; enqueue({ id: newId(), kind: "ack", site: c.site, case: c.id, body: {} }); };
  const open = el.querySelector('[data-act="open"]');
  if (open) open.onclick = () => toggleForm(el, c);
  fillEvidence(el, c);
  showState(el, c.id);
}

// The numbers the case stands on: the active finding of its rule and pollutant (value, limit,
// 超标倍数), else the site's latest value; the sentence the server wrote; a small trend.
function fillEvidence(el, c) {
  const site = SITES.get(c.site);
  const box = el.querySelector(".c-ev");
  let numbers = "";
  const ev = site && (site.evidence || []).find((e) => e.rule === c.rule && (e.pollutant || null) === (c.pollutant || null));
  if (ev && ev.value != null) {
    const unit = ev.unit ? " " + ev.unit : "";
    const over = ev.excess != null ? ` · <b class="over-value" data-excess="${esc(ev.excess)}">${esc(tf("excess", { x: ev.excess, y: (Number(ev.excess) + 1).toFixed(2) }))}</b>` : "";
    numbers = `<p class="ev-numbers"><b class="ev-value">${esc(ev.value + unit)}</b>${ev.limit != null ? ` · ${esc(t("limit"))} ${esc(ev.limit + unit)}` : ""}${over}</p>`;
  } else if (site && c.pollutant && site.values && site.values[c.pollutant]) {
    const v = site.values[c.pollutant], lim = v.limit;
    numbers = `<p class="ev-numbers">${esc(t("now_value"))} <b class="ev-value">${esc(v.value)} ${esc(v.unit || "")}</b>${lim ? ` · ${esc(t("limit"))} ${esc(said(lim.said))}` : ""}</p>`;
  }
  box.innerHTML = `${numbers}<p class="ev-detail">${esc(said(c.detail))}</p>${site ? sparkline(site, c.pollutant) : ""}`;
}

// The site's last hours of the case's pollutant (a stack's corrected line: the judged one),
// with the limit dashed, in a box a thumb wide.
function sparkline(site, code) {
  if (!code) return "";
  const corrected = (site.history_corrected || {})[code];
  const points = corrected && corrected.length ? corrected : (site.history || {})[code] || [];
  if (points.length < 2) return `<p class="dim spark-none">${esc(t("trend"))} · ${esc(t("no_trend"))}</p>`;
  const lim = (site.limits || {})[code], max = lim && (lim.max ?? lim.high);
  const W = 240, H = 44;
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const vs = points.map((p) => p[1]).concat(max != null ? [max] : []);
  const lo = Math.min(...vs, 0), hi = Math.max(...vs) || 1;
  const x = (ms) => ((ms - t0) / Math.max(1, t1 - t0)) * W, y = (v) => H - 2 - ((v - lo) / (hi - lo || 1)) * (H - 4);
  const line = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  const limit = max != null ? `<line class="spark-limit" x1="0" x2="${W}" y1="${y(max).toFixed(1)}" y2="${y(max).toFixed(1)}"></line>` : "";
  return `<p class="spark"><span class="dim">${esc(t("trend"))}</span>
    <svg class="sparkline" data-points="${points.length}" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${limit}<polyline points="${line}"></polyline></svg></p>`;
}

// The enterprise's contact and the map apps' links (built here from the server's URLs: a link
// to another host is navigation, never a load).
function fillWhere(el, site) {
  const box = el.querySelector(".c-where");
  if (box.dataset.done) return;
  box.dataset.done = "1";
  box.innerHTML = "";
  const p = document.createElement("p");
  const contact = site.contact;
  if (contact) {
    p.append(`${t("contact")} ${contact.name} `);
    if (contact.tel) p.append(link(contact.tel, `${t("call")} ${contact.phone}`, "call"));
  } else p.append(t("no_contact"));
  const maps = document.createElement("p");
  maps.className = "maps";
  maps.append(t("go_there") + " ");
  for (const m of site.maps || []) maps.append(link(m.url, t("map_" + m.app), "map-" + m.app));
  box.append(p, maps);
}
function link(url, text, cls) {
  const a = document.createElement("a");
  a.href = url;
  a.textContent = text;
  a.className = "go " + cls;
  if (!url.startsWith("tel:")) { a.target = "_blank"; a.rel = "noopener noreferrer"; }
  return a;
}

function siteOf(id) {
  const asked = ASKED.get(id);
  if (asked && Date.now() - asked.at < SITE_FRESH_MS) return asked.promise;
  const promise = api(`/api/sites/${enc(id)}?hours=6`).then(({ status, body }) => {
    if (status === 200) SITES.set(id, body);
    return SITES.get(id) || null;
  }).catch(() => SITES.get(id) || null);  // offline: what was read before
  ASKED.set(id, { at: Date.now(), promise });
  return promise;
}

// -- the findings form: made once per card, never drawn again while the card lives -----------

function toggleForm(el, c) {
  const work = el.querySelector(".c-work");
  if (work.firstChild) { work.hidden = !work.hidden; const d = draftOf(c.id); if (d) { d.open = !work.hidden; saveDraft(c.id, d); } return; }
  openForm(el, c);
}

function openForm(el, c) {
  const draft = draftOf(c.id) || { text: "", close: false, photos: [], location: null, visited_at: null };
  draft.open = true;
  // The visit starts when the officer opens the form at the site (the phone's own clock).
  draft.visited_at = draft.visited_at || new Date().toISOString();
  saveDraft(c.id, draft);
  const work = el.querySelector(".c-work");
  work.hidden = false;
  work.innerHTML = `<form class="findings">
    <label>${esc(t("findings_label"))}<textarea name="text" maxlength="1300"></textarea></label>
    <label class="check"><input type="checkbox" name="close"> ${esc(t("ask_close"))}</label>
    <div class="photos"><span class="thumbs"></span>
      <label class="photo-btn">${esc(t("take_photo"))}<input type="file" name="photo" accept="image/*" capture="environment"></label></div>
    <p class="visit dim"><span class="visited"></span> · <span class="where-now"></span></p>
    <button class="act" type="submit" data-act="findings">${esc(t("submit"))}</button></form>`;
  const form = work.querySelector("form");
  form.text.value = draft.text;
  form.close.checked = draft.close;
  const keep = () => { const d = draftOf(c.id) || draft; d.text = form.text.value; d.close = form.close.checked; saveDraft(c.id, d); };
  form.text.addEventListener("input", keep);
  form.close.addEventListener("change", keep);
  form.photo.addEventListener("change", () => { const f = form.photo.files[0]; form.photo.value = ""; if (f) takePhoto(el, c, f); });
  form.onsubmit = (e) => { e.preventDefault(); submitFindings(el, c, form); };
  work.querySelector(".visited").textContent = `${t("visited_at")} ${when(draft.visited_at)}`;
  drawThumbs(el, c.site, c.id);
  showLocation(el, draft.location);
  if (!draft.location) locate(el, c.id);
  showState(el, c.id);
}

function showLocation(el, loc, failed) {
  const span = el.querySelector(".where-now");
  if (!span) return;
  span.textContent = loc ? tf("located", { m: Math.round(loc.accuracy_m) }) : failed ? t("no_location") : t("locating");
  span.dataset.located = loc ? "1" : failed ? "0" : "";
  if (failed && failed.message) span.title = failed.message; else span.removeAttribute("title");
}

// Where the officer stands (WGS-84 from the phone's GPS) and how sure: refused or unknown is
// said and nothing waits on it.
function locate(el, id) {
  if (!navigator.geolocation) { showLocation(el, null, { message: "" }); return; }
  navigator.geolocation.getCurrentPosition((pos) => {
    const loc = { lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy_m: Math.min(100000, pos.coords.accuracy) };
    const d = draftOf(id);
    if (d) { d.location = loc; saveDraft(id, d); }
    showLocation(el, loc);
  }, (err) => showLocation(el, null, err), { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 });
}

function drawThumbs(el, site, id) {
  const box = el.querySelector(".thumbs");
  const d = draftOf(id);
  if (!box || !d) return;
  box.innerHTML = d.photos.map((p) => p.sha
    ? `<img class="thumb" data-sha="${esc(p.sha)}" alt="" src="/api/photos/${enc(p.sha)}?site=${enc(site)}">`
    : `<span class="thumb wait" data-key="${esc(p.key)}">${esc(t("photo_wait"))}</span>`).join("");
}

// A photo at most 1600 px on its long side, JPEG at 0.8: a few hundred KB on a weak network.
// createImageBitmap reads the file itself (the CSP lets no blob: URL be an image's source).
async function shrink(file) {
  const image = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, 1600 / Math.max(image.width, image.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(image.width * scale);
  canvas.height = Math.round(image.height * scale);
  canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
  image.close();
  return new Promise((done, fail) => canvas.toBlob((b) => (b ? done(b) : fail(new Error("toBlob"))), "image/jpeg", 0.8));
}

async function takePhoto(el, c, file) {
  let blob;
  try { blob = await shrink(file); } catch (e) { tell(c.id, "photo_unread"); return; }
  const key = "p" + newId();
  try { await photoDo("readwrite", (s) => s.put(blob, key)); } catch (e) { tell(c.id, "photo_unread"); return; }
  const d = draftOf(c.id);
  d.photos.push({ key, sha: null });
  saveDraft(c.id, d);
  drawThumbs(el, c.site, c.id);
  enqueue({ id: key, kind: "photo", key, site: c.site, case: c.id });
}

function submitFindings(el, c, form) {
  const d = draftOf(c.id);
  const text = form.text.value.trim();
  if (!text) { STATE[c.id] = null; const msg = el.querySelector(".c-message"); msg.textContent = t("text_needed"); msg.className = "c-message message error"; return; }
  const body = {
    text, close: form.close.checked,
    // Photos still on their way are named by their local key: the queue sends them first.
    photos: d.photos.map((p) => p.sha || "local:" + p.key),
    location: d.location || null, visited_at: d.visited_at || null,
  };
  form.querySelector('[data-act="findings"]').disabled = true;
  saveDraft(c.id, null);
  el.querySelector(".c-work").innerHTML = "";
  enqueue({ id: newId(), kind: "findings", site: c.site, case: c.id, body });
}

// -- the list ------------------------------------------------------------------------------------

function sortRows(rows) {
  return rows.slice().sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || (a.first_seen < b.first_seen ? 1 : -1));
}

// The list as the API has it now, into the cards already there: a card is filled again (its
// form and draft untouched), a new case gets a new card in its place, a case gone loses its
// card unless the officer is writing on it. Cards never move under a finger.
function reconcile(rows) {
  const box = document.getElementById("cards");
  const doing = sortRows(rows.filter(actionable));
  const idle = rows.filter((c) => !actionable(c));
  ROWS.clear();
  for (const c of rows) ROWS.set(c.id, c);
  let before = null;
  for (const c of doing.slice().reverse()) {
    let el = cardOf(c.id);
    if (!el) {
      el = newCard(c);
      box.insertBefore(el, before || box.querySelector("#folded"));
    }
    fill(el, c);
    before = el;
    siteOf(c.site).then((site) => { if (site) { fillEvidence(el, ROWS.get(c.id) || c); fillWhere(el, site); } });
    const d = draftOf(c.id);
    if (d && d.open && !el.querySelector(".c-work form")) openForm(el, c);
  }
  for (const el of box.querySelectorAll(".card.case")) {
    if (doing.some((c) => c.id === el.dataset.case)) continue;
    const writing = el.querySelector(".c-work form") && !el.querySelector(".c-work").hidden;
    if (writing || QUEUE.some((q) => q.case === el.dataset.case)) {
      el.querySelector(".c-acts").innerHTML = `<span class="dim">${esc(t("gone"))}</span>`;
    } else el.remove();
  }
  drawFolded(idle, doing.length);
}

function drawFolded(idle, shown) {
  const box = document.getElementById("folded");
  const counts = {};
  for (const c of idle) counts[c.status] = (counts[c.status] || 0) + 1;
  const parts = Object.entries(counts).map(([s, n]) => `${statusName(s)} ${n}`).join(" · ");
  const colon = LANG === "zh" ? "：" : ": ";
  box.hidden = !idle.length && shown > 0;
  box.innerHTML = idle.length
    ? `<details><summary>${esc(tf("nothing_now", { n: idle.length }))}${parts ? colon + esc(parts) : ""}</summary>
      ${sortRows(idle).map((c) => `<p class="dim" data-idle="${esc(c.id)}">${esc(c.site_name)} · ${esc(statusName(c.status))} · ${esc(said(c.detail))}</p>`).join("")}</details>`
    : shown ? "" : `<p class="dim">${esc(t("no_cases"))}</p>`;
}

async function loadCases() {
  let answer;
  try { answer = await api("/api/cases"); } catch (e) { return; }  // offline: the cards stay as they are
  const { status, body } = answer;
  const err = document.getElementById("cases-error");
  if (status !== 200) { err.textContent = refusal({ status, body }); err.title = body.error || ""; return; }
  err.textContent = "";
  document.getElementById("mine").textContent = `${t("my_cases")} · ${gridNames(body.grids)}`;
  reconcile(body.cases);
}

let REFRESH = null;
function soon() { clearTimeout(REFRESH); REFRESH = setTimeout(loadCases, 300); }

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
// A refusal in the page's language; the API's own words only in the title.
function failed(status, body) { return { text: t("failed") + refusal({ status, body }), raw: (body && body.error) || String(status) }; }
function say(el, text, bad) {
  const msg = el.querySelector(".message");
  msg.textContent = typeof text === "object" ? text.text : text;
  if (typeof text === "object") msg.title = text.raw; else msg.removeAttribute("title");
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
    <p class="dim">${esc(t("device"))}${colon()}${esc(m.device || t("whole_site"))}${m.reviewed_by ? ` · ${esc(t("reviewer"))} ${esc(m.reviewed_by)}` : ""}</p>
    <p class="proofs">${esc(t("proofs"))}${colon()}${proofs || `<span class="dim">${esc(t("no_proof"))}</span>`}</p>
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
  const unread = body.errors.map((e) => `<p class="error card" title="${esc(e.error)}">${esc(t("marks_unread"))}${esc(siteName(e.site))}</p>`).join("");
  box.innerHTML = (role === "enterprise" ? declareForm() : "") +
    `<h2 class="section">${esc(title)}</h2>${unread}<div id="mark-cards"></div>`;
  if (role === "enterprise") bindDeclare(document.getElementById("declare"));
  drawMarks(role);
}

async function load() {
  const city = await api("/api/city");
  CITY = city.body;
  learnNames(CITY);
  const me = CITY.me;
  ME = me;
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
    drain();  // what waited in the queue from before (a reload, a sign-in again)
  }
  document.body.dataset.ready = "1";
  return me;
}

headerBar("phone");
translate();
// Back from a cut: the cases again (into the cards there), and the queue at once.
load().then((me) => { if (me.role !== "enterprise") live({ case: soon }, () => { loadCases(); drain(); }); });
