// sluice web UI: Schedules (recurring runs) with their trigger, experiment and next due time,
// paused, resumed and deleted here; experiments, each a link to its runs, archived here.
import { ago, api, badge, fmtTime, h, json, labelChips, link, main, onLeave } from "./lib.js";

/** When a time still to come is, relative to now: "in 5 min", "in 3 h". */
export function fmtIn(ts, now = Date.now()) {
  if (!ts) return "";
  const s = (Date.parse(ts) - now) / 1000;
  if (s < 45) return "in under a minute";
  if (s < 3600) return "in " + Math.round(s / 60) + " min";
  if (s < 86400) return "in " + Math.round(s / 3600) + " h";
  return "in " + Math.round(s / 86400) + " days";
}

function when(s) {
  if (s.cron) return h("span", {}, h("code", {}, s.cron), s.timezone ? " (" + s.timezone + ")" : " (UTC)");
  const every = s.interval_seconds;
  const text = every % 86400 === 0 ? every / 86400 + " d" : every % 3600 === 0 ? every / 3600 + " h" : every % 60 === 0 ? every / 60 + " min" : every + " s";
  return h("span", {}, "every " + text);
}

export async function schedulesView() {
  const body = h("tbody", { id: "schedules" });
  const table = h("table", { class: "schedules" },
    h("thead", {}, h("tr", {}, ["Name", "When", "Runs", "Experiment", "State", "Last fired", "Next run", ""].map((t) => h("th", {}, t)))),
    body);
  const empty = h("p", { class: "muted", hidden: true }, "No schedules yet. Make one: ",
    h("code", {}, "sluice schedules create nightly pipeline.yaml --cron '0 3 * * *' --timezone Europe/Berlin"), ".");
  main.replaceChildren(h("h1", {}, "Schedules"), table, empty);
  async function load() {
    const [list, exps] = await Promise.all([json("/schedules"), json("/experiments")]);
    const names = new Map(exps.experiments.map((e) => [e.id, e.name]));
    body.replaceChildren(...list.schedules.map((s) => row(s, names, load)));
    empty.hidden = list.schedules.length > 0;
    table.hidden = list.schedules.length === 0;
  }
  await load();
  const tick = setInterval(() => load().catch(() => {}), 2000);
  onLeave(() => clearInterval(tick));
}

function row(s, names, reload) {
  const act = async (path, opts) => {
    try { await api(path, opts); } catch (e) { alert(e.message); }
    reload();
  };
  const toggle = h("button", { class: "toggle", onclick: () => act("/schedules/" + s.id + "/" + (s.enabled ? "pause" : "resume"), { method: "POST" }) }, s.enabled ? "Pause" : "Resume");
  const del = h("button", { class: "danger delete", onclick: () => {
    if (confirm(`Delete schedule ${s.name}? The runs it fired stay.`)) act("/schedules/" + s.id, { method: "DELETE" });
  } }, "Delete");
  const what = s.pipeline ? h("span", {}, link("/pipelines/" + encodeURIComponent(s.pipeline), s.pipeline), s.version ? " v" + s.version : h("span", { class: "muted" }, " (latest)")) : h("span", { class: "muted" }, "a file");
  return h("tr", { "data-schedule": s.name },
    h("td", { title: s.description || s.id }, s.name, " ", labelChips(s.labels), h("div", { class: "muted" }, what)),
    h("td", { class: "when" }, when(s), h("div", { class: "muted" }, (s.catchup ? "catches up" : "latest only") + " · at most " + s.max_concurrency + " at once")),
    h("td", {}, link("/runs?schedule=" + encodeURIComponent(s.id) + "&archived=all", "runs")),
    h("td", {}, link("/runs?experiment=" + encodeURIComponent(s.experiment_id), names.get(s.experiment_id) || s.experiment_id)),
    h("td", {}, h("span", { class: "badge " + (s.enabled ? "running" : "cancelled"), "data-state": s.enabled ? "active" : "paused" }, s.enabled ? "active" : "paused")),
    h("td", {}, s.last_fired_at ? ago(s.last_fired_at) : h("span", { class: "muted" }, "not yet"),
      s.last_error ? h("div", { class: "error", title: s.last_error }, s.last_error) : ""),
    h("td", { class: "next" }, s.next_at ? h("time", { datetime: s.next_at, title: fmtTime(s.next_at) }, fmtIn(s.next_at)) : h("span", { class: "muted" }, s.enabled ? "ended" : "paused")),
    h("td", {}, toggle, " ", del));
}

export async function experimentsView() {
  const body = h("tbody", { id: "experiments" });
  const name = h("input", { placeholder: "new experiment", "aria-label": "experiment name", id: "new-experiment" });
  const make = h("button", { id: "make-experiment", onclick: async () => {
    if (!name.value.trim()) return;
    try { await api("/experiments", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: name.value.trim() }) }); name.value = ""; } catch (e) { alert(e.message); }
    load();
  } }, "Make");
  main.replaceChildren(h("h1", {}, "Experiments"),
    h("div", { class: "toolbar" }, name, make),
    h("table", { class: "experiments" },
      h("thead", {}, h("tr", {}, ["Name", "Description", "Made", "State", ""].map((t) => h("th", {}, t)))),
      body));
  async function load() {
    const list = await json("/experiments");
    body.replaceChildren(...list.experiments.map((e) => h("tr", { "data-experiment": e.name, class: e.archived ? "archived" : null },
      h("td", {}, link("/runs?experiment=" + encodeURIComponent(e.id) + (e.archived ? "&archived=all" : ""), e.name)),
      h("td", { class: "muted" }, e.description || ""),
      h("td", {}, ago(e.created_at)),
      h("td", {}, e.archived ? badge("archived") : h("span", { class: "muted" }, "active")),
      h("td", {}, e.name === "Default" ? "" : h("button", { class: "archive", onclick: async () => {
        try { await api("/experiments/" + e.id + "/" + (e.archived ? "unarchive" : "archive"), { method: "POST" }); } catch (err) { alert(err.message); }
        load();
      } }, e.archived ? "Unarchive" : "Archive")))));
  }
  await load();
}
