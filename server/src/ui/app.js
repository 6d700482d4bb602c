// sluice's web UI: runs (live list, filters, pages), a run (live DAG, task panel with live logs,
// artifacts with previews, metrics), run comparison, pipelines (versions, graph, start form).
// Plain JavaScript, no build step: the server embeds this file.
"use strict";

const API = "/api/v1";
const TERMINAL = new Set(["succeeded", "failed", "skipped", "cancelled"]);
const main = document.getElementById("main");
let cleanup = []; // closes the current view's event streams and timers

// ---------- helpers ----------

function token() { return localStorage.getItem("sluice.token") || ""; }

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  if (opts.body && typeof opts.body !== "string") {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.body);
  }
  const r = await fetch(API + path, Object.assign({}, opts, { headers }));
  if (r.status === 401) {
    const t = prompt("This sluice server needs a token (SLUICE_TOKEN):");
    if (t) { localStorage.setItem("sluice.token", t); return api(path, opts); }
  }
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { const e = await r.json(); msg = e.message || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}
async function json(path, opts) { return (await api(path, opts)).json(); }

function events(path, handlers) {
  const sep = path.includes("?") ? "&" : "?";
  const url = API + path + (token() ? sep + "access_token=" + encodeURIComponent(token()) : "");
  const es = new EventSource(url);
  const conn = document.getElementById("conn");
  es.onopen = () => conn.classList.add("live");
  es.onerror = () => conn.classList.remove("live");
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  cleanup.push(() => { es.close(); conn.classList.remove("live"); });
  return es;
}

function h(tag, attrs, ...children) {
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
const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function badge(state) { return h("span", { class: "badge " + state, "data-state": state }, state); }
function fmtDur(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + Math.round(s % 60) + "s";
  return Math.floor(m / 60) + "h " + (m % 60) + "m";
}
function fmtTime(ts) { return ts ? new Date(ts).toLocaleString() : ""; }
function fmtBytes(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"]; let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + " " + u[i];
}
function fmtVal(v) { return typeof v === "string" ? v : JSON.stringify(v); }
function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
function go(path) { history.pushState(null, "", path); route(); }
function link(path, ...children) {
  return h("a", { href: path, onclick: (e) => { if (!e.ctrlKey && !e.metaKey && e.button === 0) { e.preventDefault(); go(path); } } }, ...children);
}
function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter((p) => p[1] !== undefined && p[1] !== null && p[1] !== "")
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
function paramsTable(obj) {
  const keys = Object.keys(obj || {});
  if (!keys.length) return h("p", { class: "muted" }, "none");
  return h("table", {}, h("tbody", {}, keys.map((k) => h("tr", {}, h("td", {}, k), h("td", {}, fmtVal(obj[k]))))));
}

// ---------- router ----------

function route() {
  for (const f of cleanup) f();
  cleanup = [];
  const p = location.pathname.replace(/\/+$/, "");
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", p.startsWith("/" + a.dataset.nav) || (p === "" && a.dataset.nav === "runs"));
  }
  let m;
  const view =
    (p === "" || p === "/runs") ? runsView() :
    (m = p.match(/^\/runs\/([^/]+)(?:\/tasks\/([^/]+))?$/)) ? runView(decodeURIComponent(m[1]), m[2] && decodeURIComponent(m[2])) :
    (p === "/compare") ? compareView() :
    (p === "/pipelines") ? pipelinesView() :
    (m = p.match(/^\/pipelines\/([^/]+)$/)) ? pipelineView(decodeURIComponent(m[1])) :
    Promise.resolve(main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, link("/runs", "Back to runs"))));
  view.catch((e) => main.replaceChildren(h("h1", {}, "Error"), h("p", { class: "error" }, e.message)));
}
window.addEventListener("popstate", route);

// ---------- runs ----------

async function runsView() {
  const q = new URLSearchParams(location.search);
  const state = h("select", { "aria-label": "state" },
    ["", "running", "succeeded", "failed", "cancelling", "cancelled"].map((v) => h("option", { value: v, selected: q.get("state") === v }, v || "all states")));
  const pipeline = h("input", { placeholder: "pipeline", "aria-label": "pipeline", value: q.get("pipeline") || "" });
  const search = h("input", { placeholder: "search names", "aria-label": "search", value: q.get("q") || "", type: "search" });
  const compare = h("button", { disabled: true, onclick: () => go("/compare?runs=" + [...selected].join(",")) }, "Compare");
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const selected = new Set();
  const tokens = [null];
  let page = 0;

  function apply() {
    const p = new URLSearchParams();
    if (state.value) p.set("state", state.value);
    if (pipeline.value) p.set("pipeline", pipeline.value);
    if (search.value) p.set("q", search.value);
    history.replaceState(null, "", "/runs" + (p.toString() ? "?" + p : ""));
    tokens.length = 1; page = 0; load();
  }
  async function load() {
    const p = new URLSearchParams(location.search);
    p.set("page_size", "50");
    if (tokens[page]) p.set("page_token", tokens[page]);
    const list = await json("/runs?" + p);
    tokens[page + 1] = list.next_page_token || null;
    body.replaceChildren(...(list.runs.length ? list.runs.map((r) => h("tr", { "data-run": r.id },
      h("td", {}, h("input", { type: "checkbox", "aria-label": "select " + r.name, checked: selected.has(r.id), onchange: (e) => {
        e.target.checked ? selected.add(r.id) : selected.delete(r.id);
        compare.disabled = selected.size < 2;
      } })),
      h("td", {}, link("/runs/" + r.id, r.name)),
      h("td", {}, r.pipeline, r.pipeline_version ? h("span", { class: "muted" }, " v" + r.pipeline_version) : ""),
      h("td", {}, badge(r.state)),
      h("td", {}, fmtTime(r.created_at)),
      h("td", { class: "num" }, fmtDur(r.duration_ms ?? (r.state === "running" ? Date.now() - Date.parse(r.created_at) : null))),
    )) : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs match."))]));
    pager.replaceChildren(
      h("button", { disabled: page === 0, onclick: () => { page--; load(); } }, "← Newer"),
      h("span", { class: "muted" }, "page " + (page + 1)),
      h("button", { disabled: !tokens[page + 1], onclick: () => { page++; load(); } }, "Older →"));
  }
  state.addEventListener("change", apply);
  pipeline.addEventListener("input", debounce(apply, 300));
  search.addEventListener("input", debounce(apply, 300));
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar" }, state, pipeline, search, compare),
    h("table", { id: "runs" }, h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Name"), h("th", {}, "Pipeline"), h("th", {}, "State"), h("th", {}, "Started"), h("th", {}, "Duration"))), body),
    pager);
  await load();
  // New runs and state changes appear without a reload.
  const reload = debounce(load, 250);
  events("/events", { run: reload, lagged: reload });
  const tick = setInterval(() => { if (body.querySelector("[data-state=running]")) reload(); }, 5000);
  cleanup.push(() => clearInterval(tick));
}

// ---------- a run ----------

async function runView(id, taskName) {
  let run = await json("/runs/" + encodeURIComponent(id));
  let selectedTask = taskName || null;
  const header = h("div");
  const graphBox = h("div", { class: "card graph" });
  const panel = h("div", { class: "card", id: "panel" });
  const layout = h("div", { class: "layout" + (selectedTask ? "" : " nopanel") }, graphBox, panel);
  main.replaceChildren(header, layout);
  const nodes = new Map();
  let panelCtl = null;

  function renderHeader() {
    const r = run;
    const cancel = h("button", { class: "danger", disabled: TERMINAL.has(r.state) || r.state === "cancelling", onclick: async () => {
      if (!confirm("Cancel run " + r.name + "?")) return;
      await api("/runs/" + r.id + "/cancel", { method: "POST" });
    } }, "Cancel");
    const rerun = h("button", { disabled: !TERMINAL.has(r.state), title: "a new run that reuses what succeeded and runs the rest again", onclick: async () => {
      const d = await json("/runs/" + r.id + "/rerun", { method: "POST" });
      go("/runs/" + d.id);
    } }, "Rerun");
    header.replaceChildren(
      h("h1", {}, r.name, badge(r.state), cancel, rerun),
      h("div", { class: "card" }, kv([
        ["run", r.id], ["pipeline", r.pipeline_version ? link("/pipelines/" + encodeURIComponent(r.pipeline), r.pipeline + " v" + r.pipeline_version) : r.pipeline],
        ["started", fmtTime(r.created_at)], ["finished", fmtTime(r.finished_at)], ["duration", fmtDur(r.duration_ms)],
        ["error", r.error ? h("span", { class: "error" }, r.error) : null],
        ["parameters", Object.keys(r.params || {}).length ? Object.entries(r.params).map(([k, v]) => k + "=" + fmtVal(v)).join("  ") : null],
      ])));
  }
  function select(name) {
    selectedTask = name;
    history.replaceState(null, "", "/runs/" + id + (name ? "/tasks/" + encodeURIComponent(name) : ""));
    layout.classList.toggle("nopanel", !name);
    for (const [n, g] of nodes) g.classList.toggle("selected", n === name);
    if (panelCtl) panelCtl.close();
    panelCtl = name ? taskPanel(panel, run, name) : null;
  }
  renderHeader();
  // Loops and groups run no container of their own: drawn dashed.
  drawGraph(graphBox, run.tasks.map((t) => ({ name: t.name, deps: t.depends_on, state: t.state, control: !t.image })), nodes, select);
  if (selectedTask) select(selectedTask);

  const refresh = debounce(async () => {
    run = await json("/runs/" + encodeURIComponent(id));
    renderHeader();
    for (const t of run.tasks) setNodeState(nodes.get(t.name), t.state, t.attempt);
    if (panelCtl) panelCtl.update(run);
  }, 150);
  events("/runs/" + encodeURIComponent(id) + "/events?logs=false", {
    task: (e) => { setNodeState(nodes.get(e.task), e.state, e.attempt); refresh(); },
    run: () => refresh(),
  });
  cleanup.push(() => { if (panelCtl) panelCtl.close(); });
}

function setNodeState(g, state, attempt) {
  if (!g) return;
  const keep = ["selected", "control"].filter((c) => g.classList.contains(c));
  g.setAttribute("class", ["node", "state-" + state, ...keep].join(" "));
  g.dataset.state = state;
  g.querySelector(".state").textContent = state + (attempt > 1 ? " · attempt " + attempt : "");
}

// A layered drawing: each step one layer below its deepest dependency, the order in each layer
// chosen by the average position of its dependencies (barycentre), edges as curves.
function drawGraph(box, tasks, nodes, onSelect) {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const layer = new Map();
  const depth = (n, seen = new Set()) => {
    if (layer.has(n)) return layer.get(n);
    if (seen.has(n)) return 0;
    seen.add(n);
    const deps = (byName.get(n)?.deps || []).filter((d) => byName.has(d));
    const l = deps.length ? Math.max(...deps.map((d) => depth(d, seen))) + 1 : 0;
    layer.set(n, l);
    return l;
  };
  tasks.forEach((t) => depth(t.name));
  const layers = [];
  for (const t of tasks) (layers[layer.get(t.name)] ||= []).push(t.name);
  const pos = new Map();
  layers.forEach((names, li) => {
    if (li > 0) {
      const bary = (n) => { const d = byName.get(n).deps.filter((x) => pos.has(x)); return d.length ? d.reduce((a, x) => a + pos.get(x), 0) / d.length : 0; };
      names.sort((a, b) => bary(a) - bary(b));
    }
    names.forEach((n, i) => pos.set(n, i));
  });
  const W = 170, H = 46, GX = 26, GY = 52, M = 16;
  const widest = Math.max(...layers.map((l) => l.length));
  const width = Math.max(widest * (W + GX) - GX + 2 * M, 300);
  const xy = new Map();
  layers.forEach((names, li) => {
    const off = (width - (names.length * (W + GX) - GX)) / 2;
    names.forEach((n, i) => xy.set(n, [off + i * (W + GX), M + li * (H + GY)]));
  });
  const height = layers.length * (H + GY) - GY + 2 * M;
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "pipeline graph" });
  for (const t of tasks) for (const d of t.deps) {
    if (!xy.has(d)) continue;
    const [x1, y1] = xy.get(d), [x2, y2] = xy.get(t.name);
    const a = [x1 + W / 2, y1 + H], b = [x2 + W / 2, y2];
    const my = (a[1] + b[1]) / 2;
    svg.append(s("path", { class: "edge", d: `M${a[0]},${a[1]} C${a[0]},${my} ${b[0]},${my} ${b[0]},${b[1]}` }));
  }
  for (const t of tasks) {
    const [x, y] = xy.get(t.name);
    const label = t.name.length > 22 ? t.name.slice(0, 21) + "…" : t.name;
    const g = s("g", { class: t.control ? "node control" : "node", transform: `translate(${x},${y})`, tabindex: "0", role: "button", "data-task": t.name, "aria-label": "step " + t.name },
      s("title", {}, t.name), s("rect", { width: W, height: H }),
      s("text", { x: 10, y: 19 }, label), s("text", { x: 10, y: 36, class: "state" }, t.state || ""));
    if (onSelect) {
      g.addEventListener("click", () => onSelect(t.name));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(t.name); } });
    }
    nodes.set(t.name, g);
    if (t.state) setNodeState(g, t.state, 1);
    svg.append(g);
  }
  box.replaceChildren(svg);
}

function taskPanel(panel, run, name) {
  let task = run.tasks.find((t) => t.name === name);
  const info = h("div");
  const logBox = h("div", { class: "log", id: "log", tabindex: "0", "aria-label": "log" });
  const follow = h("input", { type: "checkbox", checked: true, id: "follow" });
  const artifacts = h("div");
  const preview = h("div");
  let lines = [];
  let seen = new Set();
  let es = null;
  const base = "/runs/" + encodeURIComponent(run.id) + "/tasks/" + encodeURIComponent(name);

  function renderInfo() {
    const t = task;
    info.replaceChildren(
      h("h2", {}, t.name, " ", badge(t.state), " ", h("button", { "aria-label": "close panel", onclick: () => go("/runs/" + run.id) }, "×")),
      kv([
        ["cached", t.cached_from ? h("span", {}, "reused the result of run ", link("/runs/" + t.cached_from, t.cached_from)) : null],
        ["attempt", t.attempt], ["image", t.image], ["digest", t.image_digest], ["worker", t.worker],
        ["resources", resources(t.resources)],
        ["ready", fmtTime(t.ready_at)], ["started", fmtTime(t.started_at)], ["finished", fmtTime(t.finished_at)],
        ["duration", fmtDur(t.duration_ms)], ["exit code", t.exit_code], ["error", t.error ? h("span", { class: "error" }, t.error) : null],
      ]),
      t.attempts && t.attempts.length > 1 ? h("div", {}, h("h2", {}, "Attempts"), h("table", { class: "attempts" }, h("tbody", {}, t.attempts.map((a) => h("tr", {},
        h("td", {}, "#" + a.attempt), h("td", {}, badge(a.state)), h("td", {}, a.exit_code ?? ""), h("td", {}, fmtTime(a.finished_at)), h("td", { class: "error" }, a.error || "")))))) : "",
      t.retry_at ? h("p", { class: "muted" }, "next attempt at " + fmtTime(t.retry_at)) : "",
      h("h2", {}, "Inputs"), paramsTable(t.inputs),
      h("h2", {}, "Outputs"), paramsTable(t.outputs));
    artifacts.replaceChildren(h("h2", {}, "Artifacts"), t.artifacts.length ? h("table", {}, h("tbody", {}, t.artifacts.map((a) => h("tr", {},
      h("td", {}, a.name), h("td", { class: "num" }, fmtBytes(a.size)), h("td", { class: "muted", title: a.sha256 }, a.sha256.slice(0, 12)),
      h("td", {}, h("button", { onclick: () => showArtifact(preview, base + "/artifacts/" + encodeURIComponent(a.name), a.name) }, "Preview"), " ",
        h("a", { href: API + base + "/artifacts/" + encodeURIComponent(a.name) + "?download=true" }, "Download")))))) : h("p", { class: "muted" }, "none"));
  }
  function addLine(l) {
    // A reconnecting stream replays what it sent; each line counts once.
    const key = l.attempt + ":" + l.seq;
    if (seen.has(key)) return;
    seen.add(key);
    lines.push(l);
    const n = lines.length;
    const row = h("div", { class: "line " + l.stream, id: "L" + n, title: l.ts + " · attempt " + l.attempt },
      h("a", { class: "ln", href: "#L" + n }, n), h("span", { class: "txt" }, ansi(l.line)));
    row.dataset.arrived = Date.now(); // for measuring how fast lines arrive
    const empty = logBox.querySelector(".empty");
    if (empty) empty.remove();
    logBox.append(row);
    if (follow.checked) logBox.scrollTop = logBox.scrollHeight;
  }
  async function loadLogs() {
    lines = [];
    seen = new Set();
    logBox.replaceChildren(h("div", { class: "empty" }, "no output yet"));
    if (es) { es.close(); es = null; }
    if (TERMINAL.has(task.state)) {
      let after = 0;
      for (;;) {
        const page = await json(base + "/logs?limit=10000&after=" + after);
        page.lines.forEach(addLine);
        after = page.next_after;
        if (page.lines.length < 10000) break;
      }
    } else {
      es = events(base + "/logs?follow=true", { log: addLine });
    }
    const hash = location.hash.match(/^#L(\d+)$/);
    if (hash) document.getElementById("L" + hash[1])?.scrollIntoView();
  }
  function firstError() {
    const i = lines.findIndex((l) => l.stream === "stderr" && /error|exception|traceback|fatal|killed/i.test(l.line));
    const j = i >= 0 ? i : lines.findIndex((l) => l.stream === "stderr");
    if (j < 0) return;
    follow.checked = false;
    const el = document.getElementById("L" + (j + 1));
    logBox.querySelectorAll(".hit").forEach((e) => e.classList.remove("hit"));
    el.classList.add("hit");
    el.scrollIntoView({ block: "center" });
  }
  function download() {
    const text = lines.map((l) => `${l.ts} ${l.stream} ${l.line}`).join("\n") + "\n";
    const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/plain" })), download: `${run.name}-${name}.log` });
    document.body.append(a); a.click(); a.remove();
  }
  panel.replaceChildren(info,
    h("h2", {}, "Log"),
    h("div", { class: "toolbar" }, h("label", {}, follow, " follow"), h("button", { onclick: firstError }, "First error"), h("button", { onclick: download }, "Download")),
    logBox, artifacts, preview);
  renderInfo();
  loadLogs();
  return {
    update(r) {
      const was = task.state;
      task = r.tasks.find((t) => t.name === name) || task;
      renderInfo();
      if (!TERMINAL.has(was) && TERMINAL.has(task.state) && es) {
        // The server ends the stream once the task has ended and every line was sent; stop the
        // browser from reconnecting to it.
        const done = es;
        es = null;
        setTimeout(() => done.close(), 1000);
      } else if (TERMINAL.has(was) && !TERMINAL.has(task.state)) {
        loadLogs();
      }
    },
    close() { if (es) es.close(); },
  };
}

function resources(r) {
  if (!r) return null;
  const parts = [];
  if (r.cpu_millis) parts.push((r.cpu_millis / 1000) + " CPU");
  if (r.memory_bytes) parts.push(fmtBytes(r.memory_bytes) + " memory");
  if (r.gpu) parts.push(r.gpu + " GPU");
  return parts.join(", ") || "worker defaults";
}

// ANSI colour codes (SGR) to spans; everything else is text.
const ANSI_COLORS = ["#000", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#dcdfe4"];
const ANSI_BRIGHT = ["#5c6370", "#ff7b86", "#b5e890", "#ffd68a", "#8ac7ff", "#e49cff", "#7fdde8", "#ffffff"];
function ansi(text) {
  if (!text.includes("\x1b[")) return document.createTextNode(text);
  const frag = document.createDocumentFragment();
  let style = { color: null, bold: false };
  const re = /\x1b\[([0-9;]*)m/g;
  let last = 0, m;
  const push = (t) => {
    if (!t) return;
    const span = h("span", { class: style.bold ? "ansi-bold" : null }, t);
    if (style.color) span.style.color = style.color;
    frag.append(span);
  };
  while ((m = re.exec(text))) {
    push(text.slice(last, m.index));
    last = re.lastIndex;
    for (const c of (m[1] || "0").split(";").map(Number)) {
      if (c === 0) style = { color: null, bold: false };
      else if (c === 1) style.bold = true;
      else if (c === 22) style.bold = false;
      else if (c >= 30 && c <= 37) style.color = ANSI_COLORS[c - 30];
      else if (c >= 90 && c <= 97) style.color = ANSI_BRIGHT[c - 90];
      else if (c === 39) style.color = null;
    }
  }
  push(text.slice(last));
  return frag;
}

// ---------- artifacts and metrics ----------

async function showArtifact(box, path, name) {
  box.replaceChildren(h("h2", {}, "Preview: " + name), h("p", { class: "muted" }, "loading…"));
  const r = await api(path);
  const type = r.headers.get("content-type") || "";
  const url = API + path + (token() ? (path.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token()) : "");
  let body;
  if (type.startsWith("application/json")) {
    const data = await r.json();
    if (data && data.kind === "directory" && Array.isArray(data.files)) {
      body = h("table", { class: "files" }, h("tbody", {}, data.files.map((f) => h("tr", {},
        h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); showArtifact(box, path.split("?")[0] + "?path=" + encodeURIComponent(f.path), name + "/" + f.path); } }, f.path)),
        h("td", { class: "num" }, f.link !== undefined ? "link → " + f.link : fmtBytes(f.size))))));
    } else {
      body = h("div", {}, metricsView(data), h("pre", {}, JSON.stringify(data, null, 2)));
    }
  } else if (type.startsWith("text/csv") || type.startsWith("text/tab-separated")) {
    body = csvTable(await r.text(), type.startsWith("text/tab") ? "\t" : ",");
  } else if (type.startsWith("image/")) {
    body = h("img", { src: url, alt: name });
  } else if (type.startsWith("text/html")) {
    body = h("iframe", { sandbox: "", src: url, title: name });
  } else if (type.startsWith("text/markdown")) {
    body = h("div", { class: "md" }, markdown(await r.text()));
  } else if (type.startsWith("text/")) {
    body = h("pre", {}, (await r.text()).slice(0, 200000));
  } else {
    body = h("p", { class: "muted" }, "binary (" + type + "): ", h("a", { href: url + (url.includes("?") ? "&" : "?") + "download=true" }, "download"));
  }
  box.replaceChildren(h("h2", {}, "Preview: " + name), h("div", { class: "preview" }, body));
}

function csvTable(text, sep) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    const cells = []; let cur = "", q = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (q) { if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') q = false; else cur += c; }
      else if (c === '"') q = true; else if (c === sep) { cells.push(cur); cur = ""; } else cur += c;
    }
    cells.push(cur);
    rows.push(cells);
    if (rows.length > 500) break;
  }
  if (!rows.length) return h("p", { class: "muted" }, "empty");
  return h("table", { class: "csv" }, h("thead", {}, h("tr", {}, rows[0].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.slice(1).map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

function markdown(text) {
  const frag = document.createDocumentFragment();
  let list = null, code = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      if (code) { frag.append(h("pre", {}, code.join("\n"))); code = null; } else code = [];
      continue;
    }
    if (code) { code.push(line); continue; }
    const m = line.match(/^(#{1,6})\s+(.*)/);
    const li = line.match(/^\s*[-*]\s+(.*)/);
    if (li) { if (!list) { list = h("ul"); frag.append(list); } list.append(h("li", {}, li[1])); continue; }
    list = null;
    if (m) frag.append(h("h" + Math.min(m[1].length + 2, 6), {}, m[2]));
    else if (line.trim()) frag.append(h("p", {}, line));
  }
  if (code) frag.append(h("pre", {}, code.join("\n")));
  return frag;
}

// Metrics a step wrote as JSON: numbers are scalars, arrays of numbers (or of {x, y}) are series.
function flatten(obj, prefix = "", out = { scalars: {}, series: {} }) {
  if (typeof obj === "number") out.scalars[prefix || "value"] = obj;
  else if (Array.isArray(obj)) {
    if (obj.length && obj.every((v) => typeof v === "number")) out.series[prefix] = obj.map((y, x) => [x, y]);
    else if (obj.length && obj.every((v) => v && typeof v.x === "number" && typeof v.y === "number")) out.series[prefix] = obj.map((p) => [p.x, p.y]);
  } else if (obj && typeof obj === "object") {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? prefix + "." + k : k, out);
  }
  return out;
}

function metricsView(data) {
  const { scalars, series } = flatten(data);
  const frag = document.createDocumentFragment();
  const keys = Object.keys(scalars);
  if (keys.length) frag.append(h("table", { class: "metrics" }, h("tbody", {}, keys.slice(0, 200).map((k) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, +scalars[k].toFixed(6)))))));
  for (const [k, pts] of Object.entries(series)) frag.append(h("div", {}, h("strong", {}, k), plot([{ name: k, points: pts }])));
  return frag;
}

const PALETTE = ["#2457c5", "#d1603d", "#23915a", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
function plot(lines, W = 420, H = 180) {
  const all = lines.flatMap((l) => l.points);
  if (!all.length) return h("span");
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const P = 30;
  const sx = (x) => P + (x - x0) / ((x1 - x0) || 1) * (W - 2 * P);
  const sy = (y) => H - P + (y0 - y) / ((y1 - y0) || 1) * (H - 2 * P);
  const svg = s("svg", { class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}` },
    s("line", { class: "axis", x1: P, y1: H - P, x2: W - P, y2: H - P }), s("line", { class: "axis", x1: P, y1: P, x2: P, y2: H - P }),
    s("text", { x: 2, y: P }, +y1.toPrecision(3)), s("text", { x: 2, y: H - P }, +y0.toPrecision(3)),
    s("text", { x: P, y: H - 8 }, +x0.toPrecision(3)), s("text", { x: W - P - 20, y: H - 8 }, +x1.toPrecision(3)));
  lines.forEach((l, i) => svg.append(s("polyline", { fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 2, points: l.points.map((p) => sx(p[0]) + "," + sy(p[1])).join(" ") })));
  const legend = h("div", { class: "legend" }, lines.map((l, i) => { const e = h("span", {}, l.name); e.style.setProperty("--c", PALETTE[i % PALETTE.length]); return e; }));
  return h("div", {}, svg, lines.length > 1 ? legend : null);
}

// ---------- compare ----------

async function compareView() {
  const ids = (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean);
  if (ids.length < 2) { main.replaceChildren(h("h1", {}, "Compare runs"), h("p", {}, "Select two or more runs in ", link("/runs", "the run list"), ".")); return; }
  const runs = await Promise.all(ids.map((id) => json("/runs/" + encodeURIComponent(id))));
  // Metrics: every JSON artifact the server can read, flattened.
  const metrics = await Promise.all(runs.map(async (r) => {
    const out = { scalars: {}, series: {} };
    for (const t of r.tasks) for (const a of t.artifacts) {
      try {
        const resp = await api(`/runs/${r.id}/tasks/${encodeURIComponent(t.name)}/artifacts/${encodeURIComponent(a.name)}`);
        if (!(resp.headers.get("content-type") || "").startsWith("application/json")) continue;
        const data = await resp.json();
        if (data && data.kind === "directory") continue;
        flatten(data, t.name + "." + a.name, out);
      } catch (_) { /* unreachable artifact: left out */ }
    }
    for (const t of r.tasks) for (const [k, v] of Object.entries(t.outputs || {})) if (typeof v === "number") out.scalars[t.name + "." + k] = v;
    return out;
  }));
  const rowsOf = (get) => {
    const keys = [...new Set(runs.flatMap((r, i) => Object.keys(get(r, i))))].sort();
    return keys.map((k) => {
      const vals = runs.map((r, i) => get(r, i)[k]);
      const differ = new Set(vals.map((v) => JSON.stringify(v))).size > 1;
      return h("tr", {}, h("td", {}, k), vals.map((v) => h("td", { class: "num" + (differ ? " changed" : "") }, v === undefined ? "—" : fmtVal(typeof v === "number" ? +v.toFixed(6) : v))));
    });
  };
  const head = h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", {}, link("/runs/" + r.id, r.name), " ", badge(r.state)))));
  const seriesKeys = [...new Set(metrics.flatMap((m) => Object.keys(m.series)))];
  main.replaceChildren(
    h("h1", {}, "Compare ", runs.length, " runs"),
    h("h2", {}, "Parameters"), h("table", { class: "diff", id: "compare-params" }, head.cloneNode(true), h("tbody", {}, rowsOf((r) => r.params || {}))),
    h("h2", {}, "Metrics"), h("table", { class: "diff", id: "compare-metrics" }, head, h("tbody", {}, rowsOf((r, i) => metrics[i].scalars))),
    seriesKeys.length ? h("h2", {}, "Series") : "",
    ...seriesKeys.map((k) => h("div", {}, h("strong", {}, k), plot(runs.map((r, i) => ({ name: r.name, points: metrics[i].series[k] || [] }))))));
}

// ---------- pipelines ----------

async function pipelinesView() {
  const list = await json("/pipelines");
  main.replaceChildren(h("h1", {}, "Pipelines"),
    list.pipelines.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Latest version"), h("th", {}, "Description"))),
      h("tbody", {}, list.pipelines.map((p) => h("tr", {}, h("td", {}, link("/pipelines/" + encodeURIComponent(p.name), p.name)), h("td", {}, p.latest_version ?? ""), h("td", {}, p.description || "")))))
      : h("p", { class: "muted" }, "No stored pipelines yet: ", h("code", {}, "sluice pipelines upload FILE"), "."));
}

async function pipelineView(name) {
  const versions = (await json("/pipelines/" + encodeURIComponent(name) + "/versions")).versions;
  const pick = h("select", { "aria-label": "version" }, versions.map((v) => h("option", { value: v.version }, "v" + v.version + " · " + fmtTime(v.created_at))));
  const box = h("div");
  async function show() {
    const v = await json("/pipelines/" + encodeURIComponent(name) + "/versions/" + pick.value);
    const o = v.outline || { params: [], steps: [] };
    const inputs = new Map();
    const form = h("form", { class: "form", onsubmit: async (e) => {
      e.preventDefault();
      const params = {};
      for (const p of o.params) {
        const el = inputs.get(p.name);
        const raw = el.type === "checkbox" ? el.checked : el.value;
        if (raw === "" && p.default !== null && p.default !== undefined) continue;
        params[p.name] = p.type === "int" ? parseInt(raw, 10) : p.type === "float" ? parseFloat(raw) : p.type === "bool" ? !!raw : (p.type === "list" || p.type === "object") ? JSON.parse(raw) : raw;
      }
      try {
        const d = await json("/runs", { method: "POST", body: { pipeline: name, version: +pick.value, params } });
        go("/runs/" + d.id);
      } catch (err) { errBox.textContent = err.message; }
    } });
    const errBox = h("p", { class: "error" });
    for (const p of o.params) {
      const def = p.default === null || p.default === undefined ? "" : (typeof p.default === "string" ? p.default : JSON.stringify(p.default));
      const el = p.type === "bool" ? h("input", { type: "checkbox", checked: p.default === true, id: "p-" + p.name })
        : h("input", { id: "p-" + p.name, value: def, required: p.default === null || p.default === undefined, type: (p.type === "int" || p.type === "float") ? "number" : "text", step: p.type === "float" ? "any" : null });
      inputs.set(p.name, el);
      form.append(h("label", { for: "p-" + p.name, title: p.description || "" }, p.name, h("span", { class: "muted" }, " (" + p.type + ")")), el);
    }
    form.append(h("span"), h("button", { class: "primary", type: "submit" }, "Start run"));
    const graph = h("div", { class: "card graph" });
    box.replaceChildren(o.description ? h("p", {}, o.description) : "", graph, h("h2", {}, "Start a run"), form, errBox);
    drawGraph(graph, o.steps.map((s) => ({ name: s.name, deps: s.depends_on, state: null })), new Map(), null);
  }
  pick.addEventListener("change", show);
  main.replaceChildren(h("h1", {}, name), h("div", { class: "toolbar" }, pick, link("/runs?pipeline=" + encodeURIComponent(name), "runs of this pipeline")), box);
  await show();
}

route();
