// The phone: an officer's own grids, open cases first; acknowledge and record findings through
// the case API, with the officer's own token (the console passes it on).
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

async function load() {
  const city = await api("/api/city");
  POLLUTANT_NAMES = city.body.pollutants || {};
  showWho(city.body.me);
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
  document.body.dataset.ready = "1";
}

let REFRESH = null;
function soon() { clearTimeout(REFRESH); REFRESH = setTimeout(load, 300); }

headerBar("phone");
translate();
load().then(() => live({ case: soon }, load));
