// Sign a phone in from the desk: signinCode(container) draws a button that asks the console for
// a one-time code (POST /api/signin-codes) and shows it as digits and as a QR code (an SVG the
// server drew) with the minutes left. The phone scans it, or types the digits at /login; the
// code works once, for 5 minutes, and gives the phone a session of this person's own token.
"use strict";

Object.assign(WORDS, {
  signin_phone: ["手机扫码登录", "Sign in a phone"], signin_code: ["一次性登录码", "One-time code"],
  signin_scan: ["用手机扫描二维码，或在登录页输入登录码", "Scan with the phone, or type the code on its sign-in page"],
  signin_left: ["有效期还剩 {s} 秒，仅可使用一次", "{s} s left; works once"],
  signin_expired: ["登录码已过期，请重新获取", "the code has expired: ask for another"],
  signin_failed: ["未能获取登录码", "no code was given"],
});

function signinCode(container) {
  container.classList.add("signin-code");
  container.innerHTML = `<button type="button" class="signin-ask">${esc(t("signin_phone"))}</button><div class="signin-shown" hidden></div>`;
  const shown = container.querySelector(".signin-shown");
  let timer = null;
  container.querySelector(".signin-ask").onclick = async () => {
    clearInterval(timer);
    const { status, body } = await post("/api/signin-codes", {});
    shown.hidden = false;
    if (status !== 201) { shown.innerHTML = `<p class="error" title="${esc(body.error || "")}">${esc(t("signin_failed"))}</p>`; return; }
    // The code in two groups of four, as it is read aloud; typed with or without the space.
    const digits = body.code.replace(/(\d{4})(?=\d)/g, "$1 ");
    shown.innerHTML = `<div class="signin-qr">${body.qr_svg}</div>
      <p>${esc(t("signin_code"))} <b class="signin-digits" data-code="${esc(body.code)}">${esc(digits)}</b></p>
      <p class="dim">${esc(t("signin_scan"))}</p><p class="dim signin-left"></p>`;
    const left = shown.querySelector(".signin-left");
    const end = Date.now() + body.ttl_s * 1000;  // the phone's clock may differ from the server's
    const tick = () => {
      const s = Math.round((end - Date.now()) / 1000);
      if (s > 0) { left.textContent = t("signin_left").replace("{s}", s); return; }
      clearInterval(timer);
      shown.innerHTML = `<p class="error">${esc(t("signin_expired"))}</p>`;
    };
    tick();
    timer = setInterval(tick, 1000);
  };
}
