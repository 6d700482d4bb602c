// sluice web UI: An artifact's lineage: the step that made it, the runs that reused it from the
// cache, and every step that read it, across runs.
import { API, badge, fmtBytes, fmtTime, h, json, link, main, notFound } from "./lib.js";

export async function lineageView() {
  const uri = new URLSearchParams(location.search).get("uri");
  if (!uri) return notFound("An artifact page needs the artifact's address: follow a \"lineage\" link from a step's artifacts or inputs.");
  let l;
  try { l = await json("/lineage?uri=" + encodeURIComponent(uri)); } catch (e) {
    if (/no run made or read/.test(e.message)) return notFound(e.message);
    throw e;
  }
  const at = (u) => link("/runs/" + u.run + "/tasks/" + encodeURIComponent(u.task), u.task);
  const made = l.producers[0];
  const row = (u, role) => h("tr", { "data-run": u.run, "data-role": role },
    h("td", {}, link("/runs/" + u.run, u.run_name)), h("td", {}, u.pipeline), h("td", {}, at(u)), h("td", {}, u.name),
    h("td", {}, badge(u.state)), h("td", {}, fmtTime(u.at)), h("td", { class: "muted" }, role));
  const head = h("thead", {}, h("tr", {}, ["Run", "Pipeline", "Step", "As", "State", "When", ""].map((c) => h("th", {}, c))));
  main.replaceChildren(
    h("h1", {}, "Artifact ", made ? h("span", { class: "muted" }, made.name) : ""),
    h("div", { class: "card" }, h("dl", { class: "kv" },
      h("dt", {}, "uri"), h("dd", {}, h("code", {}, l.uri)),
      made ? [h("dt", {}, "made by"), h("dd", {}, at(made), " in run ", link("/runs/" + made.run, made.run_name), " · ", fmtTime(made.at))] : [],
      made && made.size !== undefined ? [h("dt", {}, "size"), h("dd", {}, fmtBytes(made.size))] : [],
      made && made.digest ? [h("dt", {}, "digest"), h("dd", {}, h("code", {}, made.digest))] : [],
      made ? [h("dt", {}, "content"), h("dd", {}, h("a", { href: API + "/runs/" + made.run + "/tasks/" + encodeURIComponent(made.task) + "/artifacts/" + encodeURIComponent(made.name) + "?download=true" }, "download"))] : [])),
    h("h2", {}, "Made by"), h("table", { id: "producers" }, head.cloneNode(true), h("tbody", {}, l.producers.map((u, i) => row(u, i === 0 ? "made it" : "reused it (cache)")))),
    h("h2", {}, "Read by"), l.consumers.length ? h("table", { id: "consumers" }, head, h("tbody", {}, l.consumers.map((u) => row(u, "read it")))) : h("p", { class: "muted" }, "No step has read it yet."));
}
