// sluice web UI: The DAG drawing shared by a run and a pipeline. Laid out by d3-dag (vendored,
// pinned: a Sugiyama layout, edges routed between the layers around the nodes); groups and loops
// are boxes laid out from the inside out, each a node of the level around it, and collapse to one
// node (a collapsed loop shows its iterations' counts by state). Zoom with the wheel or the
// buttons, pan by dragging, fit to the box.
import * as dag from "../vendor/d3-dag-1.2.2.min.js";
import { h, s } from "./lib.js";

const W = 180, H = 50, PAD = 12, HEAD = 26;
const BOXES = new Set(["loop", "group", "iteration"]);
// A loop with more iterations than this starts collapsed.
const FOLD = 6;

/** `{depth: 3, seed: 2}` as `depth=3, seed=2`; a plain item as itself. */
export function itemText(item) {
  if (item === undefined || item === null) return "";
  if (typeof item === "object" && !Array.isArray(item)) return Object.entries(item).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(", ");
  return typeof item === "string" ? item : JSON.stringify(item);
}

function short(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

export class Graph {
  /**
   * `box`: where the drawing goes. `onSelect(name)`: a step was clicked (none: steps are not
   * selectable). Tasks: `{name, label, deps, state, kind, item, when, exit_handler, cached, attempt}`.
   */
  constructor(box, { onSelect = null, empty = null } = {}) {
    this.box = box;
    this.onSelect = onSelect;
    this.collapsed = null;
    this.nodes = new Map();
    this.view = { k: 1, x: 0, y: 0 };
    this.touched = false;
    this.selected = null;
    this.svg = s("svg", { class: "dag", role: "img", "aria-label": "pipeline graph" });
    this.viewport = s("g", { class: "viewport" });
    this.svg.append(this.viewport);
    const zoomBy = (f) => { const r = this.svg.getBoundingClientRect(); this.zoom(f, r.width / 2, r.height / 2); };
    this.tools = h("div", { class: "graph-tools" },
      h("button", { title: "zoom out", "aria-label": "zoom out", onclick: () => zoomBy(1 / 1.25) }, "−"),
      h("button", { title: "zoom in", "aria-label": "zoom in", onclick: () => zoomBy(1.25) }, "+"),
      h("button", { title: "fit the graph to the box", class: "fit", onclick: () => { this.touched = false; this.fit(); } }, "Fit"),
      h("button", { title: "actual size", onclick: () => { this.touched = true; this.view = { k: 1, x: PAD, y: PAD }; this.apply(); } }, "1:1"));
    this.hint = empty ? h("p", { class: "graph-hint muted" }, empty) : null;
    box.replaceChildren(this.tools, this.svg, ...(this.hint ? [this.hint] : []));
    this.svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = this.svg.getBoundingClientRect();
      this.zoom(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    this.svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || e.target.closest(".node, .box-head")) return;
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y };
      this.svg.setPointerCapture(e.pointerId);
      this.svg.classList.add("panning");
    });
    this.svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.touched = true;
      this.view.x = drag.vx + e.clientX - drag.x;
      this.view.y = drag.vy + e.clientY - drag.y;
      this.apply();
    });
    // The box changes size (a panel opens beside it, the window is resized): fit again, unless
    // the reader zoomed or panned.
    new ResizeObserver(() => { if (!this.touched && this.width) this.fit(); }).observe(this.svg);
    const end = () => { drag = null; this.svg.classList.remove("panning"); };
    this.svg.addEventListener("pointerup", end);
    this.svg.addEventListener("pointercancel", end);
  }

  zoom(f, cx, cy) {
    const k = Math.min(4, Math.max(0.02, this.view.k * f));
    const r = k / this.view.k;
    this.view = { k, x: cx - (cx - this.view.x) * r, y: cy - (cy - this.view.y) * r };
    this.touched = true;
    this.apply();
  }

  apply() {
    const { k, x, y } = this.view;
    this.viewport.setAttribute("transform", `translate(${x},${y}) scale(${k})`);
    this.svg.dataset.scale = k.toFixed(3);
  }

  /** Scales the drawing to the box (never above actual size) and centres it. */
  fit() {
    const bw = this.svg.clientWidth || this.box.clientWidth || 800, bh = this.svg.clientHeight || 400;
    const k = Math.min(1, (bw - 2 * PAD) / this.width, (bh - 2 * PAD) / this.height);
    this.view = { k, x: (bw - this.width * k) / 2, y: Math.max(PAD, (bh - this.height * k) / 2) };
    this.apply();
  }

  /** Lays out and draws `tasks`. */
  draw(tasks) {
    const t0 = performance.now();
    this.tasks = new Map(tasks.map((t) => [t.name, t]));
    this.shapeKey = tasks.map((t) => t.name + ":" + (t.kind || "")).join("|");
    const byName = this.tasks;
    // What each task sits in: the nearest loop, group or group copy its name is under.
    const hasMembers = new Set();
    const parent = new Map();
    const boxish = (t) => BOXES.has(t.kind) || (t.control && t.kind !== "step");
    for (const t of tasks) {
      let n = t.name;
      parent.set(t.name, null);
      for (;;) {
        const i = Math.max(n.lastIndexOf("."), n.lastIndexOf("["));
        if (i <= 0) break;
        n = n.slice(0, i);
        const p = byName.get(n);
        if (p && (boxish(p) || !p.image)) { parent.set(t.name, n); hasMembers.add(n); break; }
      }
    }
    this.parent = parent;
    const isBox = (n) => hasMembers.has(n);
    this.isBox = isBox;
    const children = new Map([[null, []]]);
    for (const t of tasks) {
      const p = parent.get(t.name);
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(t.name);
    }
    this.children = children;
    // A loop starts folded when it has many iterations, also one whose iterations appear while
    // the run goes on (its items came from an upstream step); the reader's choice then stands.
    this.collapsed ||= new Set();
    this.judged ||= new Set();
    for (const n of hasMembers) {
      const iterations = (children.get(n) || []).filter((m) => /^\[\d+\]$/.test(m.slice(n.length))).length;
      if (this.judged.has(n) || !iterations) continue;
      this.judged.add(n);
      if (byName.get(n).kind === "loop" && iterations > FOLD) this.collapsed.add(n);
    }
    // Each edge drawn once, between the two tasks (or boxes) of one level it joins.
    const chain = (n) => { const c = []; for (let x = n; x !== null && x !== undefined; x = parent.get(x)) c.push(x); return c; };
    const levelEdges = new Map();
    for (const t of tasks) for (const d of t.deps || []) {
      if (!byName.has(d)) continue;
      const ct = chain(t.name), cd = chain(d);
      if (ct.includes(d) || cd.includes(t.name)) continue;
      const sd = new Set(cd);
      const lca = ct.slice(1).find((x) => sd.has(x)) ?? null;
      const below = (c) => c[c.indexOf(lca) - 1] ?? c[c.length - 1];
      const from = lca === null ? cd[cd.length - 1] : below(cd);
      const to = lca === null ? ct[ct.length - 1] : below(ct);
      if (from === to) continue;
      if (!levelEdges.has(lca)) levelEdges.set(lca, new Map());
      const m = levelEdges.get(lca);
      if (!m.has(to)) m.set(to, new Set());
      m.get(to).add(from);
    }
    const big = tasks.length > 80;
    const layoutOf = (level) => {
      const members = children.get(level) || [];
      const sizes = new Map();
      const inner = new Map();
      for (const m of members) {
        if (isBox(m) && !this.collapsed.has(m)) {
          const l = layoutOf(m);
          inner.set(m, l);
          sizes.set(m, [Math.max(W, l.width + 2 * PAD), l.height + HEAD + PAD]);
        } else sizes.set(m, [W, H]);
      }
      const incoming = levelEdges.get(level) || new Map();
      const data = members.map((m) => ({ id: m, parentIds: [...(incoming.get(m) || [])].filter((p) => sizes.has(p)) }));
      let graph, size;
      const layout = (withEdges) => {
        graph = dag.graphStratify()(withEdges ? data : data.map((d) => ({ id: d.id, parentIds: [] })));
        const coord = !big && members.length <= 40 ? dag.coordQuad() : dag.coordGreedy();
        size = dag.sugiyama().layering(dag.layeringLongestPath().topDown(true)).decross(dag.decrossTwoLayer()).coord(coord)
          .nodeSize((n) => (n.data ? sizes.get(n.data.id) : [0, 0])).gap([22, 38])(graph);
      };
      try { layout(true); } catch (_) { layout(false); }
      const pos = new Map();
      for (const n of graph.nodes()) {
        const [w, hh] = sizes.get(n.data.id);
        pos.set(n.data.id, { x: n.x - w / 2, y: n.y - hh / 2, w, h: hh });
      }
      const edges = [...graph.links()].map((l) => ({ from: l.source.data.id, to: l.target.data.id, points: l.points }));
      return { width: size.width, height: size.height, pos, inner, edges };
    };
    const top = layoutOf(null);
    this.width = Math.max(top.width, 1);
    this.height = Math.max(top.height, 1);
    // Drawn back to front: boxes, edges, nodes.
    const boxes = s("g", { class: "boxes" }), edges = s("g", { class: "edges" }), nodes = s("g", { class: "nodes" });
    this.nodes = new Map();
    this.boxes = new Map();
    const place = (l, ox, oy) => {
      for (const e of l.edges) {
        const a = l.pos.get(e.from), b = l.pos.get(e.to);
        const pts = e.points.map(([x, y]) => [x + ox, y + oy]);
        pts[0] = [a.x + a.w / 2 + ox, a.y + a.h + oy];
        pts[pts.length - 1] = [b.x + b.w / 2 + ox, b.y + oy];
        let d = `M${pts[0][0]},${pts[0][1]}`;
        for (let i = 1; i < pts.length; i++) {
          const [x0, y0] = pts[i - 1], [x1, y1] = pts[i], my = (y0 + y1) / 2;
          d += ` C${x0},${my} ${x1},${my} ${x1},${y1}`;
        }
        edges.append(s("path", { class: "edge", d, "data-from": e.from, "data-to": e.to }));
      }
      for (const [name, p] of l.pos) {
        const x = p.x + ox, y = p.y + oy;
        if (l.inner.has(name)) {
          boxes.append(this.box_(name, x, y, p.w, p.h));
          place(l.inner.get(name), x + (p.w - l.inner.get(name).width) / 2, y + HEAD);
        } else nodes.append(this.node_(name, x, y));
      }
    };
    place(top, 0, 0);
    this.viewport.replaceChildren(boxes, edges, nodes);
    this.svg.dataset.nodes = String(this.nodes.size);
    if (this.hint) this.hint.hidden = !!this.selected;
    if (!this.touched) requestAnimationFrame(() => this.fit());
    this.select(this.selected);
    this.drawMs = performance.now() - t0;
    this.svg.dataset.drawMs = this.drawMs.toFixed(1);
  }

  counts(name) {
    const c = {};
    const walk = (n) => {
      for (const m of this.children.get(n) || []) {
        if (this.isBox(m)) walk(m);
        else { const st = this.tasks.get(m).state || "planned"; c[st] = (c[st] || 0) + 1; }
      }
    };
    walk(name);
    return c;
  }

  countsText(name) {
    const c = this.counts(name);
    const order = ["running", "leased", "ready", "pending", "succeeded", "failed", "cancelled", "skipped", "planned"];
    return order.filter((k) => c[k]).map((k) => c[k] + " " + k).join(" · ");
  }

  tags(t) {
    const out = [];
    if (t.kind === "loop" && !this.isBox(t.name)) out.push(["loop", "runs once per item"]);
    if (t.when) out.push(["if", "runs when " + t.when]);
    if (t.exit_handler) out.push(["exit", "exit handler: runs once the rest has ended"]);
    if (t.cached) out.push(["cached", "reused a cached result"]);
    return out;
  }

  box_(name, x, y, w, hh) {
    const t = this.tasks.get(name);
    // A run's loop holds its iterations (`NAME[k]`); a pipeline's, the steps each iteration runs.
    const members = (this.children.get(name) || []).filter((m) => /^\[\d+\]$/.test(m.slice(name.length))).length;
    const what = t.kind === "loop" ? (members ? `loop · ${members} iteration${members === 1 ? "" : "s"}` : "loop") : t.kind === "iteration" ? itemText(t.item) || "iteration" : "group";
    const tags = this.tags(t).map(([k]) => k).join(" · ");
    const head = s("g", { class: "box-head", tabindex: "0", role: "button", "aria-label": "collapse " + name, "aria-expanded": "true" },
      s("rect", { x, y, width: w, height: HEAD - 4, class: "box-hit" }),
      s("text", { x: x + 8, y: y + 16 }, "▾ " + short(t.label || local(name), 40), s("tspan", { class: "box-kind" }, "  " + what + (tags ? " · " + tags : ""))));
    const toggle = () => { this.collapsed.add(name); this.draw([...this.tasks.values()]); };
    head.addEventListener("click", toggle);
    head.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
    const g = s("g", { class: "box kind-" + (t.kind || "group"), "data-group": name },
      s("title", {}, (t.label ? `${t.label} (${name})` : name) + (t.when ? "\nruns when " + t.when : "")),
      s("rect", { x, y, width: w, height: hh, rx: 8 }), head);
    this.boxes.set(name, g);
    return g;
  }

  node_(name, x, y) {
    const t = this.tasks.get(name);
    const folded = this.isBox(name);
    // Inside a box a step is named as in its box; its full name is its title.
    const shown = t.label || (this.parent.get(name) ? local(name) : name);
    const tags = this.tags(t);
    const g = s("g", { class: "node", transform: `translate(${x},${y})`, tabindex: "0", role: "button", "data-task": name, "aria-label": (folded ? "expand " : "step ") + (t.label || name) },
      s("title", {}, (t.label ? `${t.label} (${name})` : name) + (t.item !== undefined && t.item !== null ? "\nitem: " + itemText(t.item) : "") + tags.map(([, d]) => "\n" + d).join("")),
      s("rect", { width: W, height: H, rx: 6 }),
      s("text", { x: 10, y: 20, class: "label" }, (folded ? "▸ " : "") + short(shown, 24)),
      s("text", { x: 10, y: 38, class: "state" }, ""));
    tags.forEach(([k], i) => {
      const tw = 8 + k.length * 6.2;
      g.append(s("g", { class: "tag tag-" + k, transform: `translate(${W - 6 - tw - i * (tw + 4)},-8)` }, s("rect", { width: tw, height: 15, rx: 7 }), s("text", { x: 4, y: 11 }, k)));
    });
    if (folded) g.classList.add("folded", "kind-" + t.kind);
    const act = () => {
      if (folded) { this.collapsed.delete(name); this.draw([...this.tasks.values()]); }
      else if (this.onSelect) this.onSelect(name);
    };
    if (folded || this.onSelect) {
      g.addEventListener("click", act);
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); act(); } });
    }
    this.nodes.set(name, g);
    this.paint(name);
    return g;
  }

  /** Shows a task's state (and a folded box's counts) on its node. */
  paint(name) {
    const g = this.nodes.get(name);
    if (!g) return;
    const t = this.tasks.get(name);
    const keep = ["folded", "kind-" + t.kind].filter((c) => g.classList.contains(c));
    if (name === this.selected) keep.push("selected");
    const state = t.state;
    g.setAttribute("class", ["node", ...(state ? ["state-" + state] : []), ...keep].join(" "));
    if (state) g.dataset.state = state;
    let text;
    if (this.isBox(name)) text = this.countsText(name) || t.kind;
    else {
      const item = t.item !== undefined && t.item !== null && /\[\d+\]$/.test(name) ? itemText(t.item) : "";
      text = [state, t.attempt > 1 ? "attempt " + t.attempt : "", item].filter(Boolean).join(" · ");
    }
    g.querySelector(".state").textContent = short(text, 30);
  }

  /** New states: repainted in place, or drawn again when tasks came or went. */
  update(tasks) {
    const key = tasks.map((t) => t.name + ":" + (t.kind || "")).join("|");
    if (key !== this.shapeKey) { this.draw(tasks); return; }
    for (const t of tasks) this.tasks.set(t.name, t);
    for (const n of this.nodes.keys()) this.paint(n);
  }

  /** One task's new state, painted on its node and on the folded boxes around it. */
  setState(name, state, attempt) {
    const t = this.tasks && this.tasks.get(name);
    if (!t) return;
    this.tasks.set(name, Object.assign({}, t, { state, attempt }));
    for (let n = name; n !== null && n !== undefined; n = this.parent.get(n)) if (this.nodes.has(n)) this.paint(n);
  }

  select(name) {
    this.selected = name;
    for (const [n, g] of this.nodes) g.classList.toggle("selected", n === name);
    if (this.hint) this.hint.hidden = !!name;
  }
}

// `tune[0].train` is `train` in its group; `tune[0]` is `[0]` in its loop.
function local(name) {
  const i = Math.max(name.lastIndexOf("."), name.lastIndexOf("["));
  if (i <= 0) return name;
  return name[i] === "." ? name.slice(i + 1) : name.slice(i);
}
