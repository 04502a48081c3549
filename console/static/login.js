// The sign-in page's script (a file of its own: the console's CSP runs no inline script).
translate();
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
  if (r.status !== 200) { document.getElementById("message").textContent = body.error || r.status; return; }
  location.href = body.next;
};
