//! The worker's loop: register, lease as many tasks as there are free slots (long poll), run each,
//! heartbeat the leases held, and stop tasks whose run was cancelled or whose lease was lost.

use crate::outcome::{result_of, stopped};
use crate::reporter::logship::LogPolicy;
use crate::reporter::{self, Reporter};
use crate::runtime::{ContainerRuntime, Io, LogSink, RunRequest, Started, StopReason};
use sluice_sdk::api::{
    EnvVar, ErrorCode, Lease, LeaseId, RegisterWorker, ReportEvent, TaskResult, TaskSpec,
    WorkerIdentity,
};
use sluice_sdk::artifacts::{Artifacts, ObjectArtifacts};
use sluice_sdk::beneath;
use sluice_sdk::client::{Client, ClientError};
use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub server: String,
    pub token: Option<String>,
    pub name: String,
    /// How many tasks run at once.
    pub capacity: u32,
    /// What it offers to steps' `nodeSelector`.
    pub labels: sluice_sdk::api::Labels,
    /// Where task scratch files and output artifacts live.
    pub data_dir: PathBuf,
    /// How long one lease request waits for work.
    pub poll_wait: Duration,
    /// On shutdown, how long running tasks may take to finish before they are stopped.
    pub drain: Duration,
    /// How much of each attempt's log is shipped.
    pub log_policy: LogPolicy,
    /// Also trust the certificates in this PEM file when reaching the server over TLS.
    pub ca_cert: Option<PathBuf>,
    /// A client of the server's object store made by whoever embeds the worker (with
    /// credentials given in code). By default one is made from the URL the server announces and
    /// this process's environment.
    pub artifact_store: Option<Arc<ObjectArtifacts>>,
}

/// A lease this worker holds: how to stop its task, and when the server last renewed it (as
/// this worker's clock has it: the time the renewing request was sent, or the lease received).
struct Held {
    stop: watch::Sender<Option<StopReason>>,
    renewed: Instant,
}

type Running = Arc<Mutex<HashMap<LeaseId, Held>>>;

fn stop(running: &Running, lease: &LeaseId, why: StopReason) {
    let tx = running
        .lock()
        .ok()
        .and_then(|r| r.get(lease).map(|h| h.stop.clone()));
    if let Some(tx) = tx {
        tracing::info!(lease = %lease, reason = ?why, "stopping task");
        let _ = tx.send(Some(why));
    }
}

pub use sluice_sdk::api::now_ms;

/// Registers with the server, retrying until it answers.
async fn register(
    client: &Client,
    req: &RegisterWorker,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<sluice_sdk::api::WorkerRegistration> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.register_worker(req).await {
            Ok(r) => return Some(r),
            Err(e) => tracing::warn!(error = %e, "cannot register with the server; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|s| *s) => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs the worker until `shutdown` completes.
pub async fn run(
    cfg: WorkerConfig,
    runtime: Arc<dyn ContainerRuntime>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    std::fs::create_dir_all(cfg.data_dir.join("tasks"))?;
    std::fs::create_dir_all(cfg.data_dir.join("artifacts"))?;
    // Artifacts are recorded, checked and mounted by their place under this canonical root.
    let mut artifacts = Artifacts::local(std::fs::canonicalize(cfg.data_dir.join("artifacts"))?);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let client = Client::trusting(&cfg.server, cfg.token.clone(), cfg.ca_cert.as_deref())
        .map_err(std::io::Error::other)?;
    // What it offers: its capacity, where its tasks' outputs go, its labels and its GPUs.
    let offer = RegisterWorker {
        labels: cfg.labels.clone(),
        gpus: runtime.gpus(),
        ..RegisterWorker::new(&cfg.name, cfg.capacity, artifacts.local.root().to_str())
    };
    let Some(reg) = register(&client, &offer, &mut stop_rx).await else {
        return Ok(());
    };
    // Where the server keeps artifacts, when it is an object store: this worker uploads its
    // tasks' outputs there and fetches inputs made elsewhere, with its own credentials.
    if let Some(url) = &reg.artifact_store {
        let store = match &cfg.artifact_store {
            Some(s) => s.clone(),
            None => Arc::new(ObjectArtifacts::from_url(url).map_err(std::io::Error::other)?),
        };
        std::fs::create_dir_all(artifacts.local.root().join(crate::placed::CACHE_DIR))?;
        artifacts.object = Some(store);
    }
    let artifacts = Arc::new(artifacts);
    tracing::info!(worker = %reg.id, server = %cfg.server, runtime = runtime.name(), capacity = cfg.capacity, artifact_store = reg.artifact_store.as_deref().unwrap_or("local"), "worker registered");
    let worker_id = Arc::new(RwLock::new(WorkerIdentity {
        id: reg.id.clone(),
        credential: reg.credential.clone(),
    }));
    let running: Running = Arc::default();

    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<LeaseId>();
    let (reporter, reporter_done) = reporter::spawn(client.clone(), worker_id.clone(), lost_tx);
    let lost_watch = {
        let running = running.clone();
        tokio::spawn(async move {
            while let Some(l) = lost_rx.recv().await {
                stop(&running, &l, StopReason::LeaseLost);
            }
        })
    };
    let heartbeats = tokio::spawn(heartbeat_loop(
        client.clone(),
        worker_id.clone(),
        running.clone(),
        Duration::from_millis(reg.heartbeat_interval_ms.max(100)),
        Duration::from_millis(reg.lease_ttl_ms.max(1)),
    ));

    let slots = Arc::new(Semaphore::new(cfg.capacity as usize));
    let mut backoff = Duration::from_millis(100);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if *stop_rx.borrow() {
            break;
        }
        // Ended attempts leave the set (it would otherwise keep one entry per task ever run).
        while tasks.try_join_next().is_some() {}
        // Wait for a free slot, then ask for as many tasks as there are free slots.
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            _ = stop_rx.wait_for(|s| *s) => break,
        };
        let free = slots.available_permits() as u32 + 1;
        let id = worker_id.read().map(|g| g.clone()).unwrap_or_default();
        let resp = tokio::select! {
            r = client.lease(&id, free, cfg.poll_wait.as_millis() as u64) => r,
            _ = stop_rx.wait_for(|s| *s) => break,
        };
        let received = Instant::now();
        let leases = match resp {
            Ok(r) => {
                backoff = Duration::from_millis(100);
                r.leases
            }
            Err(e) => {
                drop(first);
                if e.code() == Some(&ErrorCode::UnknownWorker) {
                    tracing::warn!("the server does not know this worker; registering again");
                    if let Some(reg) = register(&client, &offer, &mut stop_rx).await {
                        if let Ok(mut g) = worker_id.write() {
                            *g = WorkerIdentity {
                                id: reg.id,
                                credential: reg.credential,
                            };
                        }
                    }
                    continue;
                }
                tracing::warn!(error = %e, "leasing failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop_rx.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut first = Some(first);
        for lease in leases {
            let permit = match first.take() {
                Some(p) => p,
                None => match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => break, // cannot happen: the server grants at most `free`
                },
            };
            let (tx, rx) = watch::channel(None);
            if let Ok(mut r) = running.lock() {
                r.insert(
                    lease.lease_id.clone(),
                    Held {
                        stop: tx,
                        renewed: received,
                    },
                );
            }
            let ctx = TaskCtx {
                runtime: runtime.clone(),
                reporter: reporter.clone(),
                running: running.clone(),
                data_dir: cfg.data_dir.clone(),
                artifacts: artifacts.clone(),
                log_policy: cfg.log_policy,
                client: client.clone(),
                identity: worker_id.clone(),
            };
            tasks.spawn(async move {
                ctx.execute(lease, rx).await;
                drop(permit);
            });
        }
    }

    // Shutting down: let running tasks finish for a while, then stop them; their leases run out
    // on the server and the tasks run again elsewhere.
    let drained = tokio::time::timeout(cfg.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let leases: Vec<LeaseId> = running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        for l in leases {
            stop(&running, &l, StopReason::Shutdown);
        }
        while tasks.join_next().await.is_some() {}
    }
    heartbeats.abort();
    lost_watch.abort();
    drop(reporter);
    let _ = tokio::time::timeout(Duration::from_secs(10), reporter_done).await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Renews the worker's leases every `every`, and stops the task of any lease it could not renew
/// within `ttl`: the server may hand that lease out again once it lapses (after a grace period),
/// so a worker cut off from the server must not go on running the task.
async fn heartbeat_loop(
    client: Client,
    worker_id: Arc<RwLock<WorkerIdentity>>,
    running: Running,
    every: Duration,
    ttl: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let leases: Vec<LeaseId> = running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        let id = worker_id.read().map(|g| g.clone()).unwrap_or_default();
        let sent = Instant::now();
        // A server that does not answer must not hold up the checks below.
        let answer = tokio::time::timeout(ttl, client.heartbeat(&id, leases.clone())).await;
        match answer {
            Ok(Ok(resp)) => {
                if let Ok(mut r) = running.lock() {
                    for l in &leases {
                        if !resp.lost.contains(l) {
                            if let Some(h) = r.get_mut(l) {
                                h.renewed = h.renewed.max(sent);
                            }
                        }
                    }
                }
                for l in resp.lost {
                    stop(&running, &l, StopReason::LeaseLost);
                }
                for l in resp.cancel {
                    stop(&running, &l, StopReason::Cancelled);
                }
            }
            Ok(Err(ClientError::Api { error, .. })) if error.code == ErrorCode::UnknownWorker => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
            Err(_) => tracing::warn!("heartbeat got no answer within the lease time"),
        }
        let lapsed: Vec<LeaseId> = running
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|(_, h)| h.renewed.elapsed() >= ttl)
                    .map(|(l, _)| l.clone())
                    .collect()
            })
            .unwrap_or_default();
        for l in lapsed {
            tracing::warn!(lease = %l, "the lease could not be renewed in time; stopping its task, which may run elsewhere");
            stop(&running, &l, StopReason::LeaseLost);
        }
    }
}

#[derive(Clone)]
struct TaskCtx {
    runtime: Arc<dyn ContainerRuntime>,
    reporter: Reporter,
    running: Running,
    data_dir: PathBuf,
    /// The artifacts this worker keeps (recorded, checked and mounted by their place under its
    /// canonical root), and the object store it uploads to and fetches from, if any.
    artifacts: Arc<Artifacts>,
    log_policy: LogPolicy,
    /// The server, for the uploads runs were given that it keeps itself.
    client: Client,
    identity: Arc<RwLock<WorkerIdentity>>,
}

impl TaskCtx {
    async fn execute(self, lease: Lease, stop_rx: watch::Receiver<Option<StopReason>>) {
        let lease_id = lease.lease_id.clone();
        let span = tracing::info_span!("task", run = %lease.run_id, task = %lease.task, attempt = lease.attempt);
        let _g = span.enter();
        let result = self.attempt(lease, stop_rx).await;
        if let Ok(mut r) = self.running.lock() {
            r.remove(&lease_id);
        }
        if let Some(result) = result {
            self.reporter.send(ReportEvent::Finished {
                lease_id,
                ts_ms: now_ms(),
                result,
            });
        }
    }

    /// Runs one attempt, phase by phase. `None` means the worker must not report it (lease lost,
    /// or shutting down).
    async fn attempt(
        &self,
        lease: Lease,
        stop_rx: watch::Receiver<Option<StopReason>>,
    ) -> Option<TaskResult> {
        // Every secret the task names came with the lease, or it fails before anything is done.
        let (env, mask) = match secret_env(&lease) {
            Ok(x) => x,
            Err(e) => return Some(TaskResult::failed(e)),
        };
        // Directories, the script and the inputs are file-system work: off the async threads,
        // for a task that has any (one with none costs no thread hand-off).
        let (places, inputs) = {
            let (ctx, lease) = (self.clone(), lease.clone());
            let fs_work = touches_files(&lease.spec);
            let prepared = off_thread_if(fs_work, move || {
                let places = ctx.prepare(&lease)?;
                let inputs = crate::placed::resolve_inputs(&ctx.artifacts, &lease.spec)?;
                Ok::<_, String>((places, inputs))
            })
            .await;
            match prepared {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Some(TaskResult::failed(e)),
                Err(e) => return Some(TaskResult::failed(format!("worker failed: {e}"))),
            }
        };
        let _cleanup = RemoveOnDrop(places.scratch.clone());
        // A Kubeflow importer runs no container: it copies what its URI names.
        if lease
            .spec
            .kfp
            .as_ref()
            .is_some_and(|k| k.launch.importer.is_some())
        {
            let (spec, dir) = (lease.spec.clone(), places.artifacts.clone());
            let r = off_thread_if(true, move || crate::kfp::import(&spec, &dir))
                .await
                .unwrap_or_else(|e| TaskResult::failed(format!("worker failed: {e}")));
            let none = HashMap::new();
            return Some(
                crate::placed::publish(
                    &self.artifacts,
                    &crate::placed::Attempt::of(&lease),
                    &places.artifacts,
                    r,
                    none,
                )
                .await,
            );
        }
        // A step's timeout stops it as a cancel would, and fails the attempt; it covers the
        // image's pull as well as the container.
        let _timer = lease.spec.timeout_ms.map(|ms| {
            let running = self.running.clone();
            let lease = lease.lease_id.clone();
            AbortOnDrop(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                stop(&running, &lease, StopReason::Timeout);
            }))
        });
        let mut stop_rx = stop_rx;
        let image_digest = tokio::select! {
            r = self.runtime.prepare(&lease.spec) => match r {
                Ok(d) => d,
                Err(e) => return Some(TaskResult::failed(format!("cannot prepare image `{}`: {e}", lease.spec.image))),
            },
            r = stop_rx.wait_for(|s| s.is_some()) => {
                let why = r.ok().and_then(|s| *s);
                let during = format!(" while pulling image `{}`", lease.spec.image);
                return stopped(why, &lease.spec, None, &during);
            }
        };
        if let Some(r) = self.reuse(&lease, image_digest.as_deref()).await {
            return Some(r);
        }
        // Inputs made on other hosts come from the object store (or this worker's cache of it).
        let server = crate::placed::Server {
            client: &self.client,
            identity: self.identity.read().map(|g| g.clone()).unwrap_or_default(),
        };
        let inputs = tokio::select! {
            r = crate::placed::fetch_inputs(&self.artifacts, &lease.spec, inputs, &server) => match r {
                Ok(i) => i,
                Err(e) => return Some(TaskResult::failed(e)),
            },
            r = stop_rx.wait_for(|s| s.is_some()) => {
                let why = r.ok().and_then(|s| *s);
                return stopped(why, &lease.spec, None, " while fetching its input artifacts");
            }
        };
        let (ids, area) = (crate::placed::Attempt::of(&lease), places.artifacts.clone());
        let spec = lease.spec.clone();
        let mut run_spec = lease.spec;
        // A Kubeflow task's command and arguments are filled here, as its launcher fills them.
        if let Err(e) = crate::kfp::launch(&mut run_spec) {
            return Some(TaskResult::failed(e));
        }
        run_spec.env.extend(env);
        let req = RunRequest {
            lease_id: lease.lease_id.to_string(),
            run_id: lease.run_id.to_string(),
            task: lease.task.to_string(),
            attempt: lease.attempt,
            spec: run_spec,
            params_dir: places.params.clone(),
            artifacts_dir: places.artifacts.clone(),
            script: places.script,
            inputs,
            artifacts_root: self.artifacts.local.root().to_path_buf(),
            secret_files: places.secrets.clone(),
        };
        let (log_sink, log_rx) = LogSink::channel();
        let (started_tx, started_rx) = oneshot::channel();
        // A daemon's start is passed on by a task that then says when it is up; it lives as
        // long as the container, so its wait for the port ends with it. Other steps' starts go
        // straight to the log shipper.
        let (started_rx, _announce) = match &spec.daemon {
            None => (started_rx, None),
            Some(daemon) => {
                let (ship_tx, ship_rx) = oneshot::channel();
                let task = tokio::spawn(announce(
                    self.reporter.clone(),
                    lease.lease_id.clone(),
                    daemon.clone(),
                    started_rx,
                    ship_tx,
                ));
                (ship_rx, Some(AbortOnDrop(task)))
            }
        };
        let shipper = self.reporter.ship_logs(
            lease.lease_id.clone(),
            started_rx,
            log_rx,
            image_digest,
            self.log_policy,
            mask,
        );
        let exit = self
            .runtime
            .run(
                req,
                Io {
                    logs: log_sink,
                    started: started_tx,
                    stop: stop_rx,
                },
            )
            .await;
        let _ = shipper.await;
        let exit = match exit {
            Err(e) => return Some(TaskResult::failed(e.to_string())),
            Ok(exit) => exit,
        };
        // With an object store, a clean exit's outputs start uploading while they are hashed.
        let clean =
            exit.code == 0 && exit.stopped.is_none() && exit.evicted.is_none() && !exit.oom_killed;
        let uploads = match &self.artifacts.object {
            Some(store) if clean && !spec.output_artifacts.is_empty() => {
                let names = spec
                    .output_artifacts
                    .iter()
                    .map(|a| a.name.clone())
                    .collect();
                Some(AbortOnDrop(tokio::spawn(crate::placed::upload_all(
                    store.clone(),
                    ids.clone(),
                    area.clone(),
                    names,
                ))))
            }
            _ => None,
        };
        // Output parameters are read and artifacts hashed off the async threads.
        let (params, artifacts) = (places.params, places.artifacts);
        let fs_work = touches_files(&spec);
        let result = off_thread_if(fs_work, move || result_of(exit, &spec, &params, &artifacts))
            .await
            .unwrap_or_else(|e| Some(TaskResult::failed(format!("worker failed: {e}"))))?;
        let uploaded = match uploads {
            Some(mut u) if result.outcome == sluice_spec::state::Outcome::Succeeded => {
                (&mut u.0).await.unwrap_or_default()
            }
            _ => Default::default(),
        };
        Some(crate::placed::publish(&self.artifacts, &ids, &area, result, uploaded).await)
    }

    /// Makes the attempt's directories (only those the task needs) and writes its script.
    fn prepare(&self, lease: &Lease) -> Result<Places, String> {
        // The server names the run, task and lease: they must stay single plain names here.
        let attempt_dir = Path::new(lease.run_id.as_str())
            .join(lease.task.as_str())
            .join(lease.attempt.to_string());
        let plain =
            |p: &Path, n: usize| beneath::relative(p).is_ok() && p.components().count() == n;
        if !plain(&attempt_dir, 3) || !plain(Path::new(lease.lease_id.as_str()), 1) {
            return Err(format!(
                "worker refuses lease `{}` for task `{}` of run `{}`: not plain names",
                lease.lease_id, lease.task, lease.run_id
            ));
        }
        let scratch = self.data_dir.join("tasks").join(lease.lease_id.as_str());
        let file_secrets: Vec<_> = lease
            .spec
            .secrets
            .iter()
            .filter_map(|s| Some((s, s.path.clone()?)))
            .collect();
        let places = Places {
            artifacts: self.artifacts.local.root().join(&attempt_dir),
            params: scratch.join("params"),
            script: lease.spec.script.as_ref().map(|_| scratch.join("script")),
            secrets: file_secrets
                .iter()
                .enumerate()
                .map(|(i, (_, path))| (scratch.join("secrets").join(i.to_string()), path.clone()))
                .collect(),
            scratch,
        };
        // Only what the task declares is made: a task with no outputs costs no directories.
        let mut dirs = Vec::new();
        if lease.spec.writes_params() {
            dirs.push(&places.params);
        }
        if !lease.spec.output_artifacts.is_empty() {
            dirs.push(&places.artifacts);
        }
        if lease.spec.script.is_some() || !places.secrets.is_empty() {
            dirs.push(&places.scratch);
        }
        for d in dirs {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("worker cannot prepare {}: {e}", d.display()))?;
        }
        // Secret files: readable inside the container by any user of its image, kept on the
        // host in the attempt's scratch directory (root only) and removed with it.
        if !places.secrets.is_empty() {
            let dir = places.scratch.join("secrets");
            std::fs::create_dir_all(&dir)
                .and_then(|_| {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|e| format!("worker cannot prepare {}: {e}", dir.display()))?;
        }
        for ((s, _), (host, _)) in file_secrets.iter().zip(&places.secrets) {
            // Checked before: every secret named came with the lease.
            let value = lease
                .secret_values
                .0
                .get(&s.name)
                .map(String::as_str)
                .unwrap_or_default();
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(host)
                .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()))
                .map_err(|e| format!("worker cannot write secret `{}`: {e}", s.name))?;
        }
        if let (Some(text), Some(p)) = (&lease.spec.script, &places.script) {
            std::fs::write(p, text).map_err(|e| {
                let _ = std::fs::remove_dir_all(&places.scratch);
                format!("worker cannot write the script: {e}")
            })?;
        }
        Ok(places)
    }

    /// The same task ran before with these inputs on this image, and its artifacts are still
    /// here: its result is reused and no container starts.
    async fn reuse(&self, lease: &Lease, image_digest: Option<&str>) -> Option<TaskResult> {
        let c = lease.cached.clone()?;
        if image_digest != Some(c.image_digest.as_str()) {
            return None;
        }
        let uris: Vec<String> = c.artifacts.iter().map(|a| a.uri.clone()).collect();
        if !self.artifacts.contains_all(uris).await {
            return None;
        }
        tracing::info!(from_run = %c.run_id, "result reused from the cache");
        Some(TaskResult::reused(&c))
    }
}

/// Whether an attempt of `spec` reads or writes files on the worker: outputs, inputs, a script.
fn touches_files(spec: &TaskSpec) -> bool {
    spec.writes_params()
        || !spec.output_artifacts.is_empty()
        || !spec.input_artifacts.is_empty()
        || spec.script.is_some()
        || spec.secrets.iter().any(|s| s.path.is_some())
}

/// The secrets a task uses, checked against what its lease carries: every one must have come
/// (a secret deleted since the run was made fails the attempt, naming it). Returns the
/// environment it adds and the values to mask in its log (each line of each value, longest
/// first, so that a value containing another is masked whole).
fn secret_env(lease: &Lease) -> Result<(Vec<EnvVar>, Vec<String>), String> {
    let mut env = Vec::new();
    let mut mask = Vec::new();
    for s in &lease.spec.secrets {
        let Some(v) = lease.secret_values.0.get(&s.name) else {
            return Err(format!(
                "secret `{}` is not set on the server (`sluice secrets set {}`)",
                s.name, s.name
            ));
        };
        if let Some(name) = &s.env {
            env.push(EnvVar {
                name: name.clone(),
                value: v.clone(),
            });
        }
        mask.extend(
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    mask.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mask.dedup();
    Ok((env, mask))
}

/// Runs blocking `f` on tokio's blocking pool when `blocking`, else here (where it is cheap and
/// a hand-off to another thread would cost more than the work).
async fn off_thread_if<T: Send + 'static>(
    blocking: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    match blocking {
        true => tokio::task::spawn_blocking(f).await,
        false => Ok(f()),
    }
}

/// Where one attempt keeps its files on the worker.
struct Places {
    /// Removed when the attempt ends.
    scratch: PathBuf,
    params: PathBuf,
    artifacts: PathBuf,
    script: Option<PathBuf>,
    /// Secret files, each with where the container sees it.
    secrets: Vec<(PathBuf, String)>,
}

/// Passes a daemon's start on to the log shipper (which reports it before any line), then says
/// once it is up where the steps after it reach it: as soon as it started, or once it accepts
/// connections on the port it names.
async fn announce(
    reporter: Reporter,
    lease_id: LeaseId,
    daemon: sluice_spec::Daemon,
    started: oneshot::Receiver<Started>,
    ship: oneshot::Sender<Started>,
) {
    let Ok(s) = started.await else { return };
    let _ = ship.send(s);
    let Some(ip) = s.address else {
        tracing::warn!(lease = %lease_id, "a daemon step started without an address on its run's network; the steps after it cannot reach it");
        return;
    };
    if let Some(port) = daemon.port {
        let since = Instant::now();
        let mut told = false;
        loop {
            let tried = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect((ip, port)),
            )
            .await;
            if matches!(tried, Ok(Ok(_))) {
                break;
            }
            if !told && since.elapsed() > Duration::from_secs(30) {
                told = true;
                tracing::warn!(lease = %lease_id, %ip, port, "a daemon step does not accept connections on its port yet (does it listen on 0.0.0.0?)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    reporter.send(ReportEvent::Serving {
        lease_id,
        ts_ms: sluice_sdk::api::now_ms(),
        address: ip.to_string(),
    });
}

/// Aborts a spawned task when dropped (a timer, or uploads, that must not outlive its attempt).
struct AbortOnDrop<T = ()>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
