//! Wire types of the REST API under `/api/v1`, shared by the server, the worker and the CLI.

use serde::{Deserialize, Serialize};
use sluice_spec::{NetworkMode, ParamType, Value};
use std::collections::BTreeMap;
use std::fmt;

pub use sluice_spec::ids::{LeaseId, RunId, TaskId, WorkerId};
pub use sluice_spec::state::{EndReason, Outcome, Params, RunState, TaskState};

/// Every API error: a stable machine-readable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra structure, such as the list of diagnostics for an invalid pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// The stable, machine-readable code of every API error: one list the server answers with and
/// every client matches on. A code this build does not know (from a newer server) is kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request body is malformed or breaks a rule (400).
    InvalidBody,
    /// A query parameter is malformed (400).
    InvalidQuery,
    /// The pipeline does not parse, validate or plan; `details` lists the diagnostics (400, 422).
    InvalidPipeline,
    /// A run's parameters do not match the pipeline's (400).
    InvalidParams,
    /// A pipeline version is malformed (400).
    InvalidVersion,
    /// The `Idempotency-Key` header is malformed (400).
    InvalidIdempotencyKey,
    /// The `Idempotency-Key` was used before for another request (422).
    IdempotencyKeyReused,
    /// No valid credential (401).
    Unauthorized,
    /// The credential is valid but its role (or its pipelines) does not allow this (403).
    Forbidden,
    /// The request's `Host` is not a name this server answers to (DNS rebinding) (403).
    HostNotAllowed,
    /// A browser request from another origin, sent with the login cookie (403).
    CrossOrigin,
    /// The pipeline breaks the server's admission policy; `details` lists each rule and step (403).
    PolicyDenied,
    /// What was named matches more than one thing (409).
    Ambiguous,
    /// No such pipeline, run, task, artifact or endpoint (404).
    NotFound,
    /// The worker is not registered (any more): it registers again (404).
    UnknownWorker,
    /// The endpoint does not take this method (405).
    MethodNotAllowed,
    /// The run has not ended yet (409).
    RunActive,
    /// The run has already ended (409).
    RunFinished,
    /// The request body is over the server's limit (413).
    BodyTooLarge,
    /// The request's path or query is too long (414).
    UriTooLong,
    /// The artifact is a link, or leads out of its directory: never served (403).
    ArtifactRefused,
    /// The artifact is where the server cannot read it (404).
    ArtifactUnreachable,
    /// The server's disk is full; nothing was written (507).
    StorageFull,
    /// Several servers share one database and none schedules right now (one is taking over):
    /// send it again shortly (503).
    SchedulerUnavailable,
    /// The server is taking as many uploads at once as it takes: send it again shortly (503).
    Busy,
    /// The request's body stopped arriving for longer than the server waits (408).
    Timeout,
    /// The server failed (500).
    /// What was asked clashes with what is kept (a name taken, a thing still in use).
    Conflict,
    /// An endpoint sluice does not serve.
    Unimplemented,
    Internal,
    /// Any other HTTP error, named by its status.
    HttpError,
    /// A code this build does not know.
    Other(String),
}

impl ErrorCode {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidPipeline => "invalid_pipeline",
            ErrorCode::InvalidParams => "invalid_params",
            ErrorCode::InvalidVersion => "invalid_version",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::HostNotAllowed => "host_not_allowed",
            ErrorCode::CrossOrigin => "cross_origin",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::Ambiguous => "ambiguous",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownWorker => "unknown_worker",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RunActive => "run_active",
            ErrorCode::RunFinished => "run_finished",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::ArtifactRefused => "artifact_refused",
            ErrorCode::ArtifactUnreachable => "artifact_unreachable",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::SchedulerUnavailable => "scheduler_unavailable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unimplemented => "unimplemented",
            ErrorCode::Internal => "internal",
            ErrorCode::HttpError => "http_error",
            ErrorCode::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "invalid_body" => ErrorCode::InvalidBody,
            "invalid_query" => ErrorCode::InvalidQuery,
            "invalid_pipeline" => ErrorCode::InvalidPipeline,
            "invalid_params" => ErrorCode::InvalidParams,
            "invalid_version" => ErrorCode::InvalidVersion,
            "invalid_idempotency_key" => ErrorCode::InvalidIdempotencyKey,
            "idempotency_key_reused" => ErrorCode::IdempotencyKeyReused,
            "unauthorized" => ErrorCode::Unauthorized,
            "forbidden" => ErrorCode::Forbidden,
            "host_not_allowed" => ErrorCode::HostNotAllowed,
            "cross_origin" => ErrorCode::CrossOrigin,
            "policy_denied" => ErrorCode::PolicyDenied,
            "ambiguous" => ErrorCode::Ambiguous,
            "not_found" => ErrorCode::NotFound,
            "unknown_worker" => ErrorCode::UnknownWorker,
            "method_not_allowed" => ErrorCode::MethodNotAllowed,
            "run_active" => ErrorCode::RunActive,
            "run_finished" => ErrorCode::RunFinished,
            "body_too_large" => ErrorCode::BodyTooLarge,
            "uri_too_long" => ErrorCode::UriTooLong,
            "artifact_refused" => ErrorCode::ArtifactRefused,
            "artifact_unreachable" => ErrorCode::ArtifactUnreachable,
            "storage_full" => ErrorCode::StorageFull,
            "busy" => ErrorCode::Busy,
            "timeout" => ErrorCode::Timeout,
            "scheduler_unavailable" => ErrorCode::SchedulerUnavailable,
            "conflict" => ErrorCode::Conflict,
            "unimplemented" => ErrorCode::Unimplemented,
            "internal" => ErrorCode::Internal,
            "http_error" => ErrorCode::HttpError,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod error_code_tests {
    use super::*;

    #[test]
    fn codes_are_text_on_the_wire_and_unknown_ones_are_kept() {
        for c in [
            ErrorCode::UnknownWorker,
            ErrorCode::StorageFull,
            ErrorCode::SchedulerUnavailable,
            ErrorCode::Busy,
            ErrorCode::Timeout,
            ErrorCode::InvalidBody,
        ] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }
        let newer: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(newer, ErrorCode::Other("quota_exceeded".into()));
        assert_eq!(newer.to_string(), "quota_exceeded");
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
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
    /// The pipeline file (and version) another run ran, by the run's id: a clone of that run,
    /// with these parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<String>,
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
    /// Labels to find the run by (`team=vision`); see [`check_labels`].
    #[serde(default)]
    pub labels: Labels,
    /// The experiment it belongs to, by name or id (`Default` if none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// The pipeline's input artifacts, by name: the digest of an upload (`blake3:HEX`, see
    /// [`UploadInfo`]). A clone given none keeps those of the run it clones.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub inputs: std::collections::BTreeMap<String, String>,
}

/// A file or directory uploaded to be a run's input artifact (`PUT /uploads/{digest}`), kept
/// by its content's digest: a file's BLAKE3, a directory's over its sorted tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadInfo {
    pub digest: String,
    /// Bytes of content (a directory's files together).
    pub size: u64,
    /// `file` or `directory`.
    pub kind: String,
}

/// How a directory is sent to `PUT /uploads/{digest}`: as a tar stream of its tree.
pub const UPLOAD_TAR: &str = "application/x-tar";

/// A run's labels: names to values.
pub type Labels = std::collections::BTreeMap<String, String>;

/// Most labels a run has.
pub use sluice_spec::labels::MAX_LABELS;

/// Checks labels as a caller gave them: at most [`MAX_LABELS`], each as
/// [`sluice_spec::labels::label_problem`] allows. The error names the label at fault.
pub fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels, not {}", labels.len()));
    }
    match labels
        .iter()
        .find_map(|(k, v)| sluice_spec::labels::label_problem(k, v))
    {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub id: String,
    pub name: String,
    pub pipeline: String,
    pub pipeline_version: Option<u32>,
    pub state: RunState,
    /// Why it ended or is ending (`tasks`, `cancelled`, `timed_out`, `unreadable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The parameters it was started with.
    #[serde(default)]
    pub params: Params,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Archived runs are left out of the run list unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// Scalar metrics the run ended with (`STEP.NAME` to a number): its steps' numeric output
    /// parameters and their Kubeflow metrics artifacts' scalars.
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub metrics: Params,
    /// The experiment it belongs to.
    #[serde(default)]
    pub experiment_id: String,
    /// The schedule that fired it, and the due time it fired for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    /// Its steps (tasks that run a container): how many there are, and how many have ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<StepCount>,
}

/// How far a run has come: steps ended of steps planned.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepCount {
    pub done: u32,
    pub total: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub digest: String,
    pub error: Option<String>,
    /// The pipeline's own outputs once the run has ended (a Kubeflow pipeline's outputs):
    /// parameters by value.
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub outputs: Params,
    /// Its output artifacts, as the records of the steps that made them (named as the pipeline
    /// names them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_artifacts: Vec<ArtifactRecord>,
    /// The input artifacts it was given (the pipeline's `artifacts:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ArtifactRecord>,
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
    /// Its content's digest, `blake3:HEX` (`sha256:HEX` for what was kept before).
    #[serde(
        alias = "sha256",
        deserialize_with = "sluice_spec::digest::deserialize"
    )]
    pub digest: String,
    /// What the step said of it (a Kubeflow artifact's metadata: metrics, schema, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// What it holds, as its step declared it (`dataset`, `system.Metrics`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    /// The name it is shown by, where that differs from its name (a Kubeflow task's display name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
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
    /// What kind of task it is, the loop item it runs with, its condition.
    #[serde(flatten)]
    pub shape: TaskShape,
    /// What the container runs, with every placeholder filled in (once it was resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A script step's script, resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The artifacts it reads: each with the step that made it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_artifacts: Vec<InputArtifactInfo>,
    /// A daemon step: it serves (`daemon`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub daemon: bool,
    /// Where a daemon step serves (or served): its address on its run's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether a daemon step serves now (the steps after it may reach it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serving: bool,
    /// The labels its worker must have (`nodeSelector`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub node_selector: Labels,
    /// Why a ready task is not running yet, when no worker that is up can take it now (none
    /// has its labels, none has enough GPUs, or those that do are busy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// What kind of task a task is, and what decides whether and how it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskShape {
    /// `step` (runs a container), `loop` (a `forEach`: it gathers its iterations), `group` (a
    /// sub-DAG: a group, a nested pipeline, a condition's branch) or `iteration` (one copy of a
    /// loop over a group).
    #[serde(default = "step_kind")]
    pub kind: String,
    /// The loop item it runs with (of the innermost loop around it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
    /// Its condition (`when`), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// An exit handler: it runs once the rest of its group (or run) has ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exit_handler: bool,
}

fn step_kind() -> String {
    "step".into()
}

/// A step (a task kept before tasks had kinds reads as one).
impl Default for TaskShape {
    fn default() -> Self {
        TaskShape {
            kind: step_kind(),
            item: None,
            when: None,
            exit_handler: false,
        }
    }
}

/// An artifact a task reads, and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputArtifactInfo {
    pub name: String,
    /// The task that made it.
    pub producer: String,
    pub uri: String,
}

/// Where an artifact came from and where it went, across runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lineage {
    pub uri: String,
    /// The tasks that recorded it as an output, oldest first: the first made it, the others
    /// reused it from the cache.
    pub producers: Vec<ArtifactUse>,
    /// The tasks that read it, newest first.
    pub consumers: Vec<ArtifactUse>,
}

/// One task's use of an artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArtifactUse {
    pub run: String,
    pub run_name: String,
    pub pipeline: String,
    pub task: String,
    /// The name the task gives it.
    pub name: String,
    pub state: TaskState,
    pub at: Option<String>,
    /// The artifact's digest, where this use made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptInfo {
    pub attempt: u32,
    /// The worker it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
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

// ---- access: logging in, tokens, secrets ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub token: String,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Whoami {
    /// The token's name (`anonymous` where the server requires none).
    pub name: String,
    pub role: String,
    /// Whether the server requires a credential.
    pub auth_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// `admin`, `submit`, `read` or `worker`.
    pub role: String,
    /// For a `submit` token: the only pipelines it may upload and run.
    #[serde(default)]
    pub pipelines: Option<Vec<String>>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub pipelines: Option<Vec<String>>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A token just made: its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    pub value: String,
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    pub version: u32,
    pub updated_at: String,
}

mod worker;
pub use worker::*;

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
mod catalog;
pub use catalog::*;
