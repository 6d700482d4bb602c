// sluice web UI: The panel of one task of a run: what it is and ran with (its loop item, its
// condition, its resolved command, every input with where it came from), what it made, and its
// log.
import { API, TERMINAL, badge, elapsed, events, fmtBytes, fmtTime, fmtVal, h, json, kv, labelChips, link } from "./lib.js";
import { showArtifact } from "./artifacts.js";
import { KINDS, kfpView } from "./kfp.js";
import { LogView } from "./log.js";
import { itemText } from "./graph.js";

/** `blake3:0123456789ab…`: an artifact's digest, its algorithm and first 12 hex digits. */
function shortDigest(d) {
  const [alg, hex] = d.includes(":") ? d.split(":", 2) : ["", d];
  return (alg ? alg + ":" : "") + hex.slice(0, 12);
}

export function resources(r) {
  if (!r) return null;
  const parts = [];
  if (r.cpu_millis) parts.push((r.cpu_millis / 1000) + " CPU");
  if (r.memory_bytes) parts.push(fmtBytes(r.memory_bytes) + " memory");
  if (r.gpu) parts.push(r.gpu + " GPU");
  return parts.join(", ") || "worker defaults";
}

/** An argument vector as a shell would read it back. */
export function shellWords(argv) {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'")).join(" ");
}

/** The lineage page of the artifact at `uri`. */
export function lineageLink(uri, text = "lineage") {
  return link("/artifacts?uri=" + encodeURIComponent(uri), text);
}

export function taskPanel(panel, run, name, { close, select }) {
  let task = run.tasks.find((t) => t.name === name);
  if (!task) {
    panel.replaceChildren(h("p", { class: "muted" }, `Run ${run.name} has no step ${name}.`));
    return { update() {}, close() {} };
  }
  const info = h("div");
  const io = h("div");
  const artifacts = h("div");
  const preview = h("div", { id: "preview" });
  const visuals = h("div", { class: "visuals" });
  const logArea = h("div");
  let es = null;
  let logFor = null;
  const base = "/runs/" + encodeURIComponent(run.id) + "/tasks/" + encodeURIComponent(name);
  const taskLink = (n) => h("a", { href: "/runs/" + run.id + "/tasks/" + encodeURIComponent(n), onclick: (e) => { e.preventDefault(); select(n); } }, n);

  // The item of every loop around the task, outermost first: `tune: depth=7, seeds=[3] · train: 3`.
  function loopItems(t) {
    const parts = [];
    const re = /\[\d+\]/g;
    let m;
    while ((m = re.exec(t.name))) {
      const prefix = t.name.slice(0, m.index + m[0].length);
      const it = prefix === t.name ? t : run.tasks.find((x) => x.name === prefix);
      if (!it || it.item === undefined || it.item === null) continue;
      const loop = prefix.slice(0, m.index);
      parts.push(loop.slice(loop.lastIndexOf(".") + 1) + ": " + itemText(it.item));
    }
    if (!parts.length && t.item !== undefined && t.item !== null) parts.push(itemText(t.item));
    return parts.length ? h("code", { id: "item" }, parts.join(" · ")) : null;
  }

  function inputsTable(t) {
    const params = Object.entries(t.inputs || {});
    const arts = t.input_artifacts || [];
    if (!params.length && !arts.length) return h("p", { class: "muted" }, t.attempt ? "none" : "not known until the step is ready");
    return h("table", { class: "inputs" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Value"), h("th", {}, "From"))),
      h("tbody", {},
        params.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "val" }, fmtVal(v)), h("td", { class: "muted" }, k in (run.params || {}) ? "run parameter" : "parameter"))),
        arts.map((a) => h("tr", { "data-artifact": a.name }, h("td", {}, a.name), h("td", {}, h("span", { class: "muted" }, "artifact · "), lineageLink(a.uri)),
          h("td", {}, !a.producer ? "given to the run" : run.tasks.some((x) => x.name === a.producer) ? taskLink(a.producer) : a.producer)))));
  }

  function renderInfo() {
    const t = task;
    const ran = t.attempt > 0;
    info.replaceChildren(
      h("div", { class: "panel-head" }, h("h2", {}, t.display_name || t.name, " ", badge(t.state)), h("button", { "aria-label": "close panel", title: "close", onclick: close }, "×")),
      kv([
        ["task", t.display_name ? t.name : null],
        ["kind", t.kind && t.kind !== "step" ? t.kind : null],
        ["loop items", loopItems(t)],
        ["runs when", t.when ? h("code", {}, t.when) : null],
        ["exit handler", t.exit_handler ? "yes: runs once the rest has ended" : null],
        ["serves", t.daemon ? h("span", { id: "serves" }, t.serving ? "at " + t.address + " (the steps after it reach it)" : t.address ? "served at " + t.address + "; stopped once the steps it served ended" : "not yet: the steps after it wait until it is up") : null],
        ["runs on", Object.keys(t.node_selector || {}).length ? h("span", {}, "workers labelled ", labelChips(t.node_selector)) : null],
        ["waiting", t.waiting ? h("span", { id: "waiting", class: "error" }, t.waiting, " (", link("/workers", "workers"), ")") : null],
        ["cached", t.cached_from ? h("span", {}, "reused the result of run ", link("/runs/" + t.cached_from, t.cached_from)) : null],
        ["attempt", ran ? t.attempt : null], ["image", t.image], ["digest", t.image_digest], ["worker", t.worker],
        ["resources", ran ? resources(t.resources) : null],
        ["ready", fmtTime(t.ready_at)], ["started", fmtTime(t.started_at)], ["finished", fmtTime(t.finished_at)],
        [TERMINAL.has(t.state) ? "duration" : "elapsed", t.started_at ? elapsed(t) : null], ["exit code", t.exit_code], ["error", t.error ? h("span", { class: "error" }, t.error) : null],
      ]),
      t.attempts && t.attempts.length > 1 ? h("div", {}, h("h3", {}, "Attempts"), h("table", { class: "attempts" }, h("tbody", {}, t.attempts.map((a) => h("tr", {},
        h("td", {}, "#" + a.attempt), h("td", {}, badge(a.state)), h("td", {}, a.exit_code ?? ""), h("td", {}, fmtTime(a.finished_at)), h("td", { class: "error" }, a.error || "")))))) : "",
      t.retry_at ? h("p", { class: "muted" }, "next attempt at " + fmtTime(t.retry_at)) : "");
    io.replaceChildren(
      t.command ? h("div", {}, h("h3", {}, "Command"), h("pre", { class: "cmd", id: "command" }, shellWords(t.command))) : "",
      t.script ? h("div", {}, h("h3", {}, "Script"), h("pre", { class: "cmd", id: "script" }, t.script)) : "",
      h("h3", {}, "Inputs"), inputsTable(t),
      h("h3", {}, "Outputs"), Object.keys(t.outputs || {}).length ? h("table", { class: "outputs" }, h("tbody", {}, Object.entries(t.outputs).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "val" }, fmtVal(v)))))) : h("p", { class: "muted" }, "none"));
    artifacts.replaceChildren(h("h3", {}, "Artifacts"), t.artifacts.length ? h("table", { class: "artifacts" }, h("tbody", {}, t.artifacts.map((a) => h("tr", { "data-artifact": a.name },
      h("td", {}, a.name), h("td", { class: "muted" }, a.kind || ""), h("td", { class: "num" }, fmtBytes(a.size)), h("td", { class: "muted", title: a.digest }, shortDigest(a.digest)),
      h("td", { class: "acts" }, h("button", { onclick: () => showArtifact(preview, base + "/artifacts/" + encodeURIComponent(a.name), a) }, "Preview"), " ",
        lineageLink(a.uri), " · ", h("a", { href: API + base + "/artifacts/" + encodeURIComponent(a.name) + "?download=true" }, "Download")))))) : h("p", { class: "muted" }, "none"));
    showVisuals(t);
    renderLog();
  }
  // Kubeflow's visual artifacts (metrics, confusion matrices, reports), drawn once the task ends.
  let visualsOf = null;
  async function showVisuals(t) {
    const kfp = t.artifacts.filter((a) => KINDS.has(a.kind));
    const key = t.attempt + ":" + kfp.map((a) => a.name + a.digest).join(",");
    if (key === visualsOf) return;
    visualsOf = key;
    const views = await Promise.all(kfp.map((a) => kfpView(a, base + "/artifacts/" + encodeURIComponent(a.name))));
    visuals.replaceChildren(...(views.some(Boolean) ? [h("h3", {}, "Visualizations"), ...views.filter(Boolean)] : []));
  }

  // The log: a step that never ran has none.
  let log = null;
  function renderLog() {
    const ran = task.attempt > 0 || task.started_at;
    const key = ran ? "log" : "none:" + task.state;
    if (key === logFor) return;
    logFor = key;
    if (!ran) {
      logArea.replaceChildren(h("h3", {}, "Log"), h("p", { class: "muted", id: "nolog" }, task.state === "skipped"
        ? "This step was skipped" + (task.error ? ": " + task.error : "") + ". It has no log."
        : task.state === "cancelled" ? "This step was cancelled before it started. It has no log." : "This step has not started yet."));
      return;
    }
    const follow = h("input", { type: "checkbox", checked: true, id: "follow" });
    const followLabel = h("label", { class: "follow" }, follow, " follow");
    log = new LogView({ onFollowChange: (on) => { follow.checked = on; } });
    follow.addEventListener("change", () => log.setFollow(follow.checked));
    const search = h("input", { type: "search", id: "log-search", placeholder: "search the log", "aria-label": "search the log" });
    const count = h("span", { class: "muted", id: "log-count" });
    const showCount = () => { count.textContent = log.query ? (log.matches.length ? `${log.current + 1} of ${log.matches.length}` : "no match") : ""; };
    let last = "";
    const run_ = async () => { if (search.value === last) return; last = search.value; await log.search(search.value); showCount(); };
    search.addEventListener("input", () => { clearTimeout(search.t); search.t = setTimeout(run_, 200); });
    search.addEventListener("keydown", async (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault();
      if (search.value !== last) await run_();
      else log.go(log.current + (e.shiftKey ? -1 : 1));
      showCount();
    });
    const prev = h("button", { title: "previous match (Shift+Enter)", "aria-label": "previous match", onclick: () => { log.go(log.current - 1); showCount(); } }, "↑");
    const next = h("button", { title: "next match (Enter)", "aria-label": "next match", onclick: () => { log.go(log.current + 1); showCount(); } }, "↓");
    const download = () => {
      const a = h("a", { href: URL.createObjectURL(new Blob([log.asText()], { type: "text/plain" })), download: `${run.name}-${name}.log` });
      document.body.append(a); a.click(); a.remove();
    };
    const lines = h("span", { class: "muted", id: "log-lines" });
    logArea.replaceChildren(
      h("div", { class: "log-head" }, h("h3", {}, "Log"), lines),
      h("div", { class: "toolbar log-tools" }, TERMINAL.has(task.state) ? null : followLabel, search, prev, next, count,
        h("button", { onclick: () => { log.firstError(); count.textContent = ""; } }, "First error"), h("button", { onclick: download }, "Download")),
      log.box);
    loadLogs(lines);
  }
  async function loadLogs(lines) {
    if (es) { es.close(); es = null; }
    const mine = log;
    let after = 0;
    const hash = location.hash.match(/^#L(\d+)$/);
    if (hash) log.setFollow(false);
    // What is stored, a page at a time; then, while the task runs, the lines as they come.
    for (;;) {
      const page = await json(base + "/logs?limit=10000&after=" + after);
      if (mine !== log) return;
      mine.append(page.lines);
      lines.textContent = mine.length.toLocaleString() + " lines";
      after = page.next_after;
      if (page.lines.length < 10000) break;
    }
    window.__sluiceLogLoaded = performance.now();
    if (!mine.length && TERMINAL.has(task.state)) mine.nothing("this step printed nothing");
    if (hash) mine.showLine(+hash[1]);
    if (!TERMINAL.has(task.state)) {
      es = events(base + "/logs?follow=true&after=" + after, { log: (l) => { mine.append([l]); lines.textContent = mine.length.toLocaleString() + " lines"; } });
    }
  }

  panel.replaceChildren(info, logArea, io, artifacts, visuals, preview);
  renderInfo();
  return {
    update(r) {
      const was = task;
      run = r;
      task = r.tasks.find((t) => t.name === name) || task;
      renderInfo();
      if (!TERMINAL.has(was.state) && TERMINAL.has(task.state) && es) {
        // The server ends the stream once the task has ended and every line was sent; stop the
        // browser from reconnecting to it.
        const done = es;
        es = null;
        setTimeout(() => done.close(), 1000);
        document.querySelector(".follow")?.remove();
      } else if (TERMINAL.has(was.state) && !TERMINAL.has(task.state)) {
        logFor = null;
        renderLog();
      }
    },
    close() { if (es) es.close(); },
  };
}
