//! The worker's loop: register, lease as many tasks as there are free slots (long poll), run each,
//! heartbeat the leases held, and stop tasks whose run was cancelled or whose lease was lost.

use crate::logship::{self, LogPolicy};
use crate::outputs;
use crate::reporter::{self, Reporter};
use crate::runtime::{ContainerRuntime, Exit, Io, LogSink, RunRequest, StopReason};
use sluice_sdk::api::{Lease, Outcome, ReportEvent, TaskResult};
use sluice_sdk::beneath;
use sluice_sdk::client::{Client, ClientError};
use std::collections::HashMap;
use std::future::Future;
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
    /// Where task scratch files and output artifacts live.
    pub data_dir: PathBuf,
    /// How long one lease request waits for work.
    pub poll_wait: Duration,
    /// On shutdown, how long running tasks may take to finish before they are stopped.
    pub drain: Duration,
    /// How much of each attempt's log is shipped.
    pub log_policy: LogPolicy,
}

/// A lease this worker holds: how to stop its task, and when the server last renewed it (as
/// this worker's clock has it: the time the renewing request was sent, or the lease received).
struct Held {
    stop: watch::Sender<Option<StopReason>>,
    renewed: Instant,
}

type Running = Arc<Mutex<HashMap<String, Held>>>;

fn stop(running: &Running, lease: &str, why: StopReason) {
    let tx = running
        .lock()
        .ok()
        .and_then(|r| r.get(lease).map(|h| h.stop.clone()));
    if let Some(tx) = tx {
        tracing::info!(lease, reason = ?why, "stopping task");
        let _ = tx.send(Some(why));
    }
}

pub use sluice_sdk::api::now_ms;

/// Registers with the server, retrying until it answers.
async fn register(
    client: &Client,
    cfg: &WorkerConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<sluice_sdk::api::WorkerRegistration> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.register_worker(&cfg.name, cfg.capacity).await {
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
    let artifacts_root: Arc<Path> =
        Arc::from(std::fs::canonicalize(cfg.data_dir.join("artifacts"))?);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let client = Client::new(&cfg.server, cfg.token.clone());
    let Some(reg) = register(&client, &cfg, &mut stop_rx).await else {
        return Ok(());
    };
    tracing::info!(worker = %reg.id, server = %cfg.server, runtime = runtime.name(), capacity = cfg.capacity, "worker registered");
    let worker_id = Arc::new(RwLock::new(reg.id.clone()));
    let running: Running = Arc::default();

    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<String>();
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
                if e.code() == Some("unknown_worker") {
                    tracing::warn!("the server does not know this worker; registering again");
                    if let Some(reg) = register(&client, &cfg, &mut stop_rx).await {
                        if let Ok(mut g) = worker_id.write() {
                            *g = reg.id;
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
                artifacts_root: artifacts_root.clone(),
                log_policy: cfg.log_policy,
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
        let leases: Vec<String> = running
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
    worker_id: Arc<RwLock<String>>,
    running: Running,
    every: Duration,
    ttl: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let leases: Vec<String> = running
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
            Ok(Err(ClientError::Api { error, .. })) if error.code == "unknown_worker" => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
            Err(_) => tracing::warn!("heartbeat got no answer within the lease time"),
        }
        let lapsed: Vec<String> = running
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

struct TaskCtx {
    runtime: Arc<dyn ContainerRuntime>,
    reporter: Reporter,
    running: Running,
    data_dir: PathBuf,
    artifacts_root: Arc<Path>,
    log_policy: LogPolicy,
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

    /// Runs one attempt. `None` means the worker must not report it (lease lost, or shutting down).
    async fn attempt(
        &self,
        lease: Lease,
        stop_rx: watch::Receiver<Option<StopReason>>,
    ) -> Option<TaskResult> {
        let failed = |error: String| {
            Some(TaskResult {
                outcome: Outcome::Failed,
                exit_code: None,
                error: Some(error),
                outputs: Default::default(),
                artifacts: Vec::new(),
                cached_from: None,
            })
        };
        // The server names the run, task and lease: they must stay single plain names here.
        let attempt_dir = Path::new(&lease.run_id)
            .join(&lease.task)
            .join(lease.attempt.to_string());
        let plain =
            |p: &Path, n: usize| beneath::relative(p).is_ok() && p.components().count() == n;
        if !plain(&attempt_dir, 3) || !plain(Path::new(&lease.lease_id), 1) {
            return failed(format!(
                "worker refuses lease `{}` for task `{}` of run `{}`: not plain names",
                lease.lease_id, lease.task, lease.run_id
            ));
        }
        let scratch = self.data_dir.join("tasks").join(&lease.lease_id);
        let artifacts_dir = self.artifacts_root.join(&attempt_dir);
        let params_dir = scratch.join("params");
        // Only what the task declares is made: a task with no outputs costs no directories.
        let mut dirs = Vec::new();
        if !lease.spec.output_params.is_empty() {
            dirs.push(&params_dir);
        }
        if !lease.spec.output_artifacts.is_empty() {
            dirs.push(&artifacts_dir);
        }
        if lease.spec.script.is_some() {
            dirs.push(&scratch);
        }
        for d in dirs {
            if let Err(e) = std::fs::create_dir_all(d) {
                return failed(format!("worker cannot prepare {}: {e}", d.display()));
            }
        }
        let _cleanup = RemoveOnDrop(scratch.clone());
        let script = match &lease.spec.script {
            Some(text) => {
                let p = scratch.join("script");
                if let Err(e) = std::fs::write(&p, text) {
                    return failed(format!("worker cannot write the script: {e}"));
                }
                Some(p)
            }
            None => None,
        };
        let mut inputs = Vec::new();
        for a in &lease.spec.input_artifacts {
            match self.local_artifact(&a.uri) {
                Ok(p) => inputs.push(p),
                Err(why) => {
                    return failed(format!(
                        "input artifact `{}` from step `{}`: {why}",
                        a.name, a.producer
                    ))
                }
            }
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
                Err(e) => return failed(format!("cannot prepare image `{}`: {e}", lease.spec.image)),
            },
            r = stop_rx.wait_for(|s| s.is_some()) => {
                let why = r.ok().and_then(|s| *s);
                let during = format!(" while pulling image `{}`", lease.spec.image);
                return stopped(why, &lease.spec, None, &during);
            }
        };
        // The same task ran before with these inputs on this image, and its artifacts are still
        // here: its result is reused and no container starts.
        if let Some(c) = &lease.cached {
            let same_image = image_digest.as_deref() == Some(c.image_digest.as_str());
            let here = |p: &Path| self.kept_here(p).is_ok();
            if same_image && sluice_sdk::api::artifacts_kept(&c.artifacts, here) {
                tracing::info!(from_run = %c.run_id, "result reused from the cache");
                return Some(TaskResult {
                    outcome: Outcome::Succeeded,
                    exit_code: None,
                    error: None,
                    outputs: c.outputs.clone(),
                    artifacts: c.artifacts.clone(),
                    cached_from: Some(c.run_id.clone()),
                });
            }
        }
        let spec = lease.spec.clone();
        let req = RunRequest {
            lease_id: lease.lease_id.clone(),
            run_id: lease.run_id.clone(),
            task: lease.task.clone(),
            attempt: lease.attempt,
            spec: lease.spec,
            params_dir: params_dir.clone(),
            artifacts_dir: artifacts_dir.clone(),
            script,
            inputs,
            artifacts_root: self.artifacts_root.to_path_buf(),
        };
        let (log_sink, log_rx) = LogSink::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let shipper = tokio::spawn(logship::ship(
            lease.lease_id.clone(),
            self.reporter.clone(),
            started_rx,
            log_rx,
            image_digest,
            self.log_policy,
        ));
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
        match exit {
            Err(e) => failed(e.to_string()),
            Ok(Exit {
                stopped: Some(why),
                code,
                ..
            }) => stopped(Some(why), &spec, Some(code), ""),
            Ok(Exit {
                evicted: Some(why),
                code,
                ..
            }) => Some(TaskResult {
                outcome: Outcome::Failed,
                exit_code: Some(code),
                error: Some(why),
                outputs: Default::default(),
                artifacts: Vec::new(),
                cached_from: None,
            }),
            Ok(Exit {
                oom_killed: true,
                code,
                ..
            }) => {
                let limit = spec
                    .resources
                    .memory_bytes
                    .map(|b| format!(" of {} MiB", b >> 20))
                    .unwrap_or_default();
                Some(TaskResult {
                    outcome: Outcome::Failed,
                    exit_code: Some(code),
                    error: Some(format!(
                        "out of memory: killed for exceeding its memory limit{limit}"
                    )),
                    outputs: Default::default(),
                    artifacts: Vec::new(),
                    cached_from: None,
                })
            }
            Ok(Exit { code, .. }) if code != 0 => Some(TaskResult {
                outcome: Outcome::Failed,
                exit_code: Some(code),
                error: Some(format!("exited with code {code}")),
                outputs: Default::default(),
                artifacts: Vec::new(),
                cached_from: None,
            }),
            Ok(Exit { code, .. }) => {
                let outputs = match outputs::params(&spec, &params_dir) {
                    Ok(o) => o,
                    Err(e) => return failed(e),
                };
                let artifacts = match outputs::artifacts(&spec, &artifacts_dir) {
                    Ok(a) => a,
                    Err(e) => return failed(e),
                };
                Some(TaskResult {
                    outcome: Outcome::Succeeded,
                    exit_code: Some(code),
                    error: None,
                    outputs,
                    artifacts,
                    cached_from: None,
                })
            }
        }
    }
}

impl TaskCtx {
    /// The host path of an artifact this worker keeps, checked to be a file or directory beneath
    /// its artifact directory with no link on the way (the runtime checks again as it mounts).
    fn local_artifact(&self, uri: &str) -> Result<PathBuf, String> {
        let Some(path) = uri.strip_prefix("file://").map(Path::new) else {
            return Err(format!("it is at `{uri}`, which this worker cannot reach"));
        };
        self.kept_here(path)?;
        Ok(path.to_path_buf())
    }

    /// Checks that `path` is a file or directory beneath this worker's artifact directory, with
    /// no link on the way.
    fn kept_here(&self, path: &Path) -> Result<(), String> {
        let rel = beneath::strip_root(path, &self.artifacts_root).ok_or_else(|| {
            format!(
                "it is at {}, outside this worker's artifact directory {}",
                path.display(),
                self.artifacts_root.display()
            )
        })?;
        let root = beneath::Dir::open(&self.artifacts_root).map_err(|e| e.to_string())?;
        match root.entry(rel, beneath::Links::Never) {
            Ok((beneath::Kind::File | beneath::Kind::Dir, _)) => Ok(()),
            Ok(_) => Err(format!("{} is not a file or a directory", path.display())),
            Err(beneath::BeneathError::NotFound(_)) => {
                Err(format!("it is gone from {}", path.display()))
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// The result of an attempt stopped on request (`None`: not reported, as with a lost lease):
/// its container's, when `code` is given, or `during` something before it started.
fn stopped(
    why: Option<StopReason>,
    spec: &sluice_sdk::api::TaskSpec,
    code: Option<i32>,
    during: &str,
) -> Option<TaskResult> {
    let (outcome, error) = match why? {
        StopReason::LeaseLost | StopReason::Shutdown => return None,
        StopReason::Timeout => (
            Outcome::Failed,
            format!(
                "timed out after {}s{}",
                spec.timeout_ms.unwrap_or(0) as f64 / 1000.0,
                if code.is_some() {
                    " and was killed"
                } else {
                    during
                }
            ),
        ),
        StopReason::Cancelled => (Outcome::Cancelled, format!("cancelled{during}")),
    };
    Some(TaskResult {
        outcome,
        exit_code: code,
        error: Some(error),
        outputs: Default::default(),
        artifacts: Vec::new(),
        cached_from: None,
    })
}

/// Aborts a spawned task when dropped (a timer that must not outlive its attempt).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
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
