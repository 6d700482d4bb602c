//! Where a task may run: on a worker whose labels hold every label of the task's `nodeSelector`,
//! and, for a task that asks for GPUs, only where that many are free (a worker's GPUs, less
//! those its current leases asked for). What each worker holds now is read from the leases.

use super::{Known, Scheduler, State};
use crate::store::WorkerRow;
use sluice_engine::task::TaskSpec;
use std::collections::HashMap;

/// What a worker holds now: its leased tasks and the GPUs they asked for.
#[derive(Debug, Default, Clone)]
pub struct Load {
    /// (run id, run name, task name, attempt) of each task it holds a lease of.
    pub tasks: Vec<(String, String, String, u32)>,
    pub gpus: u32,
    /// When it was last heard from and whether it counts as up, where this server has heard
    /// from it since it started.
    pub seen: Option<(i64, bool)>,
}

impl Known {
    /// Whether this worker can be given a task of `spec` while `gpus_used` of its GPUs are taken.
    pub(super) fn fits(&self, spec: Option<&TaskSpec>, gpus_used: u32) -> bool {
        let Some(spec) = spec else {
            return true;
        };
        sluice_spec::labels::selects(&spec.node_selector, &self.labels)
            && spec.resources.gpu <= self.gpus.saturating_sub(gpus_used)
    }
}

/// Each lease the scheduler holds that is still its task's: the worker holding it, the run's id,
/// the run and the task's index.
fn held(st: &State) -> impl Iterator<Item = (&str, &String, &sluice_engine::Run, usize)> {
    st.leases.iter().filter_map(|(lease_id, (run_id, i))| {
        let run = &st.runs.get(run_id)?.run;
        let l = run.tasks[*i].lease.as_ref().filter(|l| l.id == *lease_id)?;
        Some((l.worker.as_str(), run_id, run, *i))
    })
}

fn gpus_of(run: &sluice_engine::Run, i: usize) -> u32 {
    run.tasks[i].spec.as_ref().map_or(0, |s| s.resources.gpu)
}

/// What every worker holds now, by worker id.
pub(super) fn loads(st: &State) -> HashMap<String, Load> {
    let mut out: HashMap<String, Load> = HashMap::new();
    for (worker, run_id, run, i) in held(st) {
        let load = out.entry(worker.to_string()).or_default();
        load.tasks.push((
            run_id.clone(),
            run.name.clone(),
            run.plan.tasks[i].name.to_string(),
            run.tasks[i].attempt,
        ));
        load.gpus += gpus_of(run, i);
    }
    let now = sluice_sdk::api::now_ms();
    for (id, k) in &st.workers {
        if k.up_until > 0 {
            out.entry(id.clone()).or_default().seen = Some((k.seen, now <= k.up_until));
        }
    }
    out
}

/// The GPUs `worker`'s leases asked for. A worker with none is not looked for: a lease request
/// walks the leases only where there are GPUs to count.
pub(super) fn gpus_used(st: &State, worker: &str) -> u32 {
    if st.workers.get(worker).is_none_or(|k| k.gpus == 0) {
        return 0;
    }
    held(st)
        .filter(|(w, ..)| *w == worker)
        .map(|(_, _, run, i)| gpus_of(run, i))
        .sum()
}

/// When a worker was last heard from, and whether it is up: heard from (a heartbeat, a report)
/// within the lease time (after `since`), or waiting for work in a lease request. A worker not
/// heard from since this server started goes by its last time seen in the store.
pub fn seen(w: &WorkerRow, load: Option<&Load>, since: i64) -> (i64, bool) {
    match load.and_then(|l| l.seen) {
        Some((at, up)) => (at.max(w.last_seen_at), up),
        None => (w.last_seen_at, w.last_seen_at >= since),
    }
}

impl Scheduler {
    /// What each worker holds now.
    pub async fn worker_loads(&self) -> HashMap<String, Load> {
        loads(&*self.state.lock().await)
    }
}
