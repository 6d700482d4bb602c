//! What the metrics' gauges show when scraped: runs by state (from the store), the tasks of
//! active runs by state, the ready queue, leases and workers (from the scheduler's memory).

use super::{placement, Scheduler};
use crate::metrics::Now;
use crate::store::StoreError;
use sluice_spec::state::{RunState, TaskState};

impl Scheduler {
    pub async fn gauges(&self) -> Result<Now, StoreError> {
        let by_state = self.store.count_runs_by_state().await?;
        let runs = RunState::ALL
            .iter()
            .map(|s| {
                let n = by_state.iter().find(|(t, _)| t == s).map_or(0, |(_, n)| *n);
                (s.as_str(), n)
            })
            .collect();
        let workers = self.store.list_workers().await?;
        let since = sluice_sdk::api::now_ms() - self.cfg.lease_ttl_ms;
        let st = self.state.lock().await;
        let mut tasks = [0u64; TaskState::ALL.len()];
        for a in st.runs.values() {
            for t in &a.run.tasks {
                if let Some(k) = TaskState::ALL.iter().position(|s| *s == t.state) {
                    tasks[k] += 1;
                }
            }
        }
        let loads = placement::loads(&st);
        let up = workers
            .iter()
            .filter(|w| placement::seen(w, loads.get(&w.id), since).1)
            .count() as u64;
        Ok(Now {
            runs,
            tasks: TaskState::ALL
                .iter()
                .zip(tasks)
                .map(|(s, n)| (s.as_str(), n))
                .collect(),
            ready: tasks[TaskState::ALL
                .iter()
                .position(|s| *s == TaskState::Ready)
                .unwrap_or(0)],
            leases: st.leases.len() as u64,
            workers_up: up,
            workers_gone: workers.len() as u64 - up,
        })
    }
}
