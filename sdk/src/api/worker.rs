//! The worker protocol's wire types: registration, leases and what a task is to run, heartbeats
//! and reports.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorker {
    pub name: String,
    pub capacity: u32,
    /// The directory on the worker's host its tasks' output artifacts are written beneath: the
    /// server accepts a task's artifacts only inside that task's own area there.
    #[serde(default)]
    pub artifact_root: Option<String>,
    /// What it offers to steps' `nodeSelector` (`gpu=a100`, `zone=b`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// How many GPUs it has: steps asking for GPUs go only where enough are free.
    #[serde(default)]
    pub gpus: u32,
}

impl RegisterWorker {
    /// A worker with no labels and no GPUs.
    pub fn new(name: impl Into<String>, capacity: u32, artifact_root: Option<&str>) -> Self {
        RegisterWorker {
            name: name.into(),
            capacity,
            artifact_root: artifact_root.map(str::to_string),
            labels: Labels::new(),
            gpus: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRegistration {
    pub id: WorkerId,
    /// The worker's own credential: it leases, renews and reports with it, and nothing else
    /// can act for it. Shown once.
    pub credential: String,
    /// A lease not extended by a heartbeat within this time is taken back.
    pub lease_ttl_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Where the server keeps artifacts, when that is an object store (`s3://bucket/prefix?…`,
    /// never with credentials): the worker uploads its tasks' outputs there and fetches inputs
    /// made on other hosts, with credentials of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_store: Option<String>,
}

/// A registered worker as it acts: its id and its own credential.
#[derive(Debug, Clone, Default)]
pub struct WorkerIdentity {
    pub id: WorkerId,
    pub credential: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub name: String,
    pub capacity: u32,
    pub registered_at: String,
    pub last_seen_at: String,
    pub active_leases: u32,
    /// Whether it was heard from within the lease time (a worker that stopped is kept in the
    /// list, not alive).
    #[serde(default)]
    pub alive: bool,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub gpus: u32,
    /// The GPUs its current tasks asked for.
    #[serde(default)]
    pub gpus_in_use: u32,
    /// The tasks it runs now.
    #[serde(default)]
    pub tasks: Vec<WorkerTask>,
}

/// A task a worker runs now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerTask {
    pub run_id: String,
    pub run_name: String,
    pub task: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// At most this many tasks.
    pub max: u32,
    /// Wait up to this long for a task when none is ready (long poll).
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub lease_id: LeaseId,
    pub run_id: RunId,
    pub run_name: String,
    pub task: TaskId,
    pub attempt: u32,
    pub spec: TaskSpec,
    /// A stored result for this very task (same inputs), valid if the worker's image has this
    /// digest and the artifacts are still there: the worker reports it instead of running.
    #[serde(default)]
    pub cached: Option<CachedResult>,
    /// The values of the secrets the task uses, for this worker alone.
    #[serde(default, skip_serializing_if = "SecretValues::is_empty")]
    pub secret_values: SecretValues,
}

impl SecretValues {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedResult {
    pub run_id: RunId,
    pub task: TaskId,
    pub image_digest: String,
    pub outputs: BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub leases: Vec<Lease>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ResourceRequest {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// What the step may write: its writable layer and its outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    pub gpu: u32,
}

/// A task as the worker must run it: every placeholder already resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TaskSpec {
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub command: Option<Vec<String>>,
    /// Replaces the image's cmd when set.
    pub args: Option<Vec<String>>,
    pub env: Vec<EnvVar>,
    pub working_dir: Option<String>,
    /// Written to `/sluice/script` before the container starts.
    pub script: Option<String>,
    pub resources: ResourceRequest,
    pub hostname: String,
    pub input_artifacts: Vec<InputArtifact>,
    pub output_params: Vec<OutputParam>,
    pub output_artifacts: Vec<OutputArtifact>,
    /// Which network the container gets; unset, the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// The task serves (a daemon step): its worker reports when it is up, and stops it when
    /// told to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<sluice_spec::Daemon>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Kill the container and fail the attempt after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run without the default seccomp profile (the worker must allow it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seccomp_unconfined: bool,
    /// Secrets the task receives; their values come in the lease ([`Lease::secret_values`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretUse>,
    /// A task of a Kubeflow pipeline: the worker launches it as Kubeflow's launcher does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kfp: Option<sluice_spec::kfp::Task>,
}

impl TaskSpec {
    /// Whether the task writes output parameters (a Kubeflow task always may: its executor
    /// output goes beside them).
    pub fn writes_params(&self) -> bool {
        !self.output_params.is_empty() || self.kfp.is_some()
    }
}

/// A secret a task receives: as environment variable `env`, or as a read-only file at `path`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretUse {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// Secret values by name, as a lease carries them to the one worker that runs the task. Never
/// printed: its `Debug` shows the names only.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("{k}=***")))
            .finish()
    }
}

/// A volume mounted into the task: a host path or a named volume on the worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMount {
    pub name: Option<String>,
    pub host_path: Option<String>,
    pub path: String,
    pub writable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputArtifact {
    pub name: String,
    /// Where the step sees it (read-only).
    pub path: String,
    /// Where the producer left it.
    pub uri: String,
    pub producer: String,
    /// What its producer said of it (a Kubeflow artifact's metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Its content's digest and size as its producer recorded them: a copy fetched from an
    /// object store is checked against them (none for records that predate them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputParam {
    pub name: String,
    pub ty: ParamType,
    /// The file the step writes the value to.
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputArtifact {
    pub name: String,
    pub path: String,
    /// What it holds, as the step declares it (`dataset`, `system.Metrics`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub leases: Vec<LeaseId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HeartbeatResponse {
    /// Leases the worker no longer holds (expired and taken back, or unknown): stop those tasks.
    pub lost: Vec<LeaseId>,
    /// Leases whose run was cancelled: kill those tasks and report them cancelled.
    pub cancel: Vec<LeaseId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// Output parameters as the step wrote them (text; the server checks them against their types).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    #[serde(default)]
    pub artifacts: Vec<ArtifactRecord>,
    /// The result was reused from this run's same task (no container ran).
    #[serde(default)]
    pub cached_from: Option<RunId>,
}

impl TaskResult {
    /// The attempt failed before or without an exit code of its own.
    pub fn failed(error: impl Into<String>) -> TaskResult {
        TaskResult::ended(Outcome::Failed, None, error)
    }

    /// The attempt ended with `outcome` and no outputs (a failure, a cancel, a timeout).
    pub fn ended(outcome: Outcome, exit_code: Option<i32>, error: impl Into<String>) -> TaskResult {
        TaskResult {
            outcome,
            exit_code,
            error: Some(error.into()),
            outputs: BTreeMap::new(),
            artifacts: Vec::new(),
            cached_from: None,
        }
    }

    /// The step exited 0 and left these outputs.
    pub fn succeeded(
        exit_code: i32,
        outputs: BTreeMap<String, String>,
        artifacts: Vec<ArtifactRecord>,
    ) -> TaskResult {
        TaskResult {
            outcome: Outcome::Succeeded,
            exit_code: Some(exit_code),
            error: None,
            outputs,
            artifacts,
            cached_from: None,
        }
    }

    /// A kept result of the same task, reused: no container ran.
    pub fn reused(c: &CachedResult) -> TaskResult {
        TaskResult {
            outcome: Outcome::Succeeded,
            exit_code: None,
            error: None,
            outputs: c.outputs.clone(),
            artifacts: c.artifacts.clone(),
            cached_from: Some(c.run_id.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewLogLine {
    /// Numbered by the worker per lease from 1, so a resent batch is stored once.
    pub seq: u64,
    pub ts_ms: i64,
    pub stream: Stream,
    pub line: String,
}

/// What a worker tells the server; batched, and safe to resend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ReportEvent {
    Started {
        lease_id: LeaseId,
        ts_ms: i64,
        /// The resolved digest of the image the container runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_digest: Option<String>,
    },
    /// A daemon task is up: the steps after it may start, and reach it at `address` (an IPv4
    /// address on its run's network).
    Serving {
        lease_id: LeaseId,
        ts_ms: i64,
        address: String,
    },
    Log {
        lease_id: LeaseId,
        lines: Vec<NewLogLine>,
    },
    Finished {
        lease_id: LeaseId,
        ts_ms: i64,
        result: TaskResult,
    },
}

impl ReportEvent {
    pub fn lease_id(&self) -> &LeaseId {
        match self {
            ReportEvent::Started { lease_id, .. }
            | ReportEvent::Serving { lease_id, .. }
            | ReportEvent::Log { lease_id, .. }
            | ReportEvent::Finished { lease_id, .. } => lease_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub events: Vec<ReportEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ReportResponse {
    /// Leases whose events were refused because the worker no longer holds them.
    pub lost: Vec<LeaseId>,
}
