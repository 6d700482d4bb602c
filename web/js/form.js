// sluice web UI: The form that starts a run: its name, its parameters (typed; JSON checked where
// it is JSON, naming the parameter at fault), labels, and whether cached results are reused.
// Used by a pipeline's page and to clone a run with edited parameters.
import { go, h, json, parseJson } from "./lib.js";

/** `decls`: `[{name, type, default, description}]`; `values`: what the fields start with
 * (a clone's parameters); `target`: what the request names (`{pipeline, version}` or
 * `{clone_of}`). */
export function runForm({ decls, values = {}, target, name = "", labels = {}, cache = true }) {
  const inputs = new Map();
  const err = h("p", { class: "error", id: "form-error", role: "alert" });
  const runName = h("input", { id: "run-name", value: name, placeholder: "(the pipeline's name and a suffix)", maxlength: 200 });
  const labelsIn = h("input", { id: "run-labels", value: Object.entries(labels).map(([k, v]) => k + "=" + v).join(", "), placeholder: "team=vision, purpose=sweep" });
  const reuse = h("input", { type: "checkbox", id: "run-cache", checked: cache });
  const form = h("form", { class: "form", id: "start-form", novalidate: true });
  form.append(h("label", { for: "run-name" }, "Run name"), runName);
  for (const p of decls) {
    const start = p.name in values ? values[p.name] : p.default;
    const text = start === null || start === undefined ? "" : typeof start === "string" ? start : JSON.stringify(start, null, p.type === "list" || p.type === "object" ? 0 : undefined);
    const el = p.type === "bool" ? h("input", { type: "checkbox", checked: start === true, id: "p-" + p.name })
      : p.type === "list" || p.type === "object" ? h("textarea", { id: "p-" + p.name, rows: 2, spellcheck: "false" }, text)
        : h("input", { id: "p-" + p.name, value: text, type: "text", inputmode: p.type === "int" || p.type === "float" ? "decimal" : null });
    inputs.set(p.name, el);
    form.append(h("label", { for: "p-" + p.name, title: p.description || "" }, p.name, h("span", { class: "muted" }, " (" + p.type + ")")), el);
  }
  form.append(h("label", { for: "run-labels" }, "Labels"), labelsIn,
    h("label", { for: "run-cache" }, "Cached results"), h("span", {}, reuse, h("span", { class: "muted" }, " reuse what an identical step already made")),
    h("span"), h("button", { class: "primary", type: "submit" }, "Start run"));
  const required = (p) => p.default === null || p.default === undefined;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const params = {};
      for (const p of decls) {
        const el = inputs.get(p.name);
        if (p.type === "bool") { params[p.name] = el.checked; continue; }
        const raw = el.value.trim();
        if (raw === "") {
          if (required(p) && !(p.name in values)) throw new Error(`parameter ${p.name} needs a value`);
          if (!required(p)) continue;
        }
        if (p.type === "int") {
          if (!/^-?\d+$/.test(raw)) throw new Error(`parameter ${p.name} must be a whole number, not "${raw}"`);
          params[p.name] = parseInt(raw, 10);
        } else if (p.type === "float") {
          if (raw === "" || isNaN(+raw)) throw new Error(`parameter ${p.name} must be a number, not "${raw}"`);
          params[p.name] = +raw;
        } else if (p.type === "list" || p.type === "object") {
          const v = parseJson(raw, `parameter ${p.name}`);
          if (p.type === "list" && !Array.isArray(v)) throw new Error(`parameter ${p.name} must be a JSON list ([…])`);
          if (p.type === "object" && (typeof v !== "object" || v === null || Array.isArray(v))) throw new Error(`parameter ${p.name} must be a JSON object ({…})`);
          params[p.name] = v;
        } else params[p.name] = raw;
      }
      const lbl = {};
      for (const part of labelsIn.value.split(",").map((x) => x.trim()).filter(Boolean)) {
        const i = part.indexOf("=");
        if (i <= 0) throw new Error(`label "${part}" must be NAME=VALUE`);
        lbl[part.slice(0, i).trim()] = part.slice(i + 1).trim();
      }
      const body = Object.assign({}, target, { params, labels: lbl, cache: reuse.checked });
      if (runName.value.trim()) body.name = runName.value.trim();
      const d = await json("/runs", { method: "POST", body });
      go("/runs/" + d.id);
    } catch (x) { err.textContent = x.message; }
  });
  return h("div", {}, form, err);
}

/** Parameter declarations read off values (a clone of a run whose pipeline is not stored). */
export function declsOf(values) {
  return Object.entries(values || {}).map(([name, v]) => ({
    name, default: v,
    type: typeof v === "boolean" ? "bool" : Number.isInteger(v) ? "int" : typeof v === "number" ? "float" : Array.isArray(v) ? "list" : v && typeof v === "object" ? "object" : "string",
  }));
}

/** `/runs/new?from=RUN`: a clone of a run, its parameters ready to edit. */
export async function cloneView(main) {
  const from = new URLSearchParams(location.search).get("from");
  if (!from) { main.replaceChildren(h("h1", {}, "New run"), h("p", {}, "Start a run from ", h("a", { href: "/pipelines" }, "a pipeline"), ".")); return; }
  const run = await json("/runs/" + encodeURIComponent(from));
  let decls = declsOf(run.params), target = { clone_of: run.id };
  if (run.pipeline_version) {
    const v = await json("/pipelines/" + encodeURIComponent(run.pipeline) + "/versions/" + run.pipeline_version);
    if (v.outline && v.outline.params) decls = v.outline.params;
    target = { pipeline: run.pipeline, version: run.pipeline_version };
  }
  main.replaceChildren(h("h1", {}, "Clone ", h("span", { class: "run-name" }, run.name)),
    h("p", { class: "muted" }, "A new run of ", run.pipeline, run.pipeline_version ? " v" + run.pipeline_version : " (the same file)", ", starting from this run's parameters."),
    runForm({ decls, values: run.params, target, name: run.name.replace(/-clone(-\d+)?$/, "") + "-clone", labels: run.labels, cache: true }));
}
