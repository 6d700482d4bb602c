// sluice web UI: Shared by every view: the API client (with the token), live event streams, element builders, formatting, navigation.

export const API = "/api/v1";
export const TERMINAL = new Set(["succeeded", "failed", "skipped", "cancelled"]);
export const main = document.getElementById("main");
// What closes the current view's event streams and timers when another is shown.
const cleanup = [];
export function onLeave(fn) { cleanup.push(fn); }
export function leave() { for (const f of cleanup.splice(0)) f(); }
let router = () => {};
/** The function that shows the view of the current location (set once, by main.js). */
export function setRouter(fn) { router = fn; }


// Chromium aborts every request in flight when an address or link on the host changes
// (net::ERR_NETWORK_CHANGED, a TypeError to fetch), which happens each time a worker on the same
// host brings a run's bridge up or down, as it does with Docker's. A request that may be sent twice
// (a read; logging in or out) is sent again a few times; a write is not, since the server may have
// done it, and its error is shown.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export async function send(url, init = {}, again = false) {
  const method = (init.method || "GET").toUpperCase();
  const retry = again || method === "GET" || method === "HEAD";
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (e) {
      if (!retry || !(e instanceof TypeError) || attempt >= 4) throw e;
      await sleep(100 * 2 ** attempt);
    }
  }
}

// Logging in: the server keeps the token in an HttpOnly, SameSite=Strict cookie that every
// request of this page (event streams and downloads too) carries; scripts never hold it.
let loggingIn = null;
function login(why) {
  if (loggingIn) return loggingIn;
  loggingIn = new Promise((resolve) => {
    const input = h("input", { type: "password", name: "token", autocomplete: "current-password", placeholder: "token", "aria-label": "token" });
    const err = h("p", { class: "error", role: "alert" }, why || "");
    const form = h("form", { class: "login", id: "login" },
      h("h1", {}, "Log in to sluice"),
      h("p", { class: "muted" }, "This server needs a token (`sluice tokens create NAME --role read`)."),
      input, h("button", { type: "submit" }, "Log in"), err);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let r;
      try {
        r = await send(API + "/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: input.value.trim() }) }, true);
      } catch (e) { err.textContent = e.message; return; }
      // Logged in: the page starts again, every view and stream now carrying the cookie.
      if (r.ok) { location.reload(); resolve(); return; }
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error.message || msg; } catch (_) { /* not JSON */ }
      err.textContent = msg;
    });
    main.replaceChildren(form);
    input.focus();
  });
  return loggingIn;
}

/** Forgets the login and shows the login form. */
export async function logout() {
  await send(API + "/logout", { method: "POST" }, true);
  location.reload();
}

export async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  let body = opts.body;
  if (body && typeof body !== "string") {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const r = await send(API + path, Object.assign({}, opts, { headers, body }));
  if (r.status === 401) {
    await login();
    return api(path, opts);
  }
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { const e = await r.json(); msg = (e.error && e.error.message) || e.message || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}
export async function json(path, opts) { return (await api(path, opts)).json(); }

export function events(path, handlers) {
  const es = new EventSource(API + path);
  const conn = document.getElementById("conn");
  es.onopen = () => conn.classList.add("live");
  es.onerror = () => conn.classList.remove("live");
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  onLeave(() => { es.close(); conn.classList.remove("live"); });
  return es;
}

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
export const svgNS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function badge(state) { return h("span", { class: "badge " + state, "data-state": state }, state); }
export function fmtDur(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + Math.round(s % 60) + "s";
  return Math.floor(m / 60) + "h " + (m % 60) + "m";
}
export function fmtTime(ts) { return ts ? new Date(ts).toLocaleString() : ""; }
export function fmtBytes(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"]; let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + " " + u[i];
}
export function fmtVal(v) { return typeof v === "string" ? v : JSON.stringify(v); }
export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
export function go(path) { history.pushState(null, "", path); router(); }
export function link(path, ...children) {
  return h("a", { href: path, onclick: (e) => { if (!e.ctrlKey && !e.metaKey && e.button === 0) { e.preventDefault(); go(path); } } }, ...children);
}
export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter((p) => p[1] !== undefined && p[1] !== null && p[1] !== "")
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** How long ago `ts` was: "just now", "5 min ago", "3 h ago", "2 days ago". */
export function fmtAgo(ts, now = Date.now()) {
  if (!ts) return "";
  const s = Math.max(0, (now - Date.parse(ts)) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  const d = Math.round(s / 86400);
  return d === 1 ? "yesterday" : d + " days ago";
}
/** A time as "5 min ago", with the exact time as its tooltip. */
export function ago(ts) { return h("time", { datetime: ts, title: fmtTime(ts) }, fmtAgo(ts)); }
/** How long a run or task has taken: its duration once ended, the time since it began while it runs. */
export function elapsed(r) {
  if (r.duration_ms !== null && r.duration_ms !== undefined) return fmtDur(r.duration_ms);
  const from = r.started_at || r.created_at;
  return from && !TERMINAL.has(r.state) ? fmtDur(Math.max(0, Date.now() - Date.parse(from))) : "";
}
export function labelChips(labels) {
  const e = Object.entries(labels || {});
  return e.length ? h("span", { class: "labels" }, e.map(([k, v]) => h("span", { class: "label-chip", title: "label" }, k + "=" + v))) : null;
}
/** The page for an address that shows nothing: where to go instead. */
export function notFound(what) {
  main.replaceChildren(h("div", { class: "notfound" },
    h("h1", {}, "Not found"),
    h("p", {}, what || ("Nothing lives at " + location.pathname + ".")),
    h("p", {}, "Try ", link("/runs", "the runs"), ", ", link("/pipelines", "the pipelines"), ", or the ", h("a", { href: API + "/openapi.json" }, "API description"), "."),
  ));
}
/** `text` parsed as JSON, or an error naming `what` and where the text stops making sense. */
export function parseJson(text, what) {
  try { return JSON.parse(text); } catch (e) { throw new Error(what + " is not valid JSON: " + e.message); }
}
