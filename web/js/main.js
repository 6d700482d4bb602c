// sluice web UI: The entry point: routes the location to its view (deep links work), and follows the history.
import { API, h, leave, logout, main, notFound, send, setRouter } from "./lib.js";
import { runsView } from "./runs.js";
import { runView } from "./run.js";
import { compareView } from "./compare.js";
import { pipelineView, pipelinesView } from "./pipelines.js";
import { lineageView } from "./lineage.js";
import { cloneView } from "./form.js";
import { workersView } from "./workers.js";
import { experimentsView, schedulesView } from "./schedules.js";

export function route() {
  leave();
  // Kubeflow's client prints links into Kubeflow's UI (`/#/runs/details/ID`): the same pages here.
  const kf = location.hash.match(/^#\/(runs|experiments|pipelines)\/details\/([^/?]+)/);
  if (kf) {
    const to = kf[1] === "runs" ? "/runs/" + kf[2] : kf[1] === "experiments" ? "/runs?experiment=" + kf[2] : "/pipelines/" + kf[2];
    history.replaceState(null, "", to);
  }
  const p = location.pathname.replace(/\/+$/, "");
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", p.startsWith("/" + a.dataset.nav) || (p === "" && a.dataset.nav === "runs"));
  }
  let m;
  const view =
    (p === "" || p === "/runs") ? runsView() :
    (p === "/runs/new") ? cloneView(main) :
    (m = p.match(/^\/runs\/([^/]+)(?:\/tasks\/([^/]+))?$/)) ? runView(decodeURIComponent(m[1]), m[2] && decodeURIComponent(m[2])) :
    (p === "/compare") ? compareView() :
    (p === "/pipelines") ? pipelinesView() :
    (m = p.match(/^\/pipelines\/([^/]+)$/)) ? pipelineView(decodeURIComponent(m[1])) :
    (p === "/artifacts") ? lineageView() :
    (p === "/workers") ? workersView() :
    (p === "/schedules") ? schedulesView() :
    (p === "/experiments") ? experimentsView() :
    Promise.resolve(notFound());
  view.catch((e) => main.replaceChildren(h("h1", {}, "Error"), h("p", { class: "error" }, e.message)));
}
window.addEventListener("popstate", route);

sessionStorage.removeItem("sluice-reloads");
setRouter(route);
route();

// Who is logged in, and a way out, where the server needs a login.
send(API + "/whoami").then((r) => r.ok ? r.json() : null).then((me) => {
  if (!me || !me.auth_required) return;
  const out = h("button", { class: "logout", id: "logout", title: "log out", onclick: logout }, me.name + " (" + me.role + ") · log out");
  document.querySelector("header").insertBefore(out, document.getElementById("conn"));
}).catch(() => {});
