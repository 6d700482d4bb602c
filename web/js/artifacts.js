// sluice web UI: Artifacts shown by their declared type and their content: images, Markdown,
// HTML in a sandbox (scripts only when asked for), CSV as a sortable table, directories, and
// metrics: scalars as a table, series as plots, a confusion matrix as a heatmap, an ROC curve as
// TPR against FPR (docs/metrics.md has the conventions; Kubeflow's shapes are read too).
import { API, api, fmtBytes, h, s } from "./lib.js";

// Most text shown of a text artifact, and of an HTML report (Plotly inlines ~4 MB of script).
const MAX_TEXT = 2 << 20;
const MAX_HTML = 16 << 20;
const MAX_ROWS = 5000;

const MARKDOWN = new Set(["markdown", "system.Markdown"]);
const HTML = new Set(["html", "system.HTML"]);

/** Shows artifact `a` (`{name, kind}`), read from API path `path`, in `box`. */
export async function showArtifact(box, path, a) {
  const name = a.name;
  box.replaceChildren(h("h3", {}, "Preview: " + name), h("p", { class: "muted" }, "loading…"));
  const r = await api(path);
  const type = r.headers.get("content-type") || "";
  const url = API + path;
  const lower = name.toLowerCase();
  let body;
  let kind = "binary";
  if (type.startsWith("application/json")) {
    const data = await r.json();
    if (data && data.kind === "directory" && Array.isArray(data.files)) {
      kind = "directory";
      body = h("table", { class: "files" }, h("tbody", {}, data.files.map((f) => h("tr", {},
        h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); showArtifact(box, path.split("?")[0] + "?path=" + encodeURIComponent(f.path), { name: name + "/" + f.path }); } }, f.path)),
        h("td", { class: "num" }, f.link !== undefined ? "link → " + f.link : fmtBytes(f.size))))));
    } else {
      kind = "json";
      body = h("div", {}, metricsView(data), h("details", {}, h("summary", {}, "JSON"), h("pre", {}, JSON.stringify(data, null, 2).slice(0, MAX_TEXT))));
    }
  } else if (type.startsWith("image/")) {
    kind = "image";
    body = h("img", { src: url, alt: name });
  } else if (type.startsWith("text/html") || HTML.has(a.kind)) {
    kind = "html";
    body = htmlView(await text(r, MAX_HTML), name);
  } else if (type.startsWith("text/markdown") || MARKDOWN.has(a.kind) || /\.(md|markdown)$/.test(lower)) {
    kind = "markdown";
    body = h("div", { class: "md" }, markdown(await text(r, MAX_TEXT)));
  } else if (type.startsWith("text/csv") || type.startsWith("text/tab-separated")) {
    kind = "csv";
    body = csvTable(await text(r, MAX_TEXT), type.startsWith("text/tab") ? "\t" : ",");
  } else if (type.startsWith("text/")) {
    kind = "text";
    body = h("pre", {}, await text(r, MAX_TEXT));
  } else {
    body = h("p", { class: "muted" }, "binary (" + (type || "unknown type") + "): ", h("a", { href: url + (url.includes("?") ? "&" : "?") + "download=true" }, "download"));
  }
  box.replaceChildren(h("h3", {}, "Preview: " + name), h("div", { class: "preview", "data-view": kind }, body));
}

async function text(r, max) {
  const t = await r.text();
  return t.length > max ? t.slice(0, max) : t;
}

/** An HTML report in a sandboxed frame of no origin: no scripts unless the reader lets them
 * run (they still cannot reach the UI, its cookies or its API). */
export function htmlView(html, title) {
  const frame = () => h("iframe", { sandbox: allow.checked ? "allow-scripts" : "", srcdoc: html, title, referrerpolicy: "no-referrer" });
  const allow = h("input", { type: "checkbox", class: "allow-scripts" });
  const box = h("div", { class: "html-view" });
  allow.addEventListener("change", () => box.replaceChildren(frame()));
  box.append(frame());
  return h("div", {}, h("label", { class: "muted small", title: "Interactive reports (Plotly, Bokeh) need their scripts. They run in a frame of no origin: they cannot reach sluice." }, allow, " run its scripts"), box);
}

/** Rows of delimited text as a table sorted by any column (click its header; numbers as numbers). */
export function csvTable(text, sep) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    const cells = []; let cur = "", q = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (q) { if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') q = false; else cur += c; }
      else if (c === '"') q = true; else if (c === sep) { cells.push(cur); cur = ""; } else cur += c;
    }
    cells.push(cur);
    rows.push(cells);
    if (rows.length > MAX_ROWS) break;
  }
  if (!rows.length) return h("p", { class: "muted" }, "empty");
  const head = rows[0], data = rows.slice(1);
  const body = h("tbody");
  let by = -1, dir = 1;
  const num = (v) => (v !== "" && !isNaN(+v) ? +v : null);
  const ths = head.map((c, i) => h("th", { class: "sortable", "aria-sort": "none", onclick: () => sort(i) }, c));
  function fill() { body.replaceChildren(...data.map((r) => h("tr", {}, r.map((c) => h("td", { class: num(c) !== null ? "num" : null }, c))))); }
  function sort(i) {
    dir = by === i ? -dir : 1;
    by = i;
    data.sort((a, b) => {
      const x = num(a[i] ?? ""), y = num(b[i] ?? "");
      return dir * (x !== null && y !== null ? x - y : String(a[i] ?? "").localeCompare(String(b[i] ?? "")));
    });
    ths.forEach((t, k) => t.setAttribute("aria-sort", k === i ? (dir > 0 ? "ascending" : "descending") : "none"));
    fill();
  }
  fill();
  return h("div", {}, h("table", { class: "csv" }, h("thead", {}, h("tr", {}, ths)), body),
    rows.length > MAX_ROWS ? h("p", { class: "muted" }, `the first ${MAX_ROWS} rows`) : null);
}

// ---- Markdown: headings, paragraphs, emphasis, code, links, lists, quotes, tables, rules ----

export function markdown(text) {
  const frag = document.createDocumentFragment();
  const lines = text.split("\n");
  let list = null, para = null;
  const endPara = () => { para = null; };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) code.push(lines[i]);
      frag.append(h("pre", {}, h("code", {}, code.join("\n"))));
      list = null; endPara();
      continue;
    }
    // A table: a header row, a separator row of dashes, then rows.
    if (line.includes("|") && /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(lines[i + 1] || "")) {
      const cells = (l) => l.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
      const head = cells(line);
      const rows = [];
      for (i += 2; i < lines.length && lines[i].includes("|"); i++) rows.push(cells(lines[i]));
      i--;
      frag.append(h("table", { class: "md-table" }, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, inline(c))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, inline(c))))))));
      list = null; endPara();
      continue;
    }
    const m = line.match(/^(#{1,6})\s+(.*)/);
    const li = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)/);
    if (li) {
      const tag = /\d/.test(li[1]) ? "ol" : "ul";
      if (!list || list.tagName.toLowerCase() !== tag) { list = h(tag); frag.append(list); }
      list.append(h("li", {}, inline(li[2])));
      endPara();
      continue;
    }
    list = null;
    if (m) { frag.append(h("h" + Math.min(m[1].length + 2, 6), {}, inline(m[2]))); endPara(); }
    else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { frag.append(h("hr")); endPara(); }
    else if (line.startsWith(">")) { frag.append(h("blockquote", {}, inline(line.replace(/^>\s?/, "")))); endPara(); }
    else if (line.trim()) {
      if (para) para.append(" ", inline(line));
      else { para = h("p", {}, inline(line)); frag.append(para); }
    } else endPara();
  }
  return frag;
}

/** Inline Markdown: `code`, **strong**, *emphasis*, [links](https://…) (web links only). */
export function inline(text) {
  const frag = document.createDocumentFragment();
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*]+)\*|_([^_]+)_|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let at = 0, m;
  while ((m = re.exec(text))) {
    frag.append(text.slice(at, m.index));
    if (m[1] !== undefined) frag.append(h("code", {}, m[1]));
    else if (m[2] !== undefined || m[3] !== undefined) frag.append(h("strong", {}, inline(m[2] ?? m[3])));
    else if (m[4] !== undefined || m[5] !== undefined) frag.append(h("em", {}, inline(m[4] ?? m[5])));
    else if (/^https?:\/\//i.test(m[7])) frag.append(h("a", { href: m[7], rel: "noopener noreferrer", target: "_blank" }, m[6]));
    else frag.append(m[6]);
    at = re.lastIndex;
  }
  frag.append(text.slice(at));
  return frag;
}

// ---- Metrics ----

const isNums = (v) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number");
const isMatrix = (v) => Array.isArray(v) && v.length > 0 && v.every((r) => isNums(r) && r.length === v.length);

/** A confusion matrix in any of the shapes read: a square array of counts;
 * `{labels, matrix}`; Kubeflow's `{annotationSpecs: [{displayName}], rows: [{row}]}`. */
function confusion(v) {
  if (isMatrix(v)) return { labels: v.map((_, i) => String(i)), rows: v };
  if (v && typeof v === "object") {
    if (isMatrix(v.matrix)) return { labels: (v.labels || v.matrix.map((_, i) => i)).map(String), rows: v.matrix };
    if (Array.isArray(v.rows) && v.rows.every((r) => isNums(r.row))) {
      return { labels: (v.annotationSpecs || []).map((s, i) => s.displayName ?? String(i)), rows: v.rows.map((r) => r.row) };
    }
  }
  return null;
}

/** An ROC curve in any of the shapes read: `{fpr, tpr}`; Kubeflow's confidence metrics
 * (`[{falsePositiveRate, recall}]`). Points sorted by FPR. */
function roc(v) {
  if (v && isNums(v.fpr) && isNums(v.tpr) && v.fpr.length === v.tpr.length) return v.fpr.map((x, i) => [x, v.tpr[i]]).sort((a, b) => a[0] - b[0]);
  if (Array.isArray(v) && v.length && v.every((p) => p && typeof p.falsePositiveRate === "number")) return v.map((p) => [p.falsePositiveRate, p.recall ?? p.truePositiveRate ?? 0]).sort((a, b) => a[0] - b[0]);
  return null;
}

/** A metrics document taken apart: scalars (dotted paths to numbers), series (arrays of
 * numbers, or of `{x, y}`), confusion matrices and ROC curves. */
export function analyze(obj, prefix = "", out = { scalars: {}, series: {}, matrices: [], rocs: [] }) {
  const key = prefix.slice(prefix.lastIndexOf(".") + 1);
  if (typeof obj === "number") { out.scalars[prefix || "value"] = obj; return out; }
  if (/confusion/i.test(key)) { const c = confusion(obj); if (c) { out.matrices.push({ name: prefix, ...c }); return out; } }
  if (/^(roc|confidenceMetrics)$/i.test(key) || (obj && isNums(obj.fpr) && isNums(obj.tpr))) {
    const pts = roc(obj);
    if (pts) { out.rocs.push({ name: prefix || "roc", points: pts }); if (!Array.isArray(obj)) for (const [k, v] of Object.entries(obj)) if (!["fpr", "tpr", "thresholds"].includes(k)) analyze(v, prefix ? prefix + "." + k : k, out); return out; }
  }
  if (Array.isArray(obj)) {
    if (isNums(obj)) out.series[prefix] = obj.map((y, x) => [x, y]);
    else if (obj.length && obj.every((v) => v && typeof v.x === "number" && typeof v.y === "number")) out.series[prefix] = obj.map((p) => [p.x, p.y]);
  } else if (obj && typeof obj === "object") {
    for (const [k, v] of Object.entries(obj)) analyze(v, prefix ? prefix + "." + k : k, out);
  }
  return out;
}

/** `analyze` without the pictures: what runs are compared by. */
export function flatten(obj, prefix = "", out = { scalars: {}, series: {} }) {
  const a = analyze(obj, prefix);
  Object.assign(out.scalars, a.scalars);
  Object.assign(out.series, a.series);
  return out;
}

export function metricsView(data) {
  const { scalars, series, matrices, rocs } = analyze(data);
  const frag = document.createDocumentFragment();
  // The pictures first: a matrix or a curve says more at a glance than a page of numbers.
  for (const m of matrices) frag.append(h("div", { class: "matrix" }, h("strong", {}, m.name), heatmap(m.labels, m.rows)));
  for (const r of rocs) frag.append(rocView(r.name, r.points));
  const keys = Object.keys(scalars);
  if (keys.length) frag.append(h("table", { class: "metrics" }, h("tbody", {}, keys.slice(0, 200).map((k) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, String(+scalars[k].toFixed(6))))))));
  for (const [k, pts] of Object.entries(series)) frag.append(h("div", {}, h("strong", {}, k), plot([{ name: k, points: pts }])));
  return frag;
}

/** A confusion matrix as a heatmap: each cell shaded by its share of its row (what fraction of
 * that true class was predicted so), the count written in it. */
export function heatmap(labels, rows) {
  return h("table", { class: "confusion heatmap", "aria-label": "confusion matrix" },
    h("thead", {}, h("tr", {}, h("th", { class: "corner" }, "true \\ predicted"), labels.map((l) => h("th", {}, l)))),
    h("tbody", {}, rows.map((r, i) => {
      const sum = r.reduce((a, b) => a + b, 0) || 1;
      return h("tr", {}, h("th", {}, labels[i] ?? String(i)), r.map((v, j) => {
        const share = v / sum;
        return h("td", { class: "num" + (i === j ? " diag" : ""), title: `${(share * 100).toFixed(1)}% of ${labels[i] ?? i}`, style: `background: rgba(36, 87, 197, ${(0.06 + 0.84 * share).toFixed(3)}); color: ${share > 0.5 ? "#fff" : "inherit"}` }, String(v));
      }));
    })));
}

/** An ROC curve: true positive rate against false positive rate, both 0 to 1, with the
 * diagonal of chance and the area under the curve. */
export function rocView(name, points) {
  const pts = [[0, 0], ...points, [1, 1]];
  let auc = 0;
  for (let i = 1; i < pts.length; i++) auc += (pts[i][0] - pts[i - 1][0]) * (pts[i][1] + pts[i - 1][1]) / 2;
  const W = 300, P = 34;
  const sx = (x) => P + x * (W - 2 * P), sy = (y) => W - P - y * (W - 2 * P);
  const svg = s("svg", { class: "plot roc-plot", width: W, height: W, viewBox: `0 0 ${W} ${W}`, "aria-label": "ROC curve" },
    s("line", { class: "axis", x1: P, y1: W - P, x2: W - P, y2: W - P }), s("line", { class: "axis", x1: P, y1: P, x2: P, y2: W - P }),
    s("line", { class: "chance", x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1) }),
    s("text", { x: W / 2 - 40, y: W - 6 }, "false positive rate"), s("text", { x: 4, y: P - 10 }, "true positive rate"),
    s("text", { x: P - 10, y: W - P + 12 }, "0"), s("text", { x: W - P - 4, y: W - P + 12 }, "1"), s("text", { x: P - 12, y: P + 4 }, "1"),
    s("polyline", { class: "roc-line", fill: "none", stroke: PALETTE[0], "stroke-width": 2, points: pts.map(([x, y]) => sx(x) + "," + sy(y)).join(" ") }));
  return h("div", { class: "roc", "data-auc": auc.toFixed(4) }, h("strong", {}, (name || "ROC") + " · AUC " + auc.toFixed(3)), svg);
}

export const PALETTE = ["#2457c5", "#d1603d", "#23915a", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
export function plot(lines, W = 420, H = 180) {
  const all = lines.flatMap((l) => l.points);
  if (!all.length) return h("span");
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of all) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const P = 30;
  const sx = (x) => P + (x - x0) / ((x1 - x0) || 1) * (W - 2 * P);
  const sy = (y) => H - P + (y0 - y) / ((y1 - y0) || 1) * (H - 2 * P);
  const svg = s("svg", { class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}` },
    s("line", { class: "axis", x1: P, y1: H - P, x2: W - P, y2: H - P }), s("line", { class: "axis", x1: P, y1: P, x2: P, y2: H - P }),
    s("text", { x: 2, y: P }, +y1.toPrecision(3)), s("text", { x: 2, y: H - P }, +y0.toPrecision(3)),
    s("text", { x: P, y: H - 8 }, +x0.toPrecision(3)), s("text", { x: W - P - 20, y: H - 8 }, +x1.toPrecision(3)));
  lines.forEach((l, i) => svg.append(s("polyline", { fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 2, points: l.points.map((p) => sx(p[0]) + "," + sy(p[1])).join(" ") })));
  const legend = h("div", { class: "legend" }, lines.map((l, i) => { const e = h("span", {}, l.name); e.style.setProperty("--c", PALETTE[i % PALETTE.length]); return e; }));
  return h("div", {}, svg, lines.length > 1 ? legend : null);
}
