//! What workers do: register, lease ready tasks (long poll), heartbeat, and report.

use super::{collect, now_ms, Announcement, Scheduler, State, Step};
use crate::store::{LogRow, StoreError};
use sluice_sdk::api::{
    format_ts, CachedResult, Lease, LogLine, ReportEvent, RunEvent, WorkerRegistration,
};
use sluice_spec::ids::{LeaseId, WorkerId};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("unknown worker `{0}`: register again")]
    UnknownWorker(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Scheduler {
    pub async fn register_worker(
        &self,
        name: &str,
        capacity: u32,
    ) -> Result<WorkerRegistration, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        self.store
            .register_worker(&id, name, capacity, now_ms())
            .await?;
        self.state
            .lock()
            .await
            .workers
            .insert(id.clone(), name.to_string());
        tracing::info!(worker = %id, name, capacity, "worker registered");
        Ok(WorkerRegistration {
            id: id.into(),
            lease_ttl_ms: self.cfg.lease_ttl_ms as u64,
            heartbeat_interval_ms: self.cfg.heartbeat_interval_ms,
        })
    }

    /// Knows the worker, looking it up in the store after a restart.
    async fn check_worker(&self, st: &mut State, id: &str) -> Result<(), WorkerError> {
        if st.workers.contains_key(id) {
            return Ok(());
        }
        match self.store.get_worker(id).await? {
            Some(w) => {
                st.workers.insert(w.id, w.name);
                Ok(())
            }
            None => Err(WorkerError::UnknownWorker(id.to_string())),
        }
    }

    /// Leases up to `max` ready tasks, waiting up to `wait` for one when none is ready.
    pub async fn lease(
        &self,
        worker: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Lease>, WorkerError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock().await;
                self.check_worker(&mut st, worker).await?;
                let leases = self.take(&mut st, worker, max).await?;
                if !leases.is_empty() {
                    return Ok(leases);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn take(&self, st: &mut State, worker: &str, max: u32) -> Result<Vec<Lease>, StoreError> {
        let now = now_ms();
        let mut step = Step::default();
        let mut out = Vec::new();
        while out.len() < max as usize {
            let Some((run_id, i)) = st.ready.pop_front() else {
                break;
            };
            let Some(active) = st.runs.get_mut(&run_id) else {
                continue;
            };
            let lease_id = LeaseId::new(uuid::Uuid::new_v4().simple().to_string());
            let (ok, fx) = active.run.lease(
                i,
                lease_id.clone(),
                WorkerId::from(worker),
                now,
                self.cfg.lease_ttl_ms,
            );
            if !ok {
                continue;
            }
            // A result cached for the same inputs, for the worker to check against its image.
            let cached = match active.run.cache_key(i).filter(|_| active.run.cache) {
                Some((key, max_age)) => {
                    let since = max_age.map(|s| now - s as i64 * 1000).unwrap_or(0);
                    self.store
                        .cached(&key, None, since)
                        .await?
                        .map(|c| CachedResult {
                            run_id: c.run_id.into(),
                            task: c.task.into(),
                            image_digest: c.image_digest,
                            outputs: c.outputs,
                            artifacts: crate::wire::artifacts(&c.artifacts),
                        })
                }
                None => None,
            };
            let t = &active.run.tasks[i];
            out.push(Lease {
                cached,
                lease_id: lease_id.clone(),
                run_id: run_id.as_str().into(),
                run_name: active.run.name.clone(),
                task: active.run.plan.tasks[i].name.as_str().into(),
                attempt: t.attempt,
                spec: crate::wire::task_spec(t.spec.clone().unwrap_or_default()),
            });
            st.leases.insert(lease_id, (run_id.clone(), i));
            collect(st, &run_id, fx, now, &mut step);
        }
        if !out.is_empty() {
            self.commit(st, step).await?;
        }
        Ok(out)
    }

    /// Extends the worker's leases. Returns the leases it no longer holds and those to cancel.
    pub async fn heartbeat(
        &self,
        worker: &str,
        leases: &[LeaseId],
    ) -> Result<(Vec<LeaseId>, Vec<LeaseId>), WorkerError> {
        let now = now_ms();
        let mut st = self.state.lock().await;
        self.check_worker(&mut st, worker).await?;
        let (mut lost, mut cancel) = (Vec::new(), Vec::new());
        for l in leases {
            let Some((run_id, i)) = st.leases.get(l).cloned() else {
                lost.push(l.clone());
                continue;
            };
            let Some(active) = st.runs.get_mut(&run_id) else {
                lost.push(l.clone());
                continue;
            };
            match active.run.heartbeat(i, l, now, self.cfg.lease_ttl_ms) {
                Ok(()) if active.run.cancel_requested(i) => cancel.push(l.clone()),
                Ok(()) => {}
                Err(_) => lost.push(l.clone()),
            }
        }
        let mut step = Step::default();
        step.batch.workers_seen.push((worker.to_string(), now));
        self.commit(&mut st, step).await?;
        Ok((lost, cancel))
    }

    /// Applies a worker's batch of events in order, in one transaction. Returns the leases whose
    /// events were refused because the worker no longer holds them.
    pub async fn report(
        &self,
        worker: &str,
        events: Vec<ReportEvent>,
    ) -> Result<Vec<LeaseId>, WorkerError> {
        let now = now_ms();
        let ttl = self.cfg.lease_ttl_ms;
        let mut st = self.state.lock().await;
        self.check_worker(&mut st, worker).await?;
        let mut step = Step::default();
        let mut lost = BTreeSet::new();
        for ev in events {
            let lease_id = ev.lease_id().clone();
            let Some((run_id, i)) = st.leases.get(&lease_id).cloned() else {
                lost.insert(lease_id);
                continue;
            };
            let Some(active) = st.runs.get_mut(&run_id) else {
                lost.insert(lease_id);
                continue;
            };
            let fx = match ev {
                ReportEvent::Started {
                    ts_ms,
                    image_digest,
                    ..
                } => {
                    // What the image's tag points at now, as this worker found it.
                    let seen = image_digest
                        .clone()
                        .zip(active.run.tasks[i].spec.as_ref().map(|s| s.image.clone()));
                    let r = active
                        .run
                        .started(i, &lease_id, ts_ms.min(now), ttl, image_digest);
                    if let Some((d, image)) = seen {
                        st.digests.insert(image, (d, now));
                    }
                    r
                }
                ReportEvent::Finished { ts_ms, result, .. } => {
                    let result = crate::wire::task_result(result);
                    let r = active.run.finished(i, &lease_id, result, ts_ms.min(now));
                    if r.is_ok() {
                        st.leases.remove(&lease_id);
                    }
                    r
                }
                ReportEvent::Log { lines, .. } => {
                    if active.run.heartbeat(i, &lease_id, now, ttl).is_err() {
                        lost.insert(lease_id);
                        continue;
                    }
                    let attempt = active.run.tasks[i].attempt;
                    let task = &active.run.plan.tasks[i].name;
                    for l in lines {
                        step.announce.push(Announcement {
                            run_id: run_id.clone(),
                            event: RunEvent::Log(LogLine {
                                task: task.clone(),
                                attempt,
                                seq: l.seq,
                                ts: format_ts(l.ts_ms),
                                stream: l.stream,
                                line: l.line.clone(),
                            }),
                        });
                        step.batch.logs.push(LogRow {
                            run_id: run_id.clone(),
                            task_idx: i,
                            attempt,
                            seq: l.seq,
                            ts: l.ts_ms,
                            stream: l.stream,
                            line: l.line,
                        });
                    }
                    Ok(Vec::new())
                }
            };
            match fx {
                Ok(fx) => collect(&mut st, &run_id, fx, now, &mut step),
                Err(_) => {
                    lost.insert(lease_id);
                }
            }
        }
        step.batch.workers_seen.push((worker.to_string(), now));
        self.commit(&mut st, step).await?;
        Ok(lost.into_iter().collect())
    }
}

impl Scheduler {
    /// How many leases each worker holds now.
    pub async fn active_leases_by_worker(&self) -> std::collections::HashMap<String, u32> {
        let st = self.state.lock().await;
        let mut out = std::collections::HashMap::new();
        for (run_id, i) in st.leases.values() {
            if let Some(l) = st
                .runs
                .get(run_id)
                .and_then(|a| a.run.tasks[*i].lease.as_ref())
            {
                *out.entry(l.worker.to_string()).or_insert(0) += 1;
            }
        }
        out
    }
}
