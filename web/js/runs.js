// sluice web UI: The runs list: live; filtered by state, pipeline, name, label, date and
// archive; sorted by any column; parameter and metric columns; archive, delete and compare.
import { progress } from "./run.js";
import { TERMINAL, ago, api, badge, debounce, elapsed, events, fmtVal, go, h, json, labelChips, link, main, onLeave } from "./lib.js";

const FIXED = [["name", "Name"], ["pipeline", "Pipeline"], ["state", "State"], [null, "Progress"], ["created_at", "Started"], ["duration", "Duration"]];
const COLS_KEY = "sluice.runs.columns";

export async function runsView() {
  const q = new URLSearchParams(location.search);
  const state = h("select", { "aria-label": "state", id: "f-state" },
    ["", "running", "succeeded", "failed", "cancelling", "cancelled"].map((v) => h("option", { value: v, selected: q.get("state") === v }, v || "all states")));
  const pipeline = h("input", { placeholder: "pipeline", "aria-label": "pipeline", id: "f-pipeline", value: q.get("pipeline") || "" });
  const search = h("input", { placeholder: "search names", "aria-label": "search", id: "f-search", value: q.get("q") || "", type: "search" });
  const label = h("input", { placeholder: "label: team=vision", "aria-label": "label", id: "f-label", value: q.get("label") || "", size: 14 });
  const from = h("input", { type: "date", "aria-label": "started from", id: "f-from", value: q.get("created_after") || "" });
  const to = h("input", { type: "date", "aria-label": "started before", id: "f-to", value: q.get("created_before") || "" });
  const experiment = h("select", { "aria-label": "experiment", id: "f-experiment" }, h("option", { value: "" }, "all experiments"));
  json("/experiments").then((list) => {
    const want = q.get("experiment") || "";
    for (const e of list.experiments) experiment.append(h("option", { value: e.id, selected: want === e.id || want === e.name }, e.name + (e.archived ? " (archived)" : "")));
  }).catch(() => {});
  // Runs a schedule fired: shown as a filter of its own, cleared with a click.
  const schedule = q.get("schedule") ? h("button", { class: "chip", id: "f-schedule", title: "show all runs", onclick: () => {
    const p = new URLSearchParams(location.search);
    p.delete("schedule");
    history.replaceState(null, "", "/runs" + (p.toString() ? "?" + p : ""));
    schedule.remove(); apply();
  } }, "fired by a schedule ✕") : "";
  const archived = h("select", { "aria-label": "archived", id: "f-archived" },
    [["", "active runs"], ["true", "archived runs"], ["all", "all runs"]].map(([v, t]) => h("option", { value: v, selected: (q.get("archived") || "") === v }, t)));
  const selected = new Set();
  const bulk = (label_, attrs, fn) => h("button", Object.assign({ disabled: true, class: "bulk", onclick: fn }, attrs), label_);
  const compare = bulk("Compare", { id: "compare" }, () => go("/compare?runs=" + [...selected].join(",")));
  const archive = bulk(q.get("archived") === "true" ? "Unarchive" : "Archive", { id: "bulk-archive" }, async () => {
    const verb = q.get("archived") === "true" ? "unarchive" : "archive";
    for (const id of selected) await api("/runs/" + id + "/" + verb, { method: "POST" });
    selected.clear(); load();
  });
  const del = bulk("Delete", { id: "bulk-delete", class: "bulk danger" }, async () => {
    if (!confirm(`Delete ${selected.size} run(s)? Their logs and records are gone for good.`)) return;
    const errors = [];
    for (const id of selected) { try { await api("/runs/" + id, { method: "DELETE" }); } catch (e) { errors.push(e.message); } }
    selected.clear(); load();
    if (errors.length) alert(errors.join("\n"));
  });
  const syncBulk = () => { compare.disabled = selected.size < 2; archive.disabled = del.disabled = selected.size === 0; };
  const colsBox = h("div", { class: "cols-menu" });
  const columns = h("details", { class: "columns", id: "columns" }, h("summary", {}, "Columns"), colsBox);
  const head = h("tr");
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const tokens = [null];
  let page = 0;
  let runs = [];
  let chosen = JSON.parse(localStorage.getItem(COLS_KEY) || "null") || null;

  function apply() {
    const p = new URLSearchParams(location.search);
    const set = (k, v) => (v ? p.set(k, v) : p.delete(k));
    set("state", state.value); set("pipeline", pipeline.value); set("q", search.value); set("label", label.value);
    set("created_after", from.value); set("created_before", to.value); set("archived", archived.value);
    set("experiment", experiment.value);
    history.replaceState(null, "", "/runs" + (p.toString() ? "?" + p : ""));
    q.set("archived", archived.value);
    archive.textContent = archived.value === "true" ? "Unarchive" : "Archive";
    tokens.length = 1; page = 0; selected.clear(); syncBulk(); load();
  }
  function sortBy(key) {
    const p = new URLSearchParams(location.search);
    const cur = p.get("sort") || "created_at", order = p.get("order") || "desc";
    p.set("sort", key);
    p.set("order", cur === key && order === "desc" ? "asc" : cur === key ? "desc" : key === "name" || key === "pipeline" || key.startsWith("param:") ? "asc" : "desc");
    history.replaceState(null, "", "/runs?" + p);
    tokens.length = 1; page = 0; load();
  }
  const keysOf = (kind) => [...new Set(runs.flatMap((r) => Object.keys(r[kind] || {})))].sort();
  function extraColumns() {
    const params = keysOf("params"), metrics = keysOf("metrics");
    // By default: the page's runs' metrics and parameters, up to four of each.
    const all = [...metrics.map((k) => ["metrics", k]), ...params.map((k) => ["params", k])];
    const on = chosen ? all.filter(([kind, k]) => chosen.includes(kind + ":" + k))
      : [...metrics.slice(0, 4).map((k) => ["metrics", k]), ...params.slice(0, 4).map((k) => ["params", k])];
    colsBox.replaceChildren(...(all.length ? all.map(([kind, k]) => h("label", {}, h("input", { type: "checkbox", checked: on.some(([a, b]) => a === kind && b === k), onchange: (e) => {
      const cur = new Set(on.map(([a, b]) => a + ":" + b));
      e.target.checked ? cur.add(kind + ":" + k) : cur.delete(kind + ":" + k);
      chosen = [...cur];
      localStorage.setItem(COLS_KEY, JSON.stringify(chosen));
      render();
    } }), " ", kind === "params" ? "parameter " : "metric ", h("code", {}, k))) : [h("span", { class: "muted" }, "no parameters or metrics on this page")]));
    return on;
  }
  function render() {
    const p = new URLSearchParams(location.search);
    const sort = p.get("sort") || "created_at", order = p.get("order") || "desc";
    const extra = extraColumns();
    const arrow = (on, dir) => (on ? (dir === "asc" ? " ▲" : " ▼") : "");
    head.replaceChildren(h("th", {}, h("input", { type: "checkbox", "aria-label": "select all", onchange: (e) => {
      for (const r of runs) e.target.checked ? selected.add(r.id) : selected.delete(r.id);
      syncBulk(); render();
    } })),
    ...FIXED.map(([key, title]) => h("th", key ? { class: "sortable", "data-sort": key, "aria-sort": sort === key ? (order === "asc" ? "ascending" : "descending") : "none", onclick: () => sortBy(key) } : {}, title, key ? arrow(sort === key, order) : "")),
    ...extra.map(([kind, k]) => {
      const key = (kind === "params" ? "param:" : "metric:") + k;
      return h("th", { class: "sortable extra " + kind, "data-sort": key, title: (kind === "params" ? "parameter " : "metric ") + k, "aria-sort": sort === key ? (order === "asc" ? "ascending" : "descending") : "none", onclick: () => sortBy(key) }, k, arrow(sort === key, order));
    }));
    const rows = runs;
    const cols = 1 + FIXED.length + extra.length;
    body.replaceChildren(...(rows.length ? rows.map((r) => h("tr", { "data-run": r.id, class: r.archived ? "archived" : null },
      h("td", {}, h("input", { type: "checkbox", "aria-label": "select " + r.name, checked: selected.has(r.id), onchange: (e) => {
        e.target.checked ? selected.add(r.id) : selected.delete(r.id);
        syncBulk();
      } })),
      h("td", {}, link("/runs/" + r.id, r.name), " ", labelChips(r.labels)),
      h("td", {}, r.pipeline, r.pipeline_version ? h("span", { class: "muted" }, " v" + r.pipeline_version) : ""),
      h("td", {}, badge(r.state)),
      h("td", { class: "num progress" }, progress(r)),
      h("td", {}, ago(r.created_at)),
      h("td", { class: "num elapsed", "data-created": r.created_at }, elapsed(r)),
      ...extra.map(([kind, k]) => {
        const v = (r[kind] || {})[k];
        const text = v === undefined ? "" : fmtVal(typeof v === "number" ? +v.toFixed(6) : v);
        return h("td", { class: "num cell-value", "data-col": kind + ":" + k, title: text }, text);
      }),
    )) : [h("tr", {}, h("td", { colspan: cols, class: "muted empty-list" }, emptyText()))]));
  }
  function emptyText() {
    const filtered = [...new URLSearchParams(location.search).keys()].some((k) => !["sort", "order"].includes(k));
    return filtered ? "No runs match these filters." : h("span", {}, "No runs yet. Start one from ", link("/pipelines", "a pipeline"), ", or: ", h("code", {}, "sluice submit pipelines/demo/iris.yaml"));
  }
  async function load() {
    const p = new URLSearchParams(location.search);
    p.set("page_size", "50");
    if (tokens[page]) p.set("page_token", tokens[page]);
    const list = await json("/runs?" + p);
    runs = list.runs;
    tokens[page + 1] = list.next_page_token || null;
    render();
    pager.replaceChildren(
      h("button", { disabled: page === 0, onclick: () => { page--; load(); } }, "← Previous"),
      h("span", { class: "muted" }, "page " + (page + 1)),
      h("button", { disabled: !tokens[page + 1], onclick: () => { page++; load(); } }, "Next →"));
    if (!window.__sluiceRunsPainted) {
      window.__sluiceRunsPainted = performance.now();
      performance.mark("runs-painted");
    }
  }
  for (const el of [state, from, to, archived, experiment]) el.addEventListener("change", apply);
  for (const el of [pipeline, search, label]) el.addEventListener("input", debounce(apply, 300));
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar filters" }, state, experiment, schedule, pipeline, search, label, h("label", { class: "muted" }, "from ", from), h("label", { class: "muted" }, "before ", to), archived, columns),
    h("div", { class: "toolbar" }, compare, archive, del),
    h("table", { id: "runs" }, h("thead", {}, head), body),
    pager);
  await load();
  // New runs and state changes appear without a reload; elapsed times tick.
  const reload = debounce(load, 250);
  events("/events", { run: reload, lagged: reload });
  const tick = setInterval(() => {
    for (const td of body.querySelectorAll("td.elapsed")) {
      const r = runs.find((x) => x.id === td.parentElement.dataset.run);
      if (r && !TERMINAL.has(r.state)) td.textContent = elapsed(r);
    }
  }, 1000);
  const refresh = setInterval(() => { if (runs.some((r) => !TERMINAL.has(r.state))) reload(); }, 5000);
  onLeave(() => { clearInterval(tick); clearInterval(refresh); });
}
