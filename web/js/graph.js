// sluice web UI: The DAG drawing shared by a run and a pipeline.
import { s } from "./lib.js";

// A layered drawing: each step one layer below its deepest dependency, the order in each layer
// chosen by the average position of its dependencies (barycentre), edges as curves.
export function drawGraph(box, tasks, nodes, onSelect) {
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
  // A group (a sub-DAG: a condition, a loop, a nested pipeline) is drawn as a frame around what
  // is in it, behind the nodes: its steps are `GROUP.STEP`, its loop's copies `GROUP[k]…`.
  // An outer frame stands further out than the frames inside it, each with room for its name.
  const within = (m, g) => m.name.startsWith(g + ".") || m.name.startsWith(g + "[");
  const groups = tasks.filter((t) => t.control && tasks.some((m) => within(m, t.name)));
  const levels = (g) => 1 + Math.max(0, ...groups.filter((o) => within(o, g.name)).map(levels));
  const frames = groups.map((t) => {
    const pts = tasks.filter((m) => within(m, t.name)).map((m) => xy.get(m.name));
    const out = 5 + 6 * (levels(t) - 1), top = 13 + 11 * (levels(t) - 1);
    const x0 = Math.min(...pts.map((p) => p[0])) - out, y0 = Math.min(...pts.map((p) => p[1])) - top;
    const x1 = Math.max(...pts.map((p) => p[0])) + W + out, y1 = Math.max(...pts.map((p) => p[1])) + H + out;
    return s("g", { class: "group", "data-group": t.name },
      s("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 6 }),
      s("text", { x: x0 + 6, y: y0 + 10 }, t.label || local(t.name)));
  });
  svg.prepend(...frames);
  for (const t of tasks) {
    const [x, y] = xy.get(t.name);
    // Inside a group's frame a step is named as in its group; its full name is its title.
    const shown = t.label || (groups.some((g) => within(t, g.name)) ? local(t.name) : t.name);
    const label = shown.length > 22 ? shown.slice(0, 21) + "…" : shown;
    const g = s("g", { class: t.control ? "node control" : "node", transform: `translate(${x},${y})`, tabindex: "0", role: "button", "data-task": t.name, "aria-label": "step " + (t.label || t.name) },
      s("title", {}, t.label ? `${t.label} (${t.name})` : t.name), s("rect", { width: W, height: H }),
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

export function setNodeState(g, state, attempt) {
  if (!g) return;
  const keep = ["selected", "control"].filter((c) => g.classList.contains(c));
  g.setAttribute("class", ["node", "state-" + state, ...keep].join(" "));
  g.dataset.state = state;
  g.querySelector(".state").textContent = state + (attempt > 1 ? " · attempt " + attempt : "");
}

// `tune[0].train` is `train` in its group (`tune[0]` stays `tune[0]`).
function local(name) {
  return name.slice(name.lastIndexOf(".") + 1);
}
