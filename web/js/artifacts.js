// sluice web UI: Artifacts (previews by type: text, CSV, Markdown, images, directories) and metrics (scalars and series).
import { API, api, fmtBytes, h, json, link, s } from "./lib.js";

export async function showArtifact(box, path, name) {
  box.replaceChildren(h("h2", {}, "Preview: " + name), h("p", { class: "muted" }, "loading…"));
  const r = await api(path);
  const type = r.headers.get("content-type") || "";
  const url = API + path;
  let body;
  if (type.startsWith("application/json")) {
    const data = await r.json();
    if (data && data.kind === "directory" && Array.isArray(data.files)) {
      body = h("table", { class: "files" }, h("tbody", {}, data.files.map((f) => h("tr", {},
        h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); showArtifact(box, path.split("?")[0] + "?path=" + encodeURIComponent(f.path), name + "/" + f.path); } }, f.path)),
        h("td", { class: "num" }, f.link !== undefined ? "link → " + f.link : fmtBytes(f.size))))));
    } else {
      body = h("div", {}, metricsView(data), h("pre", {}, JSON.stringify(data, null, 2)));
    }
  } else if (type.startsWith("text/csv") || type.startsWith("text/tab-separated")) {
    body = csvTable(await r.text(), type.startsWith("text/tab") ? "\t" : ",");
  } else if (type.startsWith("image/")) {
    body = h("img", { src: url, alt: name });
  } else if (type.startsWith("text/html")) {
    body = h("iframe", { sandbox: "", src: url, title: name });
  } else if (type.startsWith("text/markdown")) {
    body = h("div", { class: "md" }, markdown(await r.text()));
  } else if (type.startsWith("text/")) {
    body = h("pre", {}, (await r.text()).slice(0, 200000));
  } else {
    body = h("p", { class: "muted" }, "binary (" + type + "): ", h("a", { href: url + (url.includes("?") ? "&" : "?") + "download=true" }, "download"));
  }
  box.replaceChildren(h("h2", {}, "Preview: " + name), h("div", { class: "preview" }, body));
}

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
    if (rows.length > 500) break;
  }
  if (!rows.length) return h("p", { class: "muted" }, "empty");
  return h("table", { class: "csv" }, h("thead", {}, h("tr", {}, rows[0].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.slice(1).map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

export function markdown(text) {
  const frag = document.createDocumentFragment();
  let list = null, code = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      if (code) { frag.append(h("pre", {}, code.join("\n"))); code = null; } else code = [];
      continue;
    }
    if (code) { code.push(line); continue; }
    const m = line.match(/^(#{1,6})\s+(.*)/);
    const li = line.match(/^\s*[-*]\s+(.*)/);
    if (li) { if (!list) { list = h("ul"); frag.append(list); } list.append(h("li", {}, li[1])); continue; }
    list = null;
    if (m) frag.append(h("h" + Math.min(m[1].length + 2, 6), {}, m[2]));
    else if (line.trim()) frag.append(h("p", {}, line));
  }
  if (code) frag.append(h("pre", {}, code.join("\n")));
  return frag;
}

// Metrics a step wrote as JSON: numbers are scalars, arrays of numbers (or of {x, y}) are series.
export function flatten(obj, prefix = "", out = { scalars: {}, series: {} }) {
  if (typeof obj === "number") out.scalars[prefix || "value"] = obj;
  else if (Array.isArray(obj)) {
    if (obj.length && obj.every((v) => typeof v === "number")) out.series[prefix] = obj.map((y, x) => [x, y]);
    else if (obj.length && obj.every((v) => v && typeof v.x === "number" && typeof v.y === "number")) out.series[prefix] = obj.map((p) => [p.x, p.y]);
  } else if (obj && typeof obj === "object") {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? prefix + "." + k : k, out);
  }
  return out;
}

export function metricsView(data) {
  const { scalars, series } = flatten(data);
  const frag = document.createDocumentFragment();
  const keys = Object.keys(scalars);
  if (keys.length) frag.append(h("table", { class: "metrics" }, h("tbody", {}, keys.slice(0, 200).map((k) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, +scalars[k].toFixed(6)))))));
  for (const [k, pts] of Object.entries(series)) frag.append(h("div", {}, h("strong", {}, k), plot([{ name: k, points: pts }])));
  return frag;
}

export const PALETTE = ["#2457c5", "#d1603d", "#23915a", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
export function plot(lines, W = 420, H = 180) {
  const all = lines.flatMap((l) => l.points);
  if (!all.length) return h("span");
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
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
