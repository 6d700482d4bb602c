// sluice web UI: A run: its live DAG, the task panel with live logs, inputs, outputs, artifacts and attempts.
import { API, TERMINAL, api, badge, debounce, events, fmtBytes, fmtDur, fmtTime, fmtVal, go, h, json, kv, link, main, onLeave, paramsTable } from "./lib.js";
import { drawGraph, setNodeState } from "./graph.js";
import { showArtifact } from "./artifacts.js";
import { KINDS, kfpView } from "./kfp.js";

export async function runView(id, taskName) {
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
        ["outputs", Object.keys(r.outputs || {}).length || (r.output_artifacts || []).length
          ? Object.entries(r.outputs || {}).map(([k, v]) => k + "=" + fmtVal(v)).concat((r.output_artifacts || []).map((a) => a.name + " (artifact)")).join("  ") : null],
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
  drawGraph(graphBox, run.tasks.map((t) => ({ name: t.name, label: t.display_name, deps: t.depends_on, state: t.state, control: !t.image })), nodes, select);
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
  onLeave(() => { if (panelCtl) panelCtl.close(); });
}

export function taskPanel(panel, run, name) {
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
      h("h2", {}, t.display_name || t.name, " ", badge(t.state), " ", h("button", { "aria-label": "close panel", onclick: () => go("/runs/" + run.id) }, "×")),
      kv([
        ["task", t.display_name ? t.name : null],
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
        h("a", { href: API + base + "/artifacts/" + encodeURIComponent(a.name) + "?download=true" }, "Download")))))) : h("p", { class: "muted" }, "none"),
      visuals);
    showVisuals(t);
  }
  // Kubeflow's visual artifacts (metrics, confusion matrices, reports), drawn once the task ends.
  const visuals = h("div", { class: "visuals" });
  let visualsOf = null;
  async function showVisuals(t) {
    const kfp = t.artifacts.filter((a) => KINDS.has(a.kind));
    const key = t.attempt + ":" + kfp.map((a) => a.name + a.sha256).join(",");
    if (key === visualsOf) return;
    visualsOf = key;
    const views = await Promise.all(kfp.map((a) => kfpView(a, base + "/artifacts/" + encodeURIComponent(a.name))));
    visuals.replaceChildren(...(views.some(Boolean) ? [h("h2", {}, "Visualizations"), ...views.filter(Boolean)] : []));
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

export function resources(r) {
  if (!r) return null;
  const parts = [];
  if (r.cpu_millis) parts.push((r.cpu_millis / 1000) + " CPU");
  if (r.memory_bytes) parts.push(fmtBytes(r.memory_bytes) + " memory");
  if (r.gpu) parts.push(r.gpu + " GPU");
  return parts.join(", ") || "worker defaults";
}

// ANSI colour codes (SGR) to spans; everything else is text.
export const ANSI_COLORS = ["#000", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#dcdfe4"];
export const ANSI_BRIGHT = ["#5c6370", "#ff7b86", "#b5e890", "#ffd68a", "#8ac7ff", "#e49cff", "#7fdde8", "#ffffff"];
export function ansi(text) {
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
