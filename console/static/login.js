// The sign-in page's script (a file of its own: the console's CSP runs no inline script).
Object.assign(WORDS, {
  code_label: ["一次性登录码（工作台上获取）", "One-time code (from the desk)"],
  code_bad: ["登录码无效或已过期，请在工作台重新获取", "the code is not valid or has expired: ask the desk for another"],
  code_wait: ["登录尝试过多，请稍后再试", "too many sign-in attempts: try again later"],
  code_failed: ["登录失败，请稍后再试", "sign-in failed: try again later"],
  token_bad: ["令牌无效", "the token is not valid"],
});
translate();
document.title = `ecowatch · ${t("sign_in")}`;
document.getElementById("lang").textContent = t("lang");
document.getElementById("lang").onclick = (e) => { e.preventDefault(); toggleLang(); };
// A link with the token in its fragment (the demo prints one) signs in at once; the fragment
// never leaves the browser, and is wiped from the address bar.
const given = new URLSearchParams(location.hash.slice(1)).get("token");
if (given) {
  history.replaceState(null, "", location.pathname + location.search);
  document.getElementById("token").value = given;
  setTimeout(() => document.getElementById("login").requestSubmit(), 0);
}
document.getElementById("login").onsubmit = async (e) => {
  e.preventDefault();
  // Where to go after is the server's to judge (a path of this site only), and it says so.
  const next = new URLSearchParams(location.search).get("next");
  const r = await fetch("/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: document.getElementById("token").value, next: next || "" }) });
  const body = await r.json().catch(() => ({}));
  if (r.status !== 200) {
    // In the page's language; the server's own words only in the title.
    const said = { 401: "token_bad", 429: "code_wait" }[r.status] || "code_failed";
    const message = document.getElementById("message");
    message.textContent = t(said);
    message.title = body.error || String(r.status);
    return;
  }
  location.href = body.next;
};

// A one-time code from the desk (typed, or in the QR code's link: /login?code=…) signs in
// once; it is wiped from the address bar, and said in this page's language if refused.
document.getElementById("code-login").onsubmit = async (e) => {
  e.preventDefault();
  const next = new URLSearchParams(location.search).get("next");
  const r = await fetch("/login/code", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: document.getElementById("code").value, next: next || "" }) });
  const body = await r.json().catch(() => ({}));
  const message = document.getElementById("code-message");
  if (r.status !== 200) {
    message.textContent = t(r.status === 401 ? "code_bad" : r.status === 429 ? "code_wait" : "code_failed");
    message.title = body.error || "";
    return;
  }
  location.href = body.next;
};
const code = new URLSearchParams(location.search).get("code");
if (code) {
  const rest = new URLSearchParams(location.search);
  rest.delete("code");
  history.replaceState(null, "", location.pathname + (rest.toString() ? "?" + rest : ""));
  document.getElementById("code").value = code;
  setTimeout(() => document.getElementById("code-login").requestSubmit(), 0);
}
