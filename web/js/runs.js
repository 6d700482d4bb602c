// sluice web UI: The runs list: live, filtered, paged.
import { badge, debounce, events, fmtDur, fmtTime, go, h, json, link, main, onLeave } from "./lib.js";

export async function runsView() {
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
  onLeave(() => clearInterval(tick));
}
