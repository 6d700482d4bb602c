// sluice web UI: Stored pipelines: their versions, graph and start form.
import { fmtTime, go, h, json, link, main, s } from "./lib.js";
import { drawGraph } from "./graph.js";

export async function pipelinesView() {
  const list = await json("/pipelines");
  main.replaceChildren(h("h1", {}, "Pipelines"),
    list.pipelines.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Latest version"), h("th", {}, "Description"))),
      h("tbody", {}, list.pipelines.map((p) => h("tr", {}, h("td", {}, link("/pipelines/" + encodeURIComponent(p.name), p.name)), h("td", {}, p.latest_version ?? ""), h("td", {}, p.description || "")))))
      : h("p", { class: "muted" }, "No stored pipelines yet: ", h("code", {}, "sluice pipelines upload FILE"), "."));
}

export async function pipelineView(name) {
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
    drawGraph(graph, o.steps.map((s) => ({ name: s.name, label: s.display_name, deps: s.depends_on, state: null, control: s.group })), new Map(), null);
  }
  pick.addEventListener("change", show);
  main.replaceChildren(h("h1", {}, name), h("div", { class: "toolbar" }, pick, link("/runs?pipeline=" + encodeURIComponent(name), "runs of this pipeline")), box);
  await show();
}
