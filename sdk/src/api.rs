//! Wire types of the REST API under `/api/v1`, shared by the server, the worker and the CLI.

use crate::spec::{ParamType, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub type Params = BTreeMap<String, Value>;

/// Every API error: a stable machine-readable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// Extra structure, such as the list of diagnostics for an invalid pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelling,
    Cancelled,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelling => "cancelling",
            RunState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "cancelling" => RunState::Cancelling,
            "cancelled" => RunState::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Ready,
    Leased,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

impl TaskState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled | TaskState::Skipped
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Ready => "ready",
            TaskState::Leased => "leased",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "pending" => TaskState::Pending,
            "ready" => TaskState::Ready,
            "leased" => TaskState::Leased,
            "running" => TaskState::Running,
            "succeeded" => TaskState::Succeeded,
            "failed" => TaskState::Failed,
            "cancelled" => TaskState::Cancelled,
            "skipped" => TaskState::Skipped,
            _ => return None,
        })
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

// ---- pipelines ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadPipeline {
    pub yaml: String,
    /// Shown in diagnostics; defaults to `pipeline.yaml`.
    #[serde(default)]
    pub file_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineSummary {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub latest_version: u32,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineVersion {
    pub id: String,
    pub pipeline_id: String,
    pub pipeline_name: String,
    pub version: u32,
    pub digest: String,
    pub created_at: String,
    /// The file exactly as uploaded.
    pub yaml: String,
    /// Whether this upload created the version (false when identical YAML was already stored).
    #[serde(default)]
    pub created: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineList {
    pub pipelines: Vec<PipelineSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionList {
    pub versions: Vec<PipelineVersion>,
}

// ---- runs ----

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// A stored pipeline, by name or id; with `version`, that version, else the latest.
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub version: Option<u32>,
    /// An inline pipeline file, instead of a stored one.
    #[serde(default)]
    pub yaml: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    /// Display name of the run; defaults to the pipeline's name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub params: Params,
    /// `false` runs every step afresh, ignoring cached results (they are still recorded).
    #[serde(default)]
    pub cache: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub id: String,
    pub name: String,
    pub pipeline: String,
    pub pipeline_version: Option<u32>,
    pub state: RunState,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub params: Params,
    pub digest: String,
    pub error: Option<String>,
    pub tasks: Vec<TaskInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArtifactRecord {
    pub name: String,
    /// Where the artifact's bytes are, as the worker that produced it can reach them.
    pub uri: String,
    pub size: u64,
    pub sha256: String,
}

/// Whether a cached result's artifacts are all still where it recorded them (`exists` asks the
/// filesystem): a result whose artifact was deleted is not reused, and its step runs again. The
/// scheduler and the worker both decide by this.
pub fn artifacts_kept(
    artifacts: &[ArtifactRecord],
    exists: impl Fn(&std::path::Path) -> bool,
) -> bool {
    artifacts.iter().all(|a| {
        a.uri
            .strip_prefix("file://")
            .is_some_and(|p| exists(std::path::Path::new(p)))
    })
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn a_cached_result_is_reusable_only_while_every_artifact_is_kept() {
        let rec = |uri: &str| ArtifactRecord {
            name: "m".into(),
            uri: uri.into(),
            size: 1,
            sha256: "x".into(),
        };
        let on_disk = |p: &std::path::Path| p.starts_with("/kept");
        let cases: &[(&[&str], bool)] = &[
            (&[], true),
            (&["file:///kept/a", "file:///kept/b"], true),
            // One deleted: the step runs again.
            (&["file:///kept/a", "file:///gone/b"], false),
            // Not a local file: never assumed present.
            (&["s3://bucket/a"], false),
        ];
        for (uris, want) in cases {
            let records: Vec<ArtifactRecord> = uris.iter().map(|u| rec(u)).collect();
            assert_eq!(artifacts_kept(&records, on_disk), *want, "{uris:?}");
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub state: TaskState,
    pub attempt: u32,
    pub depends_on: Vec<String>,
    pub image: String,
    /// The digest the image resolved to when the task started.
    pub image_digest: Option<String>,
    /// What the task asked for (once it was resolved).
    #[serde(default)]
    pub resources: Option<ResourceRequest>,
    pub worker: Option<String>,
    pub ready_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub inputs: Params,
    pub outputs: Params,
    pub artifacts: Vec<ArtifactRecord>,
    /// When a failed task runs again (it is pending until then).
    #[serde(default)]
    pub retry_at: Option<String>,
    /// How each attempt that ended did, oldest first.
    #[serde(default)]
    pub attempts: Vec<AttemptInfo>,
    /// Served from the cache: the run whose result was reused.
    #[serde(default)]
    pub cached_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
}

// ---- logs and events ----

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    pub task: String,
    pub attempt: u32,
    pub seq: u64,
    pub ts: String,
    pub stream: Stream,
    pub line: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// Pass as `after` to read on.
    pub next_after: u64,
    /// True when the task has finished and every line has been read.
    pub complete: bool,
}

/// What the run's event stream (`GET /runs/{id}/events`) carries, one per server-sent event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RunEvent {
    Task {
        task: String,
        state: TaskState,
        attempt: u32,
        exit_code: Option<i32>,
        error: Option<String>,
        ts: String,
    },
    Log(LogLine),
    Run {
        state: RunState,
        error: Option<String>,
        ts: String,
    },
}

// ---- workers ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorker {
    pub name: String,
    pub capacity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRegistration {
    pub id: String,
    /// A lease not extended by a heartbeat within this time is taken back.
    pub lease_ttl_ms: u64,
    pub heartbeat_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub name: String,
    pub capacity: u32,
    pub registered_at: String,
    pub last_seen_at: String,
    pub active_leases: u32,
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
    pub lease_id: String,
    pub run_id: String,
    pub run_name: String,
    pub task: String,
    pub attempt: u32,
    pub spec: TaskSpec,
    /// A stored result for this very task (same inputs), valid if the worker's image has this
    /// digest and the artifacts are still there: the worker reports it instead of running.
    #[serde(default)]
    pub cached: Option<CachedResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedResult {
    pub run_id: String,
    pub task: String,
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
    /// Share the host's network namespace (loopback only otherwise).
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Kill the container and fail the attempt after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run without the default seccomp profile (the worker must allow it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seccomp_unconfined: bool,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub leases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HeartbeatResponse {
    /// Leases the worker no longer holds (expired and taken back, or unknown): stop those tasks.
    pub lost: Vec<String>,
    /// Leases whose run was cancelled: kill those tasks and report them cancelled.
    pub cancel: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
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
    pub cached_from: Option<String>,
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
        lease_id: String,
        ts_ms: i64,
        /// The resolved digest of the image the container runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_digest: Option<String>,
    },
    Log {
        lease_id: String,
        lines: Vec<NewLogLine>,
    },
    Finished {
        lease_id: String,
        ts_ms: i64,
        result: TaskResult,
    },
}

impl ReportEvent {
    pub fn lease_id(&self) -> &str {
        match self {
            ReportEvent::Started { lease_id, .. }
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
    pub lost: Vec<String>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `2026-11-28T04:49:25.123Z` from milliseconds since the epoch.
pub fn format_ts(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
