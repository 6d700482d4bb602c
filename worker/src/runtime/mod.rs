//! The container runtime seam: what the worker asks of whatever runs a task's container.
//!
//! Only implementations of [`ContainerRuntime`] touch namespaces, mounts and cgroups.

pub mod embedded;
pub mod fake;

use sluice_sdk::api::{Stream, TaskSpec};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot, watch};

/// Everything a runtime needs to run one task attempt.
#[derive(Debug)]
pub struct RunRequest {
    pub lease_id: String,
    pub run_id: String,
    pub task: String,
    pub attempt: u32,
    pub spec: TaskSpec,
    /// Host directory mounted read-write at `/sluice/outputs/params`.
    pub params_dir: PathBuf,
    /// Host directory mounted read-write at `/sluice/outputs/artifacts`.
    pub artifacts_dir: PathBuf,
    /// Host file mounted read-only at `/sluice/script`, when the spec has a script.
    pub script: Option<PathBuf>,
    /// Host paths mounted read-only at each input artifact's path, in `spec.input_artifacts` order.
    pub inputs: Vec<PathBuf>,
    /// The worker's artifact directory: inputs are opened beneath it, never through a link.
    pub artifacts_root: PathBuf,
    /// Secret files: each host file mounted read-only at its container path.
    pub secret_files: Vec<(PathBuf, String)>,
}

/// Why a running task must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The run was cancelled.
    Cancelled,
    /// The worker lost its lease (another worker may run the task now).
    LeaseLost,
    /// The worker is shutting down.
    Shutdown,
    /// The attempt ran past its timeout.
    Timeout,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    /// Killed by the kernel for exceeding its memory limit.
    pub oom_killed: bool,
    /// Stopped on request (see [`StopReason`]).
    pub stopped: Option<StopReason>,
    /// Stopped by the runtime itself, and why (over its disk limit, say).
    pub evicted: Option<String>,
}

/// Where a runtime sends the container's output, line by line. It holds a bounded number of
/// lines: a container that writes faster than its log is shipped waits on its pipe (as with
/// Docker's default, blocking log mode), so no log is ever held in memory without bound.
#[derive(Clone)]
pub struct LogSink(pub(crate) mpsc::Sender<(Stream, String)>);

impl LogSink {
    /// Lines waiting at most before the container is held up.
    pub const CAPACITY: usize = 256;

    /// A sink and the receiving end its lines arrive at.
    pub fn channel() -> (LogSink, mpsc::Receiver<(Stream, String)>) {
        let (tx, rx) = mpsc::channel(Self::CAPACITY);
        (LogSink(tx), rx)
    }

    /// Hands a line on, waiting while the shipper is behind. A closed receiver drops it.
    pub async fn line(&self, stream: Stream, line: impl Into<String>) {
        let _ = self.0.send((stream, line.into())).await;
    }
}

/// A container that has started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Started {
    /// Its address on its run's network (a bridged container's).
    pub address: Option<std::net::Ipv4Addr>,
}

/// What the runtime is handed besides the request.
pub struct Io {
    pub logs: LogSink,
    /// Fire once the container's process has started.
    pub started: oneshot::Sender<Started>,
    /// Becomes `Some` when the task must stop; the runtime kills every process of the container.
    pub stop: watch::Receiver<Option<StopReason>>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Failed(String),
}

pub trait ContainerRuntime: Send + Sync + 'static {
    /// A short name for logs (`fake`, `embedded`, `runc`…).
    fn name(&self) -> &'static str;

    /// Makes the task's image ready (pulling it when missing) and returns its resolved digest.
    fn prepare<'a>(
        &'a self,
        spec: &'a TaskSpec,
    ) -> BoxFuture<'a, Result<Option<String>, RuntimeError>>;

    /// Runs the task's container to its end (or until stopped) and cleans up after it.
    fn run(&self, req: RunRequest, io: Io) -> BoxFuture<'_, Result<Exit, RuntimeError>>;

    /// How many GPUs it can hand to containers (the server gives GPU steps only to workers
    /// with enough free).
    fn gpus(&self) -> u32 {
        0
    }
}
