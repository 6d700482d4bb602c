//! A recording fake runtime for tests and control-plane benchmarks. It starts no container: it
//! records each request and acts out what the task's environment tells it to, so that tests can
//! drive the control plane end to end without root. It is never a default anywhere.
//!
//! Environment variables the fake reads from a task's spec:
//! - `FAKE_SLEEP_MS`: how long the "container" runs (stopped early on cancel);
//! - `FAKE_WAIT_FILE`: a path the "container" runs until it exists (tests release steps with it,
//!   instead of racing a clock);
//! - `FAKE_LOG`: lines to write to stdout, separated by `|`;
//! - `FAKE_EXIT`: the exit code (default 0);
//! - `FAKE_OUT_<name>`: a value written to output parameter `<name>`;
//! - `FAKE_ART_<name>`: text written to output artifact `<name>` (a file);
//! - `FAKE_COPY_<name>`: the input artifact it names (a file, from the path the worker resolved
//!   for it: its producer's copy, or one fetched from the object store) copied to output
//!   artifact `<name>`.

use super::{BoxFuture, ContainerRuntime, Exit, Io, RunRequest, RuntimeError};
use sluice_sdk::api::Stream;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    pub lease_id: String,
    pub run_id: String,
    pub task: String,
    pub attempt: u32,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    /// Whether the task ran to its end (false when it was stopped).
    pub completed: bool,
    /// When the "container" started and ended (milliseconds since the epoch).
    pub started_ms: i64,
    pub ended_ms: i64,
}

#[derive(Default)]
pub struct FakeRuntime {
    records: Mutex<Vec<Recorded>>,
    /// Also append each record as a JSON line to this file (for tests that run workers as processes).
    journal: Option<PathBuf>,
}

impl FakeRuntime {
    /// A fake that also journals to `journal`, made (empty) here: a journal that is missing
    /// later means no worker ran with it, not one that ran nothing.
    pub fn new(journal: Option<PathBuf>) -> FakeRuntime {
        if let Some(p) = &journal {
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p);
        }
        FakeRuntime {
            records: Mutex::new(Vec::new()),
            journal,
        }
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, mut r: Recorded) {
        r.ended_ms = sluice_sdk::api::now_ms();
        if let Some(path) = &self.journal {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                // One write per line: tasks finishing at once must not interleave theirs.
                let line = format!("{}\n", serde_json::to_string(&r).unwrap_or_default());
                let _ = f.write_all(line.as_bytes());
            }
        }
        if let Ok(mut recs) = self.records.lock() {
            recs.push(r);
        }
    }
}

impl ContainerRuntime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    /// The fake has no images: it reports `FAKE_IMAGE_DIGEST` from the task's environment.
    fn prepare<'a>(
        &'a self,
        spec: &'a sluice_sdk::api::TaskSpec,
    ) -> BoxFuture<'a, Result<Option<String>, RuntimeError>> {
        Box::pin(async move {
            Ok(spec
                .env
                .iter()
                .find(|e| e.name == "FAKE_IMAGE_DIGEST")
                .map(|e| e.value.clone()))
        })
    }

    fn run(&self, req: RunRequest, mut io: Io) -> BoxFuture<'_, Result<Exit, RuntimeError>> {
        Box::pin(async move {
            let env = |k: &str| {
                req.spec
                    .env
                    .iter()
                    .find(|e| e.name == k)
                    .map(|e| e.value.clone())
            };
            let _ = io.started.send(super::Started::default());
            let mut rec = Recorded {
                lease_id: req.lease_id.clone(),
                run_id: req.run_id.clone(),
                task: req.task.clone(),
                attempt: req.attempt,
                command: req.spec.command.clone(),
                args: req.spec.args.clone(),
                completed: false,
                started_ms: sluice_sdk::api::now_ms(),
                ended_ms: 0,
            };
            if let Some(lines) = env("FAKE_LOG") {
                for l in lines.split('|') {
                    io.logs.line(Stream::Stdout, l).await;
                }
            }
            let sleep = env("FAKE_SLEEP_MS")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let wait_file = env("FAKE_WAIT_FILE").map(PathBuf::from);
            if sleep > 0 || wait_file.is_some() {
                let released = async {
                    tokio::time::sleep(Duration::from_millis(sleep)).await;
                    if let Some(f) = &wait_file {
                        while !f.exists() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                };
                tokio::select! {
                    _ = released => {}
                    r = io.stop.wait_for(|s| s.is_some()) => {
                        let stopped = r.ok().and_then(|s| *s);
                        self.record(rec);
                        return Ok(Exit { code: 137, oom_killed: false, stopped, evicted: None });
                    }
                }
            }
            for e in &req.spec.env {
                let write = |dir: &PathBuf, name: &str| {
                    std::fs::write(dir.join(name), &e.value)
                        .map_err(|err| RuntimeError::Failed(err.to_string()))
                };
                if let Some(name) = e.name.strip_prefix("FAKE_OUT_") {
                    write(&req.params_dir, name)?;
                } else if let Some(name) = e.name.strip_prefix("FAKE_ART_") {
                    write(&req.artifacts_dir, name)?;
                } else if let Some(name) = e.name.strip_prefix("FAKE_COPY_") {
                    let from = req
                        .spec
                        .input_artifacts
                        .iter()
                        .position(|a| a.name == e.value)
                        .and_then(|i| req.inputs.get(i))
                        .ok_or_else(|| RuntimeError::Failed(format!("no input `{}`", e.value)))?;
                    std::fs::copy(from, req.artifacts_dir.join(name)).map_err(|err| {
                        RuntimeError::Failed(format!("{}: {err}", from.display()))
                    })?;
                }
            }
            let code = env("FAKE_EXIT").and_then(|v| v.parse().ok()).unwrap_or(0);
            rec.completed = true;
            self.record(rec);
            Ok(Exit {
                code,
                oom_killed: false,
                stopped: None,
                evicted: None,
            })
        })
    }
}
