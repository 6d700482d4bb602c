//! What workers do: register, lease ready tasks (long poll), heartbeat, and report.

use super::{collect, now_ms, Announcement, Known, Scheduler, State, Step};
use crate::store::{LogRow, NewWorker, StoreError};
use sluice_sdk::api::{
    format_ts, CachedResult, Lease, LogLine, RegisterWorker, ReportEvent, RunEvent,
    WorkerRegistration,
};
use sluice_spec::ids::{LeaseId, WorkerId};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("unknown worker `{0}`: register again")]
    UnknownWorker(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Scheduler {
    /// Registers a worker with its own new credential (returned once; its hash is kept).
    pub async fn register_worker(
        &self,
        req: &RegisterWorker,
    ) -> Result<(WorkerRegistration, String), StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let credential = crate::api::auth::new_secret("slw_");
        let credential_hash = crate::api::auth::hash(&credential);
        let new = NewWorker {
            id: &id,
            name: &req.name,
            capacity: req.capacity,
            credential_hash: &credential_hash,
            artifact_root: req.artifact_root.as_deref(),
            labels: &req.labels,
            gpus: req.gpus,
        };
        self.store.register_worker(&new, now_ms()).await?;
        self.state.lock().await.workers.insert(
            id.clone(),
            Known {
                artifact_root: req.artifact_root.clone(),
                labels: req.labels.clone(),
                gpus: req.gpus,
                seen: now_ms(),
                up_until: now_ms() + self.cfg.lease_ttl_ms,
            },
        );
        tracing::info!(worker = %id, name = %req.name, capacity = req.capacity, gpus = req.gpus, labels = ?req.labels, "worker registered");
        Ok((
            WorkerRegistration {
                id: id.into(),
                credential,
                lease_ttl_ms: self.cfg.lease_ttl_ms as u64,
                heartbeat_interval_ms: self.cfg.heartbeat_interval_ms,
                artifact_store: self
                    .cfg
                    .artifact_store
                    .as_ref()
                    .map(|o| o.url().to_string()),
            },
            credential_hash,
        ))
    }

    /// Knows the worker (looking it up in the store after a restart), and that it is up until
    /// `up_until` at least.
    async fn check_worker(
        &self,
        st: &mut State,
        id: &str,
        up_until: i64,
    ) -> Result<(), WorkerError> {
        if !st.workers.contains_key(id) {
            match self.store.get_worker(id).await? {
                Some(w) => {
                    st.workers.insert(w.id.clone(), Known::from(w));
                }
                None => return Err(WorkerError::UnknownWorker(id.to_string())),
            }
        }
        if let Some(k) = st.workers.get_mut(id) {
            k.seen = now_ms();
            k.up_until = k.up_until.max(up_until);
        }
        Ok(())
    }

    /// Leases up to `max` ready tasks, waiting up to `wait` for one when none is ready.
    pub async fn lease(
        &self,
        worker: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Lease>, WorkerError> {
        let deadline = tokio::time::Instant::now() + wait;
        // Up while it waits here, and a lease time after.
        let up_until = now_ms() + wait.as_millis() as i64 + self.cfg.lease_ttl_ms;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock().await;
                self.check_worker(&mut st, worker, up_until).await?;
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
        // Tasks for another worker (one that reaches a daemon there, one whose `nodeSelector`
        // this worker does not match, one asking for more GPUs than it has free), put back in
        // their order.
        let mut elsewhere = Vec::new();
        let mut gpus_used = super::placement::gpus_used(st, worker);
        while out.len() < max as usize {
            let Some((run_id, i)) = st.ready.pop_front() else {
                break;
            };
            let Some(active) = st.runs.get_mut(&run_id) else {
                continue;
            };
            let fits = st
                .workers
                .get(worker)
                .is_some_and(|k| k.fits(active.run.tasks[i].spec.as_ref(), gpus_used));
            if !fits || active.run.bound_to(i).is_some_and(|w| w.as_str() != worker) {
                elsewhere.push((run_id, i));
                continue;
            }
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
            // The secrets it uses, at their current versions (the cache key names the version).
            let secret_values = self.secrets_of(&mut active.run.tasks[i]).await?;
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
            if let Some(c) = &cached {
                let arts = c.artifacts.iter().map(|a| (a.name.clone(), a.uri.clone()));
                st.offered
                    .insert(lease_id.clone(), (c.run_id.to_string(), arts.collect()));
            }
            let t = &active.run.tasks[i];
            gpus_used += t.spec.as_ref().map_or(0, |s| s.resources.gpu);
            out.push(Lease {
                cached,
                lease_id: lease_id.clone(),
                run_id: run_id.as_str().into(),
                run_name: active.run.name.clone(),
                task: active.run.plan.tasks[i].name.as_str().into(),
                attempt: t.attempt,
                spec: crate::wire::task_spec(t.spec.clone().unwrap_or_default()),
                secret_values,
            });
            st.leases.insert(lease_id, (run_id.clone(), i));
            collect(st, &run_id, fx, now, &mut step);
        }
        for t in elsewhere.into_iter().rev() {
            st.ready.push_front(t);
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
        self.check_worker(&mut st, worker, now + self.cfg.lease_ttl_ms)
            .await?;
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
            if !holds(&active.run, i, l, worker) {
                lost.push(l.clone());
                continue;
            }
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
        self.check_worker(&mut st, worker, now + self.cfg.lease_ttl_ms)
            .await?;
        let root = st.workers.get(worker).and_then(|w| w.artifact_root.clone());
        let mut step = Step::default();
        let mut lost = BTreeSet::new();
        for ev in events {
            let lease_id = ev.lease_id().clone();
            let Some((run_id, i)) = st.leases.get(&lease_id).cloned() else {
                lost.insert(lease_id);
                continue;
            };
            let held = st
                .runs
                .get(&run_id)
                .map(|a| holds(&a.run, i, &lease_id, worker));
            if held != Some(true) {
                lost.insert(lease_id);
                continue;
            }
            let offered = match ev {
                ReportEvent::Finished { .. } => st.offered.remove(&lease_id),
                _ => None,
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
                    let t = &active.run.tasks[i];
                    if let (Ok(_), Some(ready), Some(started)) = (&r, t.ready_at, t.started_at) {
                        self.metrics.step_started(started - ready);
                    }
                    if let Some((d, image)) = seen {
                        st.digests.insert(image, (d, now));
                    }
                    r
                }
                ReportEvent::Serving { ts_ms, address, .. } => {
                    // The worker's word, checked: an address, nothing else, goes into the
                    // commands of the steps after it.
                    match address.parse::<std::net::Ipv4Addr>() {
                        Ok(a) => {
                            active
                                .run
                                .serving_at(i, &lease_id, a.to_string(), ts_ms.min(now), ttl)
                        }
                        Err(_) => {
                            tracing::warn!(worker, run = %run_id, task = %active.run.plan.tasks[i].name, "refused a daemon's address that is not an IPv4 address");
                            Ok(Vec::new())
                        }
                    }
                }
                ReportEvent::Finished { ts_ms, result, .. } => {
                    let outcome = result.outcome;
                    // Bytes a step made (none for a result reused from the cache).
                    let bytes = match result.cached_from {
                        Some(_) => 0,
                        None => result.artifacts.iter().map(|a| a.size).sum(),
                    };
                    let mut result = crate::wire::task_result(result);
                    let (task, attempt) =
                        (&active.run.plan.tasks[i].name, active.run.tasks[i].attempt);
                    let area = match &self.cfg.artifact_store {
                        Some(o) => Area::Objects(o.uri_of(&[&run_id, task, &attempt.to_string()])),
                        None => Area::Files(output_area(root.as_deref(), &run_id, task, attempt)),
                    };
                    if let Err(why) = check_artifacts(&result, &area, offered) {
                        tracing::warn!(worker, run = %run_id, task = %active.run.plan.tasks[i].name, %why, "refused a worker's artifacts");
                        result = crate::wire::task_result(sluice_sdk::api::TaskResult::failed(
                            format!("the worker's report was refused: {why}"),
                        ));
                    }
                    let started = active.run.tasks[i].started_at;
                    let r = active.run.finished(i, &lease_id, result, ts_ms.min(now));
                    if r.is_ok() {
                        let ran = started.map(|s| ts_ms.min(now) - s);
                        self.metrics.attempt_ended(outcome.as_str(), ran, bytes);
                        st.leases.remove(&lease_id);
                        // The lease's GPUs are free again: a worker waiting for some may now
                        // fit a task that is ready.
                        step.readied |= !st.ready.is_empty();
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

/// Whether `worker` holds lease `lease` of task `i` (a worker acts only on its own leases: one
/// naming another's is refused, and said so in the log).
fn holds(run: &sluice_engine::Run, i: usize, lease: &LeaseId, worker: &str) -> bool {
    match run.tasks[i].lease.as_ref() {
        Some(l) if l.id == *lease && l.worker.as_str() != worker => {
            tracing::warn!(worker, holder = %l.worker, lease = %lease, "refused a worker's call for a lease another worker holds");
            false
        }
        _ => true,
    }
}

/// Where a task attempt's outputs are written on its worker: `ROOT/RUN/TASK/ATTEMPT`.
fn output_area(root: Option<&str>, run: &str, task: &str, attempt: u32) -> Option<PathBuf> {
    Some(
        Path::new(root?)
            .join(run)
            .join(task)
            .join(attempt.to_string()),
    )
}

/// Where a task's artifacts must be: beneath its area on its worker's disk (the worker's root
/// may be unknown), or at its place in the object store.
enum Area {
    Files(Option<PathBuf>),
    Objects(String),
}

/// A task's reported artifacts must each be `AREA/NAME` for one of its declared outputs: a worker
/// cannot make the server serve, or the cache hand on, a file or object of its choosing.
fn check_artifacts(
    result: &sluice_engine::task::TaskResult,
    area: &Area,
    offered: Option<(String, Vec<(String, String)>)>,
) -> Result<(), String> {
    if let Some(from) = &result.cached_from {
        // A reused result is the one the server offered, artifacts and all.
        let reported: BTreeSet<(String, String)> = result
            .artifacts
            .iter()
            .map(|a| (a.name.clone(), a.uri.clone()))
            .collect();
        return match offered {
            Some((run, arts)) if run == from.as_str() => {
                if reported == arts.into_iter().collect() {
                    Ok(())
                } else {
                    Err(format!(
                        "the artifacts of the result it reused from run {from} are not the ones \
                         that run kept"
                    ))
                }
            }
            _ => Err(format!(
                "it says it reused run {from}'s result, which it was not offered"
            )),
        };
    }
    for a in &result.artifacts {
        let plain = sluice_spec::is_name(&a.name);
        let area = match area {
            Area::Objects(prefix) => {
                if !plain || a.uri.strip_prefix(prefix.as_str()) != Some(&format!("/{}", a.name)) {
                    return Err(format!(
                        "artifact `{}` is at {}, not at the task's own place in the artifact store ({prefix}/{})",
                        a.name.escape_debug(),
                        a.uri,
                        a.name.escape_debug()
                    ));
                }
                continue;
            }
            Area::Files(area) => area.as_deref(),
        };
        let uri = sluice_spec::uri::ArtifactUri::parse(&a.uri).map_err(|e| e.to_string())?;
        let Some(path) = uri.as_file() else {
            return Err(format!(
                "artifact `{}` is at {}, which this server's store cannot hold",
                a.name, a.uri
            ));
        };
        let want = area.map(|d| d.join(&a.name));
        if !plain || want.as_deref() != Some(path) {
            return Err(format!(
                "artifact `{}` is at {}, outside the task's own output area{}",
                a.name.escape_debug(),
                a.uri,
                match area {
                    Some(d) => format!(" ({})", d.display()),
                    None => " (the worker named none when it registered)".into(),
                }
            ));
        }
    }
    Ok(())
}

impl Scheduler {
    /// The values of the secrets task `t` uses, its spec given their versions. A secret that is
    /// gone or does not open is left out: the worker fails the attempt, naming it.
    async fn secrets_of(
        &self,
        t: &mut sluice_engine::Task,
    ) -> Result<sluice_sdk::api::SecretValues, StoreError> {
        let mut values = std::collections::BTreeMap::new();
        let Some(spec) = t.spec.as_mut() else {
            return Ok(Default::default());
        };
        for s in &mut spec.secrets {
            let Some(row) = self.store.get_secret(&s.name).await? else {
                s.version = None;
                continue;
            };
            s.version = Some(row.version);
            match self.secrets.open(&row) {
                Ok(v) => {
                    values.insert(s.name.clone(), v);
                }
                Err(e) => tracing::error!(error = %e, "a secret does not open"),
            }
        }
        Ok(sluice_sdk::api::SecretValues(values))
    }
}
