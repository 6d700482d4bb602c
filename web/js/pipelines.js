// sluice web UI: Stored pipelines: their versions, graph (loops, conditions and exit handlers
// marked; a click shows a step's spec), source, the difference between two versions, and the
// form that starts a run.
import { fmtTime, h, json, link, main, notFound } from "./lib.js";
import { Graph } from "./graph.js";
import { runForm } from "./form.js";

export async function pipelinesView() {
  const list = await json("/pipelines");
  main.replaceChildren(h("h1", {}, "Pipelines"),
    list.pipelines.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Latest version"), h("th", {}, "Description"))),
      h("tbody", {}, list.pipelines.map((p) => h("tr", {}, h("td", {}, link("/pipelines/" + encodeURIComponent(p.name), p.name)), h("td", {}, p.latest_version ?? ""), h("td", {}, p.description || "")))))
      : h("p", { class: "muted" }, "No stored pipelines yet: ", h("code", {}, "sluice pipelines upload FILE"), "."));
}

/** The YAML of the step that starts at line `line` (1-based): that line and the lines indented
 * deeper below it. */
export function stepSource(yaml, line) {
  const lines = yaml.split("\n");
  const first = lines[line - 1];
  if (first === undefined) return "";
  const indent = first.search(/\S/);
  const out = [first];
  for (let i = line; i < lines.length; i++) {
    const l = lines[i];
    if (l.trim() && l.search(/\S/) <= indent) break;
    out.push(l);
  }
  while (out.length && !out[out.length - 1].trim()) out.pop();
  // Shown from its own indentation (a step in a group is indented deeper).
  const cut = Math.min(...out.filter((l) => l.trim()).map((l) => l.search(/\S/)));
  return out.map((l) => l.slice(cut)).join("\n");
}

/** Lines of `a` and `b` compared (Myers' algorithm): `[op, text]` with op ' ', '-' or '+'. */
export function diffLines(a, b) {
  const n = a.length, m = b.length, max = n + m;
  const v = new Int32Array(2 * max + 2);
  const trace = [];
  outer: for (let d = 0; d <= max; d++) {
    // Too different to be worth a line-by-line answer (and the trace's memory): all of a, then all of b.
    if (d > 300) return [...a.map((t) => ["-", t]), ...b.map((t) => ["+", t])];
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[max + k - 1] < v[max + k + 1]) ? v[max + k + 1] : v[max + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[max + k] = x;
      if (x >= n && y >= m) break outer;
    }
  }
  const out = [];
  let x = n, y = m;
  for (let d = trace.length - 1; d > 0; d--) {
    const vv = trace[d], k = x - y;
    const prevK = k === -d || (k !== d && vv[max + k - 1] < vv[max + k + 1]) ? k + 1 : k - 1;
    const px = vv[max + prevK], py = px - prevK;
    while (x > px && y > py) out.push([" ", a[--x]]), y--;
    if (x === px) out.push(["+", b[--y]]); else out.push(["-", a[--x]]);
  }
  while (x > 0 && y > 0) out.push([" ", a[--x]]), y--;
  return out.reverse();
}

function diffView(a, b) {
  const ops = diffLines(a.split("\n"), b.split("\n"));
  if (!ops.some(([op]) => op !== " ")) return h("p", { class: "muted" }, "The two versions are the same.");
  // Changed lines with three lines of context around them.
  const keep = new Set();
  ops.forEach(([op], i) => { if (op !== " ") for (let j = i - 3; j <= i + 3; j++) keep.add(j); });
  const rows = [];
  let skipped = false;
  ops.forEach(([op, t], i) => {
    if (!keep.has(i)) { if (!skipped) rows.push(h("div", { class: "d-gap" }, "⋯")); skipped = true; return; }
    skipped = false;
    rows.push(h("div", { class: op === "+" ? "d-add" : op === "-" ? "d-del" : "d-ctx" }, op + " " + t));
  });
  return h("pre", { class: "diff-view", id: "diff" }, rows);
}

function sourceView(yaml) {
  return h("pre", { class: "source", id: "source" }, yaml.split("\n").map((l, i) => h("div", { class: "src-line", id: "S" + (i + 1) }, h("span", { class: "ln" }, i + 1), l)));
}

export async function pipelineView(name) {
  let versions;
  try { versions = (await json("/pipelines/" + encodeURIComponent(name) + "/versions")).versions; } catch (e) {
    if (/no pipeline|not found/i.test(e.message)) return notFound(`There is no stored pipeline ${name}.`);
    throw e;
  }
  const pick = h("select", { "aria-label": "version", id: "version" }, versions.map((v) => h("option", { value: v.version }, "v" + v.version + " · " + fmtTime(v.created_at))));
  const box = h("div");
  const tab = { current: new URLSearchParams(location.search).get("tab") || "graph" };
  async function show() {
    const v = await json("/pipelines/" + encodeURIComponent(name) + "/versions/" + pick.value);
    const o = v.outline || { params: [], steps: [] };
    const graphBox = h("div", { class: "card graph", id: "graph" });
    const spec = h("div", { class: "card panel", id: "step-spec" });
    const layout = h("div", { class: "layout nopanel" }, graphBox, spec);
    const byName = new Map(o.steps.map((s) => [s.name, s]));
    const graph = new Graph(graphBox, { empty: "Click a step to see its spec.", onSelect: (n) => {
      const st = byName.get(n);
      graph.select(n);
      layout.classList.remove("nopanel");
      spec.replaceChildren(
        h("div", { class: "panel-head" }, h("h2", {}, st.display_name || st.name), h("button", { "aria-label": "close", onclick: () => { layout.classList.add("nopanel"); graph.select(null); } }, "×")),
        h("dl", { class: "kv" }, [["step", st.name], ["image", st.image], ["kind", st.kind !== "step" ? st.kind : null], ["loops over", st.for_each !== null && st.for_each !== undefined ? JSON.stringify(st.for_each) : null],
          ["runs when", st.when], ["exit handler", st.exit_handler ? "yes" : null], ["waits for", (st.depends_on || []).join(", ") || null], ["description", st.description]]
          .filter(([, x]) => x).flatMap(([k, x]) => [h("dt", {}, k), h("dd", {}, x)])),
        h("h3", {}, "Spec ", h("span", { class: "muted" }, "(line " + st.line + ")")), h("pre", { class: "cmd", id: "step-yaml" }, stepSource(v.yaml, st.line)));
    } });
    const others = versions.filter((x) => String(x.version) !== pick.value);
    const against = h("select", { "aria-label": "compare with version", id: "diff-against" }, others.map((x) => h("option", { value: x.version }, "v" + x.version)));
    const diffBox = h("div");
    const showDiff = async () => {
      if (!against.value) { diffBox.replaceChildren(h("p", { class: "muted" }, "This pipeline has one version.")); return; }
      const w = await json("/pipelines/" + encodeURIComponent(name) + "/versions/" + against.value);
      diffBox.replaceChildren(h("p", { class: "muted" }, `v${against.value} → v${pick.value}: lines taken out are red, lines added green.`), diffView(w.yaml, v.yaml));
    };
    against.addEventListener("change", showDiff);
    const panes = {
      graph: () => layout,
      yaml: () => sourceView(v.yaml),
      diff: () => { showDiff(); return h("div", {}, h("div", { class: "toolbar" }, "compare with ", against), diffBox); },
    };
    const pane = h("div");
    const tabs = h("div", { class: "tabs", role: "tablist" });
    const select = (t) => {
      tab.current = t;
      for (const b of tabs.children) b.classList.toggle("active", b.dataset.tab === t);
      pane.replaceChildren(panes[t]());
      if (t === "graph") graph.draw(o.steps.map((s) => ({ name: s.name, label: s.display_name, deps: s.depends_on, state: null, kind: s.kind || (s.group ? "group" : "step"), when: s.when, exit_handler: s.exit_handler, image: s.image })));
      const p = new URLSearchParams(location.search); p.set("tab", t); history.replaceState(null, "", location.pathname + "?" + p);
    };
    for (const [t, label] of [["graph", "Graph"], ["yaml", "YAML"], ["diff", "Diff"]]) tabs.append(h("button", { role: "tab", "data-tab": t, onclick: () => select(t) }, label));
    box.replaceChildren(o.description ? h("p", {}, o.description) : "", tabs, pane,
      h("h2", {}, "Start a run"), runForm({ decls: o.params, target: { pipeline: name, version: +pick.value } }));
    select(panes[tab.current] ? tab.current : "graph");
  }
  pick.addEventListener("change", show);
  main.replaceChildren(h("h1", {}, name), h("div", { class: "toolbar" }, pick, link("/runs?pipeline=" + encodeURIComponent(name), "runs of this pipeline")), box);
  await show();
}
