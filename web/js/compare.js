// sluice web UI: Runs side by side: parameters and metrics.
import { api, badge, fmtVal, h, json, link, main } from "./lib.js";
import { flatten, plot } from "./artifacts.js";

export async function compareView() {
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
  // One column per run, every table the same widths, so a run's values line up down the page.
  const cols = () => h("colgroup", {}, h("col", { class: "key" }), runs.map(() => h("col", { class: "run" })));
  const head = h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", { class: "run-col" }, link("/runs/" + r.id, r.name), " ", badge(r.state)))));
  const seriesKeys = [...new Set(metrics.flatMap((m) => Object.keys(m.series)))];
  main.replaceChildren(
    h("h1", {}, "Compare ", runs.length, " runs"),
    h("h2", {}, "Parameters"), h("table", { class: "diff compare", id: "compare-params" }, cols(), head.cloneNode(true), h("tbody", {}, rowsOf((r) => r.params || {}))),
    h("h2", {}, "Metrics"), h("table", { class: "diff compare", id: "compare-metrics" }, cols(), head, h("tbody", {}, rowsOf((r, i) => metrics[i].scalars))),
    seriesKeys.length ? h("h2", {}, "Series") : "",
    ...seriesKeys.map((k) => h("div", {}, h("strong", {}, k), plot(runs.map((r, i) => ({ name: r.name, points: metrics[i].series[k] || [] }))))));
}
