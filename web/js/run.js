// sluice web UI: A run: its header and actions, its live graph, and the panel of the step chosen.
import { TERMINAL, api, badge, debounce, elapsed, events, fmtBytes, fmtTime, fmtVal, go, h, json, kv, labelChips, link, main, notFound, onLeave } from "./lib.js";
import { Graph } from "./graph.js";
import { taskPanel } from "./task.js";

/** "3 of 7 steps": a run's steps (tasks that run a container) ended of planned. */
export function progress(run) {
  return run.steps && run.steps.total ? `${run.steps.done} of ${run.steps.total} steps` : "";
}

export function graphTasks(run) {
  return run.tasks.map((t) => ({
    name: t.name, label: t.display_name, deps: t.depends_on, state: t.state, attempt: t.attempt, image: t.image,
    kind: t.kind || (t.image ? "step" : "group"), item: t.item, when: t.when, exit_handler: t.exit_handler, cached: !!t.cached_from,
  }));
}

export async function runView(id, taskName) {
  let run;
  try { run = await json("/runs/" + encodeURIComponent(id)); } catch (e) {
    if (/no run/.test(e.message)) return notFound(`There is no run ${id} (it may have been deleted).`);
    throw e;
  }
  let selectedTask = taskName || null;
  const header = h("div", { class: "run-head" });
  const graphBox = h("div", { class: "card graph", id: "graph" });
  const panel = h("div", { class: "card panel", id: "panel" });
  const layout = h("div", { class: "layout" + (selectedTask ? "" : " nopanel") }, graphBox, panel);
  main.replaceChildren(header, layout);
  let panelCtl = null;

  function actions(r) {
    const ended = TERMINAL.has(r.state);
    const act = (label, attrs, fn) => h("button", Object.assign({ onclick: async (e) => {
      e.target.disabled = true;
      try { await fn(); } catch (err) { alert(err.message); } finally { e.target.disabled = false; }
    } }, attrs), label);
    return h("div", { class: "toolbar actions" },
      ended ? null : act("Cancel", { class: "danger", id: "cancel", disabled: r.state === "cancelling" }, async () => {
        if (confirm("Cancel run " + r.name + "?")) await api("/runs/" + r.id + "/cancel", { method: "POST" });
      }),
      act("Rerun", { id: "rerun", disabled: !ended, title: "a new run that reuses what succeeded and runs the rest again" }, async () => {
        const d = await json("/runs/" + r.id + "/rerun", { method: "POST" });
        go("/runs/" + d.id);
      }),
      h("button", { id: "clone", title: "start a new run of this pipeline with these parameters, edited", onclick: () => go("/runs/new?from=" + encodeURIComponent(r.id)) }, "Clone"),
      act(r.archived ? "Unarchive" : "Archive", { id: "archive", title: r.archived ? "show it in the run list again" : "leave it out of the run list (it is kept)" }, async () => {
        run = await json("/runs/" + r.id + (r.archived ? "/unarchive" : "/archive"), { method: "POST" });
        renderHeader();
      }),
      ended ? act("Delete", { class: "danger", id: "delete", title: "forget this run, its logs and its artifact records" }, async () => {
        if (!confirm("Delete run " + r.name + "? Its logs and records are gone for good.")) return;
        await api("/runs/" + r.id, { method: "DELETE" });
        go("/runs");
      }) : null);
  }

  function renderHeader() {
    const r = run;
    const outputs = Object.entries(r.outputs || {}).map(([k, v]) => k + "=" + fmtVal(v)).concat((r.output_artifacts || []).map((a) => a.name + " (artifact)"));
    header.replaceChildren(
      h("h1", {}, h("span", { class: "run-name" }, r.name), badge(r.state), r.archived ? h("span", { class: "badge archived" }, "archived") : null),
      actions(r),
      h("div", { class: "card summary" }, kv([
        ["run", r.id], ["pipeline", r.pipeline_version ? link("/pipelines/" + encodeURIComponent(r.pipeline), r.pipeline + " v" + r.pipeline_version) : r.pipeline],
        ["labels", labelChips(r.labels)],
        ["progress", h("span", { id: "progress" }, progress(r))],
        ["started", fmtTime(r.created_at)], ["finished", fmtTime(r.finished_at)],
        [TERMINAL.has(r.state) ? "duration" : "elapsed", h("span", { id: "elapsed" }, elapsed(r))],
        ["error", r.error ? h("span", { class: "error" }, r.error) : null],
        ["parameters", Object.keys(r.params || {}).length ? Object.entries(r.params).map(([k, v]) => k + "=" + fmtVal(v)).join("  ") : null],
        ["inputs", (r.inputs || []).length ? h("span", { id: "run-inputs" }, r.inputs.map((a) => a.name + " (" + fmtBytes(a.size) + ", " + a.digest.slice(0, 19) + "…)").join("  ")) : null],
        ["outputs", outputs.length ? outputs.join("  ") : null],
      ])));
  }
  const graph = new Graph(graphBox, { onSelect: (n) => select(n), empty: "Select a step to see its log, inputs, outputs and artifacts." });
  function select(name) {
    selectedTask = name;
    history.replaceState(null, "", "/runs/" + id + (name ? "/tasks/" + encodeURIComponent(name) : ""));
    layout.classList.toggle("nopanel", !name);
    graph.select(name);
    if (panelCtl) panelCtl.close();
    panelCtl = name ? taskPanel(panel, run, name, { close: () => select(null), select }) : null;
    if (!name) panel.replaceChildren();
  }
  renderHeader();
  graph.draw(graphTasks(run));
  window.__sluiceGraphMs = graph.drawMs;
  if (selectedTask) select(selectedTask);

  const refresh = debounce(async () => {
    run = await json("/runs/" + encodeURIComponent(id));
    renderHeader();
    graph.update(graphTasks(run));
    if (panelCtl) panelCtl.update(run);
  }, 150);
  events("/runs/" + encodeURIComponent(id) + "/events?logs=false", {
    task: (e) => {
      const t = run.tasks.find((x) => x.name === e.task);
      if (t) { t.state = e.state; t.attempt = e.attempt; graph.setState(e.task, e.state, e.attempt); }
      refresh();
    },
    run: () => refresh(),
  });
  // The elapsed time ticks while the run goes on.
  const tick = setInterval(() => {
    const el = document.getElementById("elapsed");
    if (el && !TERMINAL.has(run.state)) el.textContent = elapsed(run);
  }, 1000);
  onLeave(() => { clearInterval(tick); if (panelCtl) panelCtl.close(); });
}
