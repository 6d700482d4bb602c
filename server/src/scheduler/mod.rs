//! The scheduler: holds the engine state of every active run in memory, applies events from the
//! API and workers to it, persists exactly what changed (one transaction per step), and announces
//! the changes to whoever watches. The database stays the truth: a restarted server rebuilds this
//! state from it.

mod gauges;
mod placement;
mod runs;
pub mod schedules;
pub mod timetable;
mod workers;

pub use placement::{seen, Load};

use crate::secrets::SecretBox;
use crate::store::{
    CacheEntry, DynStore, RunOutputs, RunRow, StoreError, TaskRow, TaskStatic, WriteBatch,
};
use sluice_engine::{Effect, Run};
use sluice_sdk::api::{format_ts, RunEvent};
use sluice_sdk::artifacts::{Artifacts, LocalDir, ObjectArtifacts};
use sluice_spec::ids::LeaseId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Mutex, Notify};

pub use runs::{CreateError, Created, NewRun, IDEMPOTENCY_WINDOW_MS};
pub use workers::WorkerError;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// A lease not extended within this time has lapsed: its worker stops the task.
    pub lease_ttl_ms: i64,
    /// How long after a lease lapsed its task may run elsewhere: the time its worker has to
    /// have stopped it (a task never runs twice at once).
    pub kill_grace_ms: i64,
    pub heartbeat_interval_ms: u64,
    /// How often expired leases, due retries and runs past their timeout are looked for.
    pub reap_interval: Duration,
    /// How long the digest a worker found for an image tag is trusted for cache hits decided
    /// here (past it, a worker checks the tag before a cached result is reused).
    pub tag_ttl_ms: i64,
    /// What a pipeline may cost to load and plan.
    pub limits: sluice_spec::Limits,
    /// The object store artifacts are kept in (`--artifacts s3://…`): workers are told of it,
    /// upload there, and a task's artifacts are accepted only at its own place in it.
    pub artifact_store: Option<Arc<ObjectArtifacts>>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease_ttl_ms: 30_000,
            kill_grace_ms: 10_000,
            heartbeat_interval_ms: 1_000,
            reap_interval: Duration::from_millis(100),
            tag_ttl_ms: 30_000,
            limits: Default::default(),
            artifact_store: None,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub use sluice_sdk::api::now_ms;

/// A change announced to watchers of a run.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub run_id: String,
    pub event: RunEvent,
}

/// A run being scheduled, with what its row needs besides the engine's state.
struct Active {
    /// Results to reuse by step name, instead of running the step (a rerun from failure).
    reuse: HashMap<String, sluice_engine::TaskResult>,
    run: Run,
    row: RunRow,
    run_id: Arc<str>,
    statics: Vec<Arc<TaskStatic>>,
}

impl Active {
    fn new(run: Run, row: RunRow) -> Active {
        let mut a = Active {
            reuse: HashMap::new(),
            run_id: Arc::from(run.id.as_str()),
            run,
            row,
            statics: Vec::new(),
        };
        a.grow_statics();
        a
    }

    /// What never changes about each task (name, image, what it is shown waiting for), for the
    /// tasks the plan has now: a loop over an upstream output adds tasks as it starts, and the
    /// loop itself then waits for them.
    fn grow_statics(&mut self) {
        for i in 0..self.statics.len() {
            let t = &self.run.plan.tasks[i];
            if t.iterations.is_some() && t.deps.len() != self.statics[i].depends_on.len() {
                self.statics[i] = task_static(&self.run, i);
            }
        }
        for i in self.statics.len()..self.run.plan.tasks.len() {
            self.statics.push(task_static(&self.run, i));
        }
    }

    fn task_row(&mut self, i: usize) -> TaskRow {
        if i >= self.statics.len() {
            self.grow_statics();
        }
        TaskRow {
            run_id: self.run_id.clone(),
            idx: i,
            stat: self.statics[i].clone(),
            task: self.run.tasks[i].clone(),
        }
    }

    fn run_row(&mut self) -> RunRow {
        self.row.state = self.run.state;
        self.row.error = self.run.error.clone();
        self.row.end_reason = self.run.end_reason;
        self.row.finished_at = self.run.finished_at;
        if self.run.state.is_terminal() && self.row.outputs.is_empty() {
            let o = self.run.pipeline_outputs();
            self.row.outputs = RunOutputs {
                params: o.params,
                artifacts: o.artifacts,
            };
        }
        if self.run.state.is_terminal() && self.row.metrics.is_empty() {
            self.row.metrics = self.run.metrics();
        }
        self.row.clone()
    }
}

#[derive(Default)]
struct State {
    runs: HashMap<String, Active>,
    /// Ready tasks in the order they became ready.
    ready: VecDeque<(String, usize)>,
    /// Lease id to the task it holds.
    leases: HashMap<LeaseId, (String, usize)>,
    /// Known workers, by id.
    workers: HashMap<String, Known>,
    /// The kept result each lease was offered (its run and its artifacts' names and URIs): a
    /// worker that reports it reused one must report that one.
    offered: HashMap<LeaseId, (String, Vec<(String, String)>)>,
    /// The digest each image reference was last seen to run as, and when (from workers' starts).
    digests: HashMap<String, (String, i64)>,
}

/// A worker the scheduler knows.
struct Known {
    /// Where its tasks' outputs are written, on its host.
    artifact_root: Option<String>,
    /// What it offers to steps' `nodeSelector`.
    labels: sluice_sdk::api::Labels,
    gpus: u32,
    /// When it was last heard from (a lease request, a heartbeat, a report), in memory only.
    seen: i64,
    /// Until when it counts as up: a lease time after it was last heard from, or after the end of
    /// the lease request it waits in.
    up_until: i64,
}

impl From<crate::store::WorkerRow> for Known {
    fn from(w: crate::store::WorkerRow) -> Known {
        Known {
            artifact_root: w.artifact_root,
            labels: w.labels,
            gpus: w.gpus,
            seen: w.last_seen_at,
            up_until: 0,
        }
    }
}

/// What one step changed, to persist and then announce.
#[derive(Default)]
struct Step {
    batch: WriteBatch,
    announce: Vec<Announcement>,
    readied: bool,
    /// Tasks that became ready in this step (for the cache to look at).
    ready_tasks: Vec<(String, usize)>,
}

pub struct Scheduler {
    store: DynStore,
    /// Where the artifacts of kept results are looked for before one is reused here: this host's
    /// files (workers on this host keep theirs under their own data directories), and the object
    /// store when there is one.
    artifacts: Arc<Artifacts>,
    cfg: SchedulerConfig,
    state: Mutex<State>,
    ready: Notify,
    events: broadcast::Sender<Arc<Announcement>>,
    /// Opens stored secrets, for the leases of tasks that use them.
    secrets: Arc<SecretBox>,
    metrics: crate::metrics::Metrics,
}

impl Scheduler {
    /// Takes up every run the store holds as active, as a restarted server must.
    pub async fn new(
        store: DynStore,
        cfg: SchedulerConfig,
        secrets: Arc<SecretBox>,
    ) -> Result<Arc<Scheduler>, StoreError> {
        let (events, _) = broadcast::channel(8192);
        let s = Arc::new(Scheduler {
            secrets,
            artifacts: Arc::new(Artifacts {
                local: LocalDir::new("/"),
                object: cfg.artifact_store.clone(),
            }),
            store,
            cfg,
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            events,
            metrics: Default::default(),
        });
        s.restore().await?;
        Ok(s)
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Announcement>> {
        self.events.subscribe()
    }

    /// Takes back expired leases, starts due retries and ends runs past their timeout, forever;
    /// once a minute, forgets idempotency keys past their window. Spawn it once.
    pub async fn reap_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.reap_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut forgot_keys_at = 0;
        loop {
            tick.tick().await;
            let now = now_ms();
            if let Err(e) = self.reap(now).await {
                tracing::error!(error = %e, "taking back expired leases or starting retries failed");
            }
            if now - forgot_keys_at >= 60_000 {
                forgot_keys_at = now;
                let before = now - IDEMPOTENCY_WINDOW_MS;
                if let Err(e) = self.store.forget_idempotency_keys(before).await {
                    tracing::warn!(error = %e, "forgetting old idempotency keys failed");
                }
            }
        }
    }

    pub async fn reap(&self, now: i64) -> Result<(), StoreError> {
        let mut st = self.state.lock().await;
        let mut step = Step::default();
        let ids: Vec<String> = st.runs.keys().cloned().collect();
        for id in ids {
            let Some(active) = st.runs.get_mut(&id) else {
                continue;
            };
            let expired = active.run.expired_leases(now, self.cfg.kill_grace_ms);
            let retries = active.run.due_retries(now);
            let deadline = active.run.deadline_passed(now);
            if expired.is_empty() && retries.is_empty() && !deadline {
                continue;
            }
            let mut fx = Vec::new();
            if deadline {
                tracing::warn!(run = %id, "run timed out; stopping it");
                fx.extend(active.run.time_out(now));
            }
            for i in retries {
                tracing::info!(run = %id, task = %active.run.plan.tasks[i].name, attempt = active.run.tasks[i].attempt + 1, "retrying");
                fx.extend(active.run.retry_due(i, now));
            }
            let mut lost = Vec::new();
            for i in expired {
                if let Some(l) = &active.run.tasks[i].lease {
                    tracing::warn!(run = %id, task = %active.run.plan.tasks[i].name, worker = %l.worker, "lease expired; the task will run again");
                    lost.push(l.id.clone());
                    self.metrics.lease_expired();
                }
                fx.extend(active.run.lease_expired(i, now));
            }
            for l in lost {
                st.leases.remove(&l);
                st.offered.remove(&l);
            }
            collect(&mut st, &id, fx, now, &mut step);
        }
        self.commit(&mut st, step).await
    }

    /// Persists a step, then announces it and wakes lease waiters. Ended runs leave memory. A
    /// step that cannot be persisted (a full disk, say) is undone: the runs it touched are taken
    /// up again from the database, which stays the truth, and whoever asked gets the error (a
    /// worker sends its event again; the reaper tries its own again on its next round).
    async fn commit(&self, st: &mut State, mut step: Step) -> Result<(), StoreError> {
        let persisted = match self.serve_from_cache(st, &mut step).await {
            Ok(()) => self.store.apply(&step.batch).await,
            Err(e) => Err(e),
        };
        if let Err(e) = persisted {
            let touched: std::collections::BTreeSet<String> = step
                .batch
                .new_runs
                .iter()
                .chain(&step.batch.runs)
                .map(|r| r.id.clone())
                .chain(step.batch.tasks.iter().map(|t| t.run_id.to_string()))
                .chain(step.batch.logs.iter().map(|l| l.run_id.clone()))
                .collect();
            tracing::warn!(error = %e, runs = touched.len(), "a change could not be written; its runs are taken up again from the database");
            self.resync(st, touched).await;
            return Err(e);
        }
        for a in step.announce {
            let _ = self.events.send(Arc::new(a));
        }
        if step.readied {
            self.ready.notify_waiters();
        }
        let ended: Vec<String> = st
            .runs
            .iter()
            .filter(|(_, a)| a.run.state.is_terminal())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            st.runs.remove(&id);
            st.leases.retain(|_, (run, _)| *run != id);
        }
        let State {
            offered, leases, ..
        } = st;
        offered.retain(|l, _| leases.contains_key(l));
        Ok(())
    }
}

impl Scheduler {
    /// Tasks that just became ready and whose result is cached for the image digest their tag
    /// was last seen to run as (within the tag TTL), with their artifacts still on this host,
    /// succeed at once from the cache, without a worker; what they unblock is looked at in turn.
    async fn serve_from_cache(&self, st: &mut State, step: &mut Step) -> Result<(), StoreError> {
        let now = now_ms();
        let mut queue = std::mem::take(&mut step.ready_tasks);
        while let Some((run_id, i)) = queue.pop() {
            let Some(active) = st.runs.get(&run_id) else {
                continue;
            };
            let run = &active.run;
            if run.tasks[i].state != sluice_sdk::api::TaskState::Ready {
                continue;
            }
            let name = run.plan.tasks[i].name.clone();
            // A rerun runs a daemon, and what reaches it, again: a stored result serves nobody.
            if active.reuse.contains_key(&name) && !run.serves_or_reaches_a_daemon(i) {
                let active = st.runs.get_mut(&run_id).expect("looked up above");
                let result = active.reuse.remove(&name).expect("checked above");
                let fx = active.run.finish_from_cache(i, result, now);
                st.ready.retain(|(r, j)| !(*r == run_id && *j == i));
                let before = step.ready_tasks.len();
                collect(st, &run_id, fx, now, step);
                queue.extend(step.ready_tasks.drain(before..));
                continue;
            }
            if !run.cache {
                continue;
            }
            let Some((key, max_age)) = run.cache_key(i) else {
                continue;
            };
            let Some(image) = run.tasks[i].spec.as_ref().map(|s| s.image.clone()) else {
                continue;
            };
            let digest = match st.digests.get(&image) {
                Some((d, seen)) if now - seen <= self.cfg.tag_ttl_ms => d.clone(),
                _ => continue,
            };
            let since = max_age.map(|s| now - s as i64 * 1000).unwrap_or(0);
            let Some(entry) = self.store.cached(&key, Some(&digest), since).await? else {
                continue;
            };
            let uris = entry.artifacts.iter().map(|a| a.uri.clone()).collect();
            if !self.artifacts.contains_all(uris).await {
                continue;
            }
            let result = sluice_engine::TaskResult {
                outcome: sluice_spec::state::Outcome::Succeeded,
                exit_code: None,
                error: None,
                outputs: entry.outputs,
                artifacts: entry.artifacts,
                cached_from: Some(entry.run_id.into()),
            };
            let Some(active) = st.runs.get_mut(&run_id) else {
                continue;
            };
            let fx = active.run.finish_from_cache(i, result, now);
            st.ready.retain(|(r, j)| !(*r == run_id && *j == i));
            let before = step.ready_tasks.len();
            collect(st, &run_id, fx, now, step);
            queue.extend(step.ready_tasks.drain(before..));
        }
        Ok(())
    }
}

fn task_static(run: &Run, i: usize) -> Arc<TaskStatic> {
    let t = &run.plan.tasks[i];
    let step = run.pipeline.task_step(t.step);
    let image = run
        .pipeline
        .template_of(step)
        .map(|t| t.image.value.clone())
        .unwrap_or_default();
    let kind = if t.iterations.is_some() {
        "loop"
    } else if t.iteration_of.is_some() && step.group().is_some() {
        "iteration"
    } else if step.group().is_some() {
        "group"
    } else {
        "step"
    };
    let shape = sluice_sdk::api::TaskShape {
        kind: kind.into(),
        // A loop's own task gathers its iterations: it has no item of its own.
        item: if t.iterations.is_some() {
            None
        } else {
            run.plan.item(&run.pipeline, i, None).cloned()
        },
        when: run
            .pipeline
            .control(step)
            .when
            .map(|w| w.value)
            .filter(|_| t.iteration_of.is_none()),
        exit_handler: t.exit_handler,
    };
    Arc::new(TaskStatic::new(
        t.name.clone(),
        image,
        shown_deps(run, i),
        step.display_name.clone(),
        shape,
    ))
}

/// What task `i` is shown waiting for. A group is shown after the steps that end it, the steps
/// that start it after what it waits for, and exit handlers after the steps that end the graph
/// (of their group, or of the run), which is when they run.
fn shown_deps(run: &Run, i: usize) -> Vec<String> {
    let tasks = &run.plan.tasks;
    let t = &tasks[i];
    let names = |v: Vec<usize>| v.into_iter().map(|d| tasks[d].name.clone()).collect();
    // The tasks at the end of a group's (or the run's) graph, handlers or not.
    let ends = |scope: Option<usize>, handlers: bool| -> Vec<usize> {
        let within = |x: usize| tasks[x].scope == scope && tasks[x].iteration_of.is_none();
        let candidates: Vec<usize> = match scope.and_then(|g| tasks[g].members.clone()) {
            Some(members) => members,
            None => (0..tasks.len()).collect(),
        };
        candidates
            .into_iter()
            .filter(|&x| within(x) && tasks[x].exit_handler == handlers)
            .filter(|&x| {
                tasks[x]
                    .dependents
                    .iter()
                    .all(|&d| !within(d) || tasks[d].exit_handler != handlers)
            })
            .collect()
    };
    if t.members.is_some() {
        let handlers = ends(Some(i), true);
        return names(if handlers.is_empty() {
            ends(Some(i), false)
        } else {
            handlers
        });
    }
    if !t.deps.is_empty() {
        return t.deps.iter().map(|&d| tasks[d].name.clone()).collect();
    }
    if t.exit_handler {
        return names(ends(t.scope, false));
    }
    // A group's first steps: after what the group (or the one around it) waits for.
    let mut scope = t.scope;
    while let Some(g) = scope {
        if !tasks[g].deps.is_empty() {
            return names(tasks[g].deps.clone());
        }
        scope = tasks[g].scope;
    }
    Vec::new()
}

/// Turns engine effects on one run into rows to write, announcements and queue entries.
fn collect(st: &mut State, run_id: &str, fx: Vec<Effect>, now: i64, step: &mut Step) {
    let Some(active) = st.runs.get_mut(run_id) else {
        return;
    };
    // Each changed task once, in the order of its last change (a group ends after its steps).
    let mut last: HashMap<usize, usize> = HashMap::new();
    let mut run_changed = false;
    for (k, e) in fx.into_iter().enumerate() {
        match e {
            Effect::Task(i) => {
                last.insert(i, k);
            }
            Effect::Ready(i) => {
                st.ready.push_back((run_id.to_string(), i));
                step.ready_tasks.push((run_id.to_string(), i));
                step.readied = true;
            }
            Effect::Run => run_changed = true,
            Effect::Cache(i, key) => {
                let t = &active.run.tasks[i];
                if let Some(digest) = &t.image_digest {
                    step.batch.cache.push(CacheEntry {
                        key,
                        image_digest: digest.clone(),
                        run_id: run_id.to_string(),
                        task: active.run.plan.tasks[i].name.clone(),
                        outputs: t
                            .outputs
                            .params
                            .iter()
                            .map(|(k, v)| (k.clone(), sluice_spec::render(v)))
                            .collect(),
                        artifacts: t.outputs.artifacts.clone(),
                        created_at: now,
                    });
                }
            }
        }
    }
    let mut tasks: Vec<(usize, usize)> = last.into_iter().map(|(i, k)| (k, i)).collect();
    tasks.sort_unstable();
    let ts = format_ts(now);
    for (_, i) in tasks {
        let row = active.task_row(i);
        // A task still pending has nothing to tell (a new run announces only what became ready),
        // unless it waits to retry.
        if row.task.state == sluice_sdk::api::TaskState::Pending && row.task.retry_at.is_none() {
            step.batch.tasks.push(row);
            continue;
        }
        step.announce.push(Announcement {
            run_id: run_id.to_string(),
            event: RunEvent::Task {
                task: row.stat.name.clone(),
                state: row.task.state,
                attempt: row.task.attempt,
                exit_code: row.task.exit_code,
                error: row.task.error.clone(),
                ts: ts.clone(),
            },
        });
        step.batch.tasks.push(row);
    }
    if run_changed {
        let row = active.run_row();
        step.announce.push(Announcement {
            run_id: run_id.to_string(),
            event: RunEvent::Run {
                state: row.state,
                error: row.error.clone(),
                ts,
            },
        });
        step.batch.runs.push(row);
    }
}
