//! Starting, cancelling and restoring runs.

use super::{collect, now_ms, Active, Scheduler, State, Step};
use crate::store::{IdempotencyKey, RunRow, StoreError};
use sluice_engine::Run;
use sluice_sdk::api::{Params, RunState, TaskState};
use sluice_spec::{self as spec, Pipeline};
use std::sync::Arc;

/// A validated pipeline with checked parameter values, ready to run.
pub struct NewRun {
    pub name: Option<String>,
    pub pipeline: Pipeline,
    pub yaml: String,
    pub digest: String,
    pub pipeline_version_id: Option<String>,
    pub pipeline_version: Option<u32>,
    pub params: Params,
    /// The pipeline's input artifacts, as given (uploads, by content).
    pub inputs: Vec<sluice_engine::ArtifactRecord>,
    pub labels: sluice_sdk::api::Labels,
    /// Reuse cached results (the default).
    pub cache: bool,
    /// Results to reuse by step name (a rerun from failure reuses what succeeded before).
    pub reuse: std::collections::HashMap<String, sluice_engine::TaskResult>,
    /// The client's idempotency key and the digest of its request: a key seen before (within
    /// [`IDEMPOTENCY_WINDOW_MS`]) gives back the run it created.
    pub idempotency: Option<(String, String)>,
    /// The experiment it belongs to.
    pub experiment_id: String,
    /// The schedule firing that makes it, written with it.
    pub fired: Option<crate::store::Fired>,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// A run, made now or by an earlier request with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(String),
    Replayed(String),
}

impl Created {
    pub fn id(&self) -> &str {
        match self {
            Created::New(id) | Created::Replayed(id) => id,
        }
    }
}

impl Scheduler {
    /// Plans and stores a run; its first tasks become ready at once. Returns the run's id (the
    /// earlier run's, for an idempotency key seen before with the same request).
    pub async fn create_run(&self, new: NewRun) -> Result<Created, CreateError> {
        let now = now_ms();
        let id = uuid::Uuid::now_v7().to_string();
        let name = new
            .name
            .unwrap_or_else(|| format!("{}-{}", new.pipeline.name, &id[id.len() - 6..]));
        let pipeline_name = new.pipeline.name.clone();
        let t0 = std::time::Instant::now();
        let (run, fx) = Run::start(
            id.clone(),
            name.clone(),
            Arc::new(new.pipeline),
            new.params.clone(),
            new.inputs.clone(),
            self.cfg.limits,
            now,
        )
        .map_err(CreateError::Plan)?;
        let mut run = run;
        run.cache = new.cache;
        let row = RunRow {
            id: id.clone(),
            name,
            pipeline_name,
            pipeline_version_id: new.pipeline_version_id,
            pipeline_version: new.pipeline_version,
            digest: new.digest.clone(),
            params: new.params,
            state: run.state,
            error: None,
            end_reason: run.end_reason,
            created_at: now,
            finished_at: None,
            cache: new.cache,
            outputs: Default::default(),
            inputs: new.inputs,
            labels: new.labels,
            archived: false,
            metrics: Default::default(),
            steps: None,
            experiment_id: new.experiment_id,
            schedule_id: new.fired.as_ref().map(|f| f.schedule_id.clone()),
            scheduled_at: new.fired.as_ref().map(|f| f.at),
        };
        // Planned before the scheduler's lock is taken, so leases and reports wait only for the
        // write. The key is looked up under the lock, so two requests with one key cannot both
        // create a run.
        let mut st = self.state.lock().await;
        if let Some((key, request)) = &new.idempotency {
            if let Some(k) = self.store.idempotency_key(key).await? {
                if now - k.created_at < IDEMPOTENCY_WINDOW_MS {
                    if k.request != *request {
                        return Err(CreateError::KeyReused(key.clone()));
                    }
                    return Ok(Created::Replayed(k.run_id));
                }
            }
        }
        let mut step = Step::default();
        step.batch.sources.push((new.digest, new.yaml));
        if let Some((key, request)) = new.idempotency {
            step.batch.idempotency.push(IdempotencyKey {
                key,
                request,
                run_id: id.clone(),
                created_at: now,
            });
        }
        step.batch.new_runs.push(row.clone());
        step.batch.fired.extend(new.fired);
        let mut active = Active::new(run, row);
        active.reuse = new.reuse;
        st.runs.insert(id.clone(), active);
        collect(&mut st, &id, fx, now, &mut step);
        let planned = t0.elapsed();
        // A run that could not be written is gone from memory too (see `commit`).
        self.commit(&mut st, step).await?;
        self.metrics.run_created();
        tracing::info!(run = %id, plan_ms = planned.as_secs_f64() * 1e3, total_ms = t0.elapsed().as_secs_f64() * 1e3, "run created");
        Ok(Created::New(id))
    }

    /// Cancels a run. Returns false when the run is not active (unknown or already ended).
    pub async fn cancel_run(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut st = self.state.lock().await;
        let Some(active) = st.runs.get_mut(id) else {
            return Ok(false);
        };
        let fx = active.run.cancel(now);
        let mut step = Step::default();
        collect(&mut st, id, fx, now, &mut step);
        self.commit(&mut st, step).await?;
        tracing::info!(run = %id, "run cancelled");
        Ok(true)
    }

    /// Rebuilds the in-memory state of active runs from the store. Leases get a fresh expiry so
    /// that workers have time to reach the restarted server. A run whose stored state no longer
    /// reads back is failed with the reason, and the others are taken up as usual.
    pub(super) async fn restore(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let ids = self.store.active_run_ids().await?;
        let mut st = self.state.lock().await;
        for id in ids {
            let (run, row) = match self.restore_one(&id, now).await {
                Ok(r) => r,
                Err(RestoreError::Store(e)) => return Err(e),
                Err(RestoreError::Unreadable(why)) => {
                    tracing::error!(run = %id, error = %why, "run cannot be taken up again; it is failed");
                    let msg = format!("the run could not be taken up again after a restart: {why}");
                    self.store.fail_run(&id, &msg, now).await?;
                    continue;
                }
            };
            take_up(&mut st, run, row);
        }
        Ok(())
    }

    /// Drops what memory holds of runs `ids` and takes up again, from the database, those of
    /// them it holds as active (a run it does not hold was never written: it is gone).
    pub(super) async fn resync(&self, st: &mut State, ids: impl IntoIterator<Item = String>) {
        let now = now_ms();
        for id in ids {
            st.runs.remove(&id);
            st.ready.retain(|(r, _)| *r != id);
            st.leases.retain(|_, (r, _)| *r != id);
            match self.restore_one(&id, now).await {
                Ok((run, row)) if !row.state.is_terminal() => take_up(st, run, row),
                Ok(_) | Err(RestoreError::Unreadable(_)) => {}
                Err(RestoreError::Store(e)) => {
                    tracing::error!(run = %id, error = %e, "a run cannot be read back; it is taken up at the next start");
                }
            }
        }
    }

    async fn restore_one(&self, id: &str, now: i64) -> Result<(Run, RunRow), RestoreError> {
        let s = match self.store.get_run(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(RestoreError::Unreadable("it is gone".into())),
            Err(StoreError::Corrupt(why)) => return Err(RestoreError::Unreadable(why)),
            Err(e) => return Err(RestoreError::Store(e)),
        };
        let yaml = self
            .store
            .source(&s.row.digest)
            .await?
            .ok_or_else(|| RestoreError::Unreadable("its pipeline file is missing".into()))?;
        let pipeline = spec::load_with("pipeline.yaml", &yaml, &self.cfg.limits).map_err(|d| {
            RestoreError::Unreadable(format!("its pipeline file no longer loads: {d}"))
        })?;
        let names: Vec<String> = s.tasks.iter().map(|t| t.stat.name.clone()).collect();
        let mut tasks: Vec<_> = s.tasks.into_iter().map(|t| t.task).collect();
        for t in &mut tasks {
            if let Some(l) = &mut t.lease {
                l.expires_at = now + self.cfg.lease_ttl_ms;
            }
        }
        let run = Run::restore(sluice_engine::Restored {
            id: s.row.id.clone(),
            name: s.row.name.clone(),
            pipeline: Arc::new(pipeline),
            params: s.row.params.clone(),
            inputs: s.row.inputs.clone(),
            state: s.row.state,
            error: s.row.error.clone(),
            end_reason: s.row.end_reason,
            created_at: s.row.created_at,
            finished_at: s.row.finished_at,
            names,
            tasks,
            cache: s.row.cache,
            limits: self.cfg.limits,
        })
        .map_err(RestoreError::Unreadable)?;
        Ok((run, s.row))
    }
}

/// Puts a run read back from the store into the scheduler's memory: its leases, its ready tasks
/// (in the order they became ready), the run itself.
fn take_up(st: &mut State, run: Run, row: RunRow) {
    let mut ready: Vec<(i64, usize)> = Vec::new();
    for (i, t) in run.tasks.iter().enumerate() {
        if let Some(l) = &t.lease {
            st.leases.insert(l.id.clone(), (run.id.clone(), i));
        }
        if t.state == TaskState::Ready && run.state == RunState::Running {
            ready.push((t.ready_at.unwrap_or(0), i));
        }
    }
    ready.sort();
    for (_, i) in ready {
        st.ready.push_back((run.id.clone(), i));
    }
    tracing::info!(run = %run.id, "run taken up again");
    st.runs.insert(run.id.clone(), Active::new(run, row));
}

/// Why a run could not be taken up again.
enum RestoreError {
    /// The store failed: the server cannot start.
    Store(StoreError),
    /// This run's stored state does not read back: it alone is failed.
    Unreadable(String),
}

impl From<StoreError> for RestoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(why) => RestoreError::Unreadable(why),
            e => RestoreError::Store(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot plan the run: {0}")]
    Plan(String),
    #[error("idempotency key `{0}` was used for another request")]
    KeyReused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
