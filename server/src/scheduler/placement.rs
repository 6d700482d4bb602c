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

/// What every worker holds now, by worker id.
pub(super) fn loads(st: &State) -> HashMap<String, Load> {
    let mut out: HashMap<String, Load> = HashMap::new();
    for (lease_id, (run_id, i)) in &st.leases {
        let Some(active) = st.runs.get(run_id) else {
            continue;
        };
        let t = &active.run.tasks[*i];
        let Some(l) = t.lease.as_ref().filter(|l| l.id == *lease_id) else {
            continue;
        };
        let load = out.entry(l.worker.to_string()).or_default();
        load.tasks.push((
            run_id.clone(),
            active.run.name.clone(),
            active.run.plan.tasks[*i].name.to_string(),
            t.attempt,
        ));
        load.gpus += t.spec.as_ref().map_or(0, |s| s.resources.gpu);
    }
    let now = sluice_sdk::api::now_ms();
    for (id, k) in &st.workers {
        if k.up_until > 0 {
            out.entry(id.clone()).or_default().seen = Some((k.seen, now <= k.up_until));
        }
    }
    out
}

/// The GPUs `worker`'s leases asked for.
pub(super) fn gpus_used(st: &State, worker: &str) -> u32 {
    let mut n = 0;
    for (lease_id, (run_id, i)) in &st.leases {
        let Some(t) = st.runs.get(run_id).map(|a| &a.run.tasks[*i]) else {
            continue;
        };
        if t.lease
            .as_ref()
            .is_some_and(|l| l.id == *lease_id && l.worker.as_str() == worker)
        {
            n += t.spec.as_ref().map_or(0, |s| s.resources.gpu);
        }
    }
    n
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
