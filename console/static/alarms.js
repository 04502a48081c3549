// The live alarm list of the wall and the desk (报警): new exceedances, devices offline, cases
// escalated or overdue. A new alarm sounds and flashes until someone silences it (消警), which
// silences it on every screen. Needs common.js (t, named, said, when, api, post).
"use strict";

Object.assign(WORDS, {
  alarms: ["实时报警", "Alarms"], silence: ["消警", "Silence"], silenced: ["已消警", "silenced"],
  unsilenced: ["未消警", "not silenced"], no_alarms: ["暂无报警", "no alarms"],
  enable_sound: ["点击启用报警声音", "Click to enable the alarm sound"],
  sound_on: ["报警声音已启用", "alarm sound on"], cleared: ["已恢复", "cleared"],
  silenced_by: ["消警人", "silenced by"], alarm_times: ["累计", "count"],
  silence_failed: ["消警失败", "silence failed"],
});

const Alarms = (() => {
  let box = null, canSilence = false, rows = new Map(), view = null, refresh = null;
  // Alarms that arrived while this page was open and are still not silenced: they ring.
  const ringing = new Set();
  let audio = null, beat = null;

  function multiple(a) {
    if (a.multiple == null) return "";
    // 超标 2.00 倍 is the excess over the limit; English says the value's multiple of it.
    return LANG === "zh" ? `超标 ${a.multiple} 倍` : `${(Number(a.multiple) + 1).toFixed(2)}× the limit`;
  }

  function row(a) {
    const what = a.pollutant ? pollutantName(a.pollutant) : "";
    const state = a.silenced_by
      ? `<span class="dim">${esc(t("silenced"))} · ${esc(t("silenced_by"))} ${esc(whoName(a.silenced_by))}</span>`
      : canSilence ? `<button class="silence" data-silence="${esc(a.id)}">${esc(t("silence"))}</button>` : "";
    const cleared = a.cleared_at ? ` <span class="badge s-normal">${esc(t("cleared"))}</span>` : "";
    const count = a.count > 1 ? ` <span class="dim">${esc(t("alarm_times"))} ${a.count}</span>` : "";
    return `<li class="alarm k-${esc(a.kind)}${a.silenced_by ? " silenced" : ""}${ringing.has(a.id) ? " ringing" : ""}"
      data-alarm="${esc(a.id)}" data-kind="${esc(a.kind)}" data-silenced="${a.silenced_by ? 1 : 0}">
      <span class="badge">${esc(named("alarm_kinds", a.kind))}</span>
      <b>${esc(a.site_name)}</b> ${esc(what)} <b class="multiple">${esc(multiple(a))}</b>${cleared}${count}
      <span class="when">${esc(when(a.last_at || a.at))}</span>
      <div class="detail">${esc(said(a.detail))}</div><div class="state">${state}</div></li>`;
  }

  // "operator:王" → 值班员 王; an officer's id as it is.
  function whoName(who) {
    const [role, name] = String(who).split(":");
    return name && NAMES.roles && NAMES.roles[role] ? `${named("roles", role)} ${name}` : who;
  }

  function counts() {
    if (!view) return "";
    const c = view.counts;
    const kinds = Object.entries(c.by_kind).filter(([, n]) => n.new + n.silenced)
      .map(([k, n]) => `<span class="chip" data-count-kind="${esc(k)}">${esc(named("alarm_kinds", k))} <b>${n.new}</b>/${n.new + n.silenced}</span>`).join("");
    const grids = Object.fromEntries((typeof CITY !== "undefined" && CITY && CITY.grids ? CITY.grids : []).map((g) => [g.id, g.name]));
    const byGrid = Object.entries(c.by_grid).filter(([, n]) => n.new + n.silenced)
      .map(([g, n]) => `<span class="chip" data-count-grid="${esc(g)}">${esc(grids[g] || g)} <b>${n.new}</b>/${n.new + n.silenced}</span>`).join("");
    return `<div class="alarm-counts"><span class="chip new" data-count="new">${esc(t("unsilenced"))} <b>${c.new}</b></span>
      <span class="chip" data-count="silenced">${esc(t("silenced"))} <b>${c.silenced}</b></span>${kinds}</div>
      <div class="alarm-counts">${byGrid}</div>`;
  }

  function draw() {
    const list = [...rows.values()].sort((a, b) => (!!a.silenced_by - !!b.silenced_by) || (Date.parse(b.last_at || b.at) - Date.parse(a.last_at || a.at)));
    const sound = audio && audio.state === "running" ? "" : `<button class="enable-sound" data-act="sound">${esc(t("enable_sound"))}</button>`;
    box.innerHTML = `<h2>${esc(t("alarms"))} ${sound}</h2>${counts()}
      <ol class="alarms">${list.length ? list.map(row).join("") : `<li class="dim">${esc(t("no_alarms"))}</li>`}</ol>`;
    box.querySelectorAll("[data-silence]").forEach((b) => { b.onclick = () => silence(b.dataset.silence, b); });
    const s = box.querySelector('[data-act="sound"]');
    if (s) s.onclick = () => { ensureAudio(); draw(); };
    box.classList.toggle("flash", ringing.size > 0);
    box.dataset.ringing = String(ringing.size);
  }

  async function silence(id, button) {
    button.disabled = true;
    const { status } = await post(`/api/alarms/${encodeURIComponent(id)}/silence`, {});
    if (status !== 202) { button.disabled = false; button.textContent = `${t("silence_failed")} (${status})`; }
    // The silence comes back over the live feed, for this screen as for every other.
  }

  // A beep through WebAudio: browsers let a page sound only after a person touched it, so
  // the list offers a button until then (a kiosk's Chromium may be started with
  // --autoplay-policy=no-user-gesture-required).
  function ensureAudio() {
    if (!audio) { try { audio = new AudioContext(); } catch (e) { return; } }
    if (audio.state === "suspended") audio.resume();
  }
  function beep() {
    box.dataset.beeps = String(Number(box.dataset.beeps || 0) + 1);
    if (!audio || audio.state !== "running") return;
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; o.type = "square";
    g.gain.setValueAtTime(0.2, audio.currentTime); g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    o.connect(g); g.connect(audio.destination); o.start(); o.stop(audio.currentTime + 0.4);
  }
  function ring() {
    if (ringing.size && !beat) { beep(); beat = setInterval(() => { if (ringing.size) beep(); }, 5000); }
    if (!ringing.size && beat) { clearInterval(beat); beat = null; }
  }

  async function load() {
    const { status, body } = await api("/api/alarms");
    if (status !== 200) return;
    view = body;
    rows = new Map(body.alarms.map((a) => [a.id, a]));
    for (const id of [...ringing]) if (!rows.has(id) || rows.get(id).silenced_by) ringing.delete(id);
    draw(); ring();
    if (typeof onAlarmsView === "function") onAlarmsView(body);  // the wall's charts
  }

  return {
    mount(el, options) {
      box = el; canSilence = !!(options && options.canSilence);
      box.classList.add("alarm-panel");
      document.addEventListener("click", ensureAudio, { once: true });
      return load();
    },
    // One alarm raised, added to or silenced (the live feed's "alarm" event).
    onAlarm(msg) {
      if (!box) return;
      const a = msg.alarm, before = rows.get(a.id);
      rows.set(a.id, a);
      if (a.silenced_by) ringing.delete(a.id);
      else if (!before || a.count > before.count) ringing.add(a.id);  // new, or more of the same
      draw(); ring();
      clearTimeout(refresh);  // the counts and the charts, once a burst is over
      refresh = setTimeout(load, 1000);
    },
    reload: load,
  };
})();
window.Alarms = Alarms;
