//! What the store keeps, in the store's own words: rows of runs, tasks, logs and workers, and the
//! one batch every scheduler step writes. No SQL here: each backend maps these to its tables.

use sluice_engine::ArtifactRecord;
use sluice_engine::Task;
use sluice_sdk::api::{
    format_ts, Labels, Params, RunState, RunSummary, StepCount, Stream, TaskShape,
};
use sluice_spec::state::EndReason;
use std::sync::Arc;

/// The experiment runs belong to when they name no other (Kubeflow's `Default`).
pub const DEFAULT_EXPERIMENT: &str = "00000000-0000-7000-8000-000000000001";

/// A run's own row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub name: String,
    pub pipeline_name: String,
    pub pipeline_version_id: Option<String>,
    pub pipeline_version: Option<u32>,
    pub digest: String,
    pub params: Params,
    pub state: RunState,
    pub error: Option<String>,
    /// Why it ended or is ending; `None` while it runs.
    pub end_reason: Option<EndReason>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// Whether the run reuses cached results.
    pub cache: bool,
    /// The pipeline's own outputs, once the run has ended.
    pub outputs: RunOutputs,
    /// The input artifacts it was given (the pipeline's `artifacts:`).
    pub inputs: Vec<ArtifactRecord>,
    pub labels: Labels,
    pub archived: bool,
    /// Scalar metrics the run ended with (see `engine::Run::metrics`).
    pub metrics: Params,
    /// Steps ended of steps planned, where the read counted them (the run list does).
    pub steps: Option<StepCount>,
    /// The experiment it belongs to (`Default`'s unless it named another).
    pub experiment_id: String,
    /// The schedule that fired it and the due time it fired for.
    pub schedule_id: Option<String>,
    pub scheduled_at: Option<i64>,
}

/// A run's own outputs (a Kubeflow pipeline's): parameters by value, artifacts as the records
/// of the steps that made them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunOutputs {
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub artifacts: Vec<ArtifactRecord>,
}

impl RunOutputs {
    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.artifacts.is_empty()
    }
}

/// A task's result kept for reuse (see `engine::Run::cache_key`).
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub key: String,
    pub image_digest: String,
    pub run_id: String,
    pub task: String,
    /// Output parameters as text, as a worker reports them.
    pub outputs: std::collections::BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactRecord>,
    pub created_at: i64,
}

impl RunRow {
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            pipeline: self.pipeline_name.clone(),
            pipeline_version: self.pipeline_version,
            state: self.state,
            end_reason: self.end_reason,
            created_at: format_ts(self.created_at),
            finished_at: self.finished_at.map(format_ts),
            duration_ms: self
                .finished_at
                .map(|f| (f - self.created_at).max(0) as u64),
            params: self.params.clone(),
            labels: self.labels.clone(),
            archived: self.archived,
            metrics: self.metrics.clone(),
            steps: self.steps,
            experiment_id: self.experiment_id.clone(),
            schedule_id: self.schedule_id.clone(),
            scheduled_at: self.scheduled_at.map(format_ts),
        }
    }
}

/// What never changes about a task once planned; shared between writes.
#[derive(Debug, Clone)]
pub struct TaskStatic {
    pub name: String,
    pub image: String,
    pub depends_on: Vec<String>,
    /// `depends_on` as JSON, made once (a task's row is written many times).
    pub depends_on_json: String,
    /// The name it is shown by, where that differs from its name.
    pub display_name: Option<String>,
    pub shape: TaskShape,
    /// `shape` as JSON, made once.
    pub shape_json: String,
}

impl TaskStatic {
    pub fn new(
        name: String,
        image: String,
        depends_on: Vec<String>,
        display_name: Option<String>,
        shape: TaskShape,
    ) -> TaskStatic {
        let depends_on_json = serde_json::to_string(&depends_on).unwrap_or_else(|_| "[]".into());
        let shape_json = serde_json::to_string(&shape).unwrap_or_else(|_| "{}".into());
        TaskStatic {
            name,
            image,
            depends_on,
            depends_on_json,
            display_name,
            shape,
            shape_json,
        }
    }
}

/// A task's row: the engine's view of it plus what the API shows without re-planning.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub run_id: Arc<str>,
    pub idx: usize,
    pub stat: Arc<TaskStatic>,
    pub task: Task,
}

/// A run as stored: its row and its tasks in plan order.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub row: RunRow,
    pub tasks: Vec<TaskRow>,
}

/// Everything one scheduler step changed, written in one transaction.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub sources: Vec<(String, String)>,
    pub new_runs: Vec<RunRow>,
    pub runs: Vec<RunRow>,
    pub tasks: Vec<TaskRow>,
    pub logs: Vec<LogRow>,
    pub workers_seen: Vec<(String, i64)>,
    pub cache: Vec<CacheEntry>,
    pub idempotency: Vec<IdempotencyKey>,
    /// Schedules that fired in this step: each one's new last and next due times.
    pub fired: Vec<Fired>,
}

/// A schedule's firing, written with the run it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub schedule_id: String,
    /// The due time it fired for.
    pub at: i64,
    /// Its next due time, if it has one.
    pub next_at: Option<i64>,
}

/// A run creation's idempotency key: the request it was given with (its digest) and the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request: String,
    pub run_id: String,
    pub created_at: i64,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
            && self.new_runs.is_empty()
            && self.runs.is_empty()
            && self.tasks.is_empty()
            && self.logs.is_empty()
            && self.workers_seen.is_empty()
            && self.cache.is_empty()
            && self.idempotency.is_empty()
            && self.fired.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub pipeline: Option<String>,
    /// Runs whose name contains this text.
    pub search: Option<String>,
    /// Runs older than this run id (the previous page's last), in the default order.
    pub before: Option<String>,
    /// Runs made at or after this time, and before that one (milliseconds).
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    /// Runs with this label set to this value.
    pub label: Option<(String, String)>,
    /// `Some(false)`: runs not archived (the list's default); `Some(true)`: archived ones only.
    pub archived: Option<bool>,
    /// Runs of this experiment (its id).
    pub experiment: Option<String>,
    /// Runs this schedule fired (its id).
    pub schedule: Option<String>,
    /// Further conditions, all of which a run meets (Kubeflow's filters).
    pub predicates: Vec<Predicate>,
    pub sort: RunSort,
    /// Newest (or largest) first.
    pub descending: bool,
    /// Rows skipped, in an order other than the default.
    pub offset: u64,
    pub limit: u32,
}

/// A condition on one of a run's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub field: RunField,
    pub cmp: Cmp,
    pub value: Operand,
}

/// A run's column a condition can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunField {
    Id,
    Name,
    State,
    CreatedAt,
    FinishedAt,
    Experiment,
    PipelineVersion,
    Schedule,
    Pipeline,
    Archived,
}

impl RunField {
    pub fn column(self) -> &'static str {
        match self {
            RunField::Id => "id",
            RunField::Name => "name",
            RunField::State => "state",
            RunField::CreatedAt => "created_at",
            RunField::FinishedAt => "finished_at",
            RunField::Experiment => "experiment_id",
            RunField::PipelineVersion => "pipeline_version_id",
            RunField::Schedule => "schedule_id",
            RunField::Pipeline => "pipeline_name",
            RunField::Archived => "archived",
        }
    }
}

/// How a column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// One of a list.
    In,
    /// Text that holds the value (case-insensitive).
    Contains,
}

/// What a column is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Text(String),
    Int(i64),
    Bool(bool),
    Texts(Vec<String>),
    Ints(Vec<i64>),
}

/// What the run list is ordered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunSort {
    /// When the run was made (its id orders the same).
    #[default]
    Created,
    Name,
    State,
    Pipeline,
    Duration,
    /// A parameter's value (runs without it last).
    Param(String),
    /// A metric's value (runs without it last).
    Metric(String),
}

impl RunSort {
    /// `created_at`, `name`, `state`, `pipeline`, `duration`, `param:NAME` or `metric:NAME`
    /// (a name of 1 to 200 characters without `"` or control characters).
    pub fn parse(s: &str) -> Option<RunSort> {
        let named = |n: &str| {
            (!n.is_empty() && n.len() <= 200 && !n.chars().any(|c| c == '"' || c.is_control()))
                .then(|| n.to_string())
        };
        if let Some(n) = s.strip_prefix("param:") {
            return named(n).map(RunSort::Param);
        }
        if let Some(n) = s.strip_prefix("metric:") {
            return named(n).map(RunSort::Metric);
        }
        Some(match s {
            "created_at" | "created" => RunSort::Created,
            "name" => RunSort::Name,
            "state" => RunSort::State,
            "pipeline" => RunSort::Pipeline,
            "duration" | "duration_ms" => RunSort::Duration,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct LogRow {
    pub run_id: String,
    pub task_idx: usize,
    pub attempt: u32,
    pub seq: u64,
    pub ts: i64,
    pub stream: Stream,
    pub line: String,
}

/// A position in a task's log across attempts: `(attempt << 32) | seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogCursor(pub u64);

impl LogCursor {
    pub fn of(attempt: u32, seq: u64) -> LogCursor {
        LogCursor(((attempt as u64) << 32) | (seq & 0xffff_ffff))
    }
    /// Its attempt and its line number within the attempt.
    pub fn parts(self) -> (i64, i64) {
        ((self.0 >> 32) as i64, (self.0 & 0xffff_ffff) as i64)
    }
}

#[derive(Debug, Clone)]
pub struct WorkerRow {
    pub id: String,
    pub name: String,
    pub capacity: u32,
    pub registered_at: i64,
    pub last_seen_at: i64,
    /// The SHA-256 (hex) of the worker's own credential; none for a worker registered before
    /// workers had one (it cannot act until it registers again).
    pub credential_hash: Option<String>,
    /// The directory its tasks' output artifacts are written beneath, on its host.
    pub artifact_root: Option<String>,
    /// What it offers to steps' `nodeSelector`.
    pub labels: sluice_sdk::api::Labels,
    /// How many GPUs it has.
    pub gpus: u32,
}

/// What registering a worker keeps.
#[derive(Debug, Clone)]
pub struct NewWorker<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub capacity: u32,
    pub credential_hash: &'a str,
    pub artifact_root: Option<&'a str>,
    pub labels: &'a sluice_sdk::api::Labels,
    pub gpus: u32,
}

/// An API token: never its secret, which is kept only as a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    /// `admin`, `submit`, `read` or `worker`.
    pub role: String,
    /// For a `submit` token: the only pipelines it may upload and run.
    pub pipelines: Option<Vec<String>>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A secret as kept: its value encrypted.
#[derive(Debug, Clone)]
pub struct SecretRow {
    pub name: String,
    pub version: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub updated_at: i64,
}
