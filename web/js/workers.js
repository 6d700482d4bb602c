// sluice web UI: The workers the server knows: whether each is up, its slots and GPUs in use, its
// labels (what steps' `nodeSelector` picks), the tasks it runs now and its last heartbeat.
import { ago, h, json, labelChips, link, main, onLeave } from "./lib.js";

export async function workersView() {
  const body = h("tbody", { id: "workers" });
  const all = h("input", { type: "checkbox", id: "workers-all" });
  const table = h("table", { class: "workers" },
    h("thead", {}, h("tr", {}, ["Name", "State", "Slots", "GPUs", "Labels", "Running", "Last heartbeat"].map((t) => h("th", {}, t)))),
    body);
  const empty = h("p", { class: "muted", hidden: true }, "No worker is up: start one with ", h("code", {}, "sluice worker --server URL"), ".");
  main.replaceChildren(h("h1", {}, "Workers"), h("label", { class: "muted" }, all, " also those that stopped"), table, empty);
  async function load() {
    const list = (await json("/workers")).filter((w) => all.checked || w.alive);
    body.replaceChildren(...list.map(row));
    empty.hidden = list.length > 0;
    table.hidden = list.length === 0;
  }
  all.addEventListener("change", load);
  await load();
  const tick = setInterval(() => load().catch(() => {}), 2000);
  onLeave(() => clearInterval(tick));
}

function row(w) {
  const running = w.tasks.map((t) => h("div", {}, link("/runs/" + encodeURIComponent(t.run_id) + "/tasks/" + encodeURIComponent(t.task), t.run_name + " / " + t.task)));
  return h("tr", { "data-worker": w.name },
    h("td", { title: w.id }, w.name),
    h("td", {}, h("span", { class: "badge " + (w.alive ? "running" : "cancelled") }, w.alive ? "up" : "gone")),
    h("td", { class: "slots" }, w.active_leases + " / " + w.capacity),
    h("td", { class: "gpus" }, w.gpus ? w.gpus_in_use + " / " + w.gpus : "none"),
    h("td", {}, labelChips(w.labels) || h("span", { class: "muted" }, "none")),
    h("td", { class: "running" }, running.length ? running : h("span", { class: "muted" }, "idle")),
    h("td", {}, ago(w.last_seen_at)));
}
