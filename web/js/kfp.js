// sluice web UI: Kubeflow's artifact types as Kubeflow shows them: Metrics as scalars,
// ClassificationMetrics as a confusion matrix and a ROC curve, SlicedClassificationMetrics as one
// of those per slice, Markdown rendered, HTML in a sandbox (scripts only when the reader lets them
// run, in a frame of no origin).
import { api, h } from "./lib.js";
import { heatmap, htmlView, markdown, rocView } from "./artifacts.js";

export const KINDS = new Set(["system.Metrics", "system.ClassificationMetrics", "system.SlicedClassificationMetrics", "system.Markdown", "system.HTML"]);

// Most text of a Markdown or HTML artifact shown (Plotly inlines ~4 MB of script).
const MAX_TEXT = 16 << 20;

// The view of artifact `a` (a record with `kind` and `metadata`), whose content is at API path `path`.
export async function kfpView(a, path) {
  const m = a.metadata || {};
  let body;
  switch (a.kind) {
    case "system.Metrics": body = scalars(m); break;
    case "system.ClassificationMetrics": body = classification(m); break;
    case "system.SlicedClassificationMetrics":
      body = h("div", {}, (m.evaluationSlices || []).map((sl) => h("div", { class: "slice" }, h("h3", {}, "slice " + sl.slice), classification(sl.sliced_classification_metrics || {}))));
      break;
    case "system.Markdown": body = h("div", { class: "md" }, markdown((await (await api(path)).text()).slice(0, MAX_TEXT))); break;
    case "system.HTML": body = htmlView((await (await api(path)).text()).slice(0, MAX_TEXT), a.name); break;
    default: return null;
  }
  return h("div", { class: "kfp", "data-artifact": a.name, "data-kind": a.kind }, h("h3", {}, a.name, h("span", { class: "muted" }, " · " + a.kind.replace("system.", ""))), body);
}

function scalars(m) {
  const rows = Object.entries(m).filter(([, v]) => typeof v === "number");
  return rows.length ? h("table", { class: "metrics" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, String(+v.toFixed(6)))))))
    : h("p", { class: "muted" }, "no metrics logged");
}

function classification(m) {
  const parts = [];
  const cm = m.confusionMatrix;
  if (cm && Array.isArray(cm.rows)) {
    const labels = (cm.annotationSpecs || []).map((s, i) => s.displayName ?? String(i));
    parts.push(heatmap(labels, cm.rows.map((r) => r.row || [])));
  }
  const roc = m.confidenceMetrics;
  if (Array.isArray(roc) && roc.length) {
    const pts = roc.map((p) => [p.falsePositiveRate ?? 0, p.recall ?? 0]).sort((a, b) => a[0] - b[0]);
    parts.push(rocView("ROC curve", pts));
  }
  return parts.length ? h("div", {}, parts) : h("p", { class: "muted" }, "nothing logged");
}
