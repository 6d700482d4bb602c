//! The columns of the store's tables as both backends read and bind them (`FromRow` structs
//! over any database's rows, binders over any database's query builder), and how each row is
//! checked into the store's types: a column that does not
//! decode, or a value out of range, makes the row corrupt, an error naming it, never a panic. The
//! table layouts are the same in SQLite and PostgreSQL; only the SQL that writes them differs.

use crate::store::{
    CacheEntry, IdempotencyKey, LogCursor, Result, RunRow, SecretRow, StoreError, TaskRow,
    TaskStatic, TokenRow, WorkerRow, WriteBatch,
};
use sluice_engine::task::InputArtifact;
use sluice_engine::{ArtifactRecord, LeaseInfo, Task, TaskOutputs};
use sluice_sdk::api::{
    format_ts, LogLine, PipelineSummary, PipelineVersion, RunState, Stream, TaskState,
};
use sluice_spec::state::EndReason;
use sqlx::{FromRow, Row};
use std::sync::Arc;

/// A task's columns, in the order both backends write them.
pub(crate) const TASK_COLS: &str = "run_id, idx, name, image, depends_on, state, attempt, lease_id, worker_id, cancel_requested, inputs, spec, outputs, exit_code, error, ready_at, started_at, finished_at, image_digest, retry_at, attempts, condition_false, cached_from, display_name, shape, address";

/// A task's row as kept, its columns in [`TASK_COLS`]' order.
pub(crate) struct TaskValues {
    run_id: String,
    idx: i64,
    name: String,
    image: String,
    depends_on: String,
    state: &'static str,
    attempt: i64,
    lease_id: Option<String>,
    worker_id: Option<String>,
    cancel_requested: bool,
    inputs: Option<String>,
    spec: Option<String>,
    outputs: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
    ready_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    image_digest: Option<String>,
    retry_at: Option<i64>,
    attempts: Option<String>,
    condition_false: bool,
    cached_from: Option<String>,
    display_name: Option<String>,
    shape: String,
    address: Option<String>,
}

impl From<&TaskRow> for TaskValues {
    fn from(row: &TaskRow) -> TaskValues {
        let t = &row.task;
        TaskValues {
            run_id: row.run_id.to_string(),
            idx: row.idx as i64,
            name: row.stat.name.clone(),
            image: row.stat.image.clone(),
            depends_on: row.stat.depends_on_json.clone(),
            state: t.state.as_str(),
            attempt: t.attempt as i64,
            lease_id: t.lease.as_ref().map(|l| l.id.to_string()),
            worker_id: t.lease.as_ref().map(|l| l.worker.to_string()),
            cancel_requested: t.cancel_requested,
            inputs: (!t.inputs.is_empty()).then(|| json(&t.inputs)),
            spec: t.spec.as_ref().map(json),
            outputs: (!t.outputs.params.is_empty()).then(|| json(&t.outputs.params)),
            exit_code: t.exit_code,
            error: t.error.clone(),
            ready_at: t.ready_at,
            started_at: t.started_at,
            finished_at: t.finished_at,
            image_digest: t.image_digest.clone(),
            retry_at: t.retry_at,
            attempts: (!t.attempts.is_empty()).then(|| json(&t.attempts)),
            condition_false: t.condition_false,
            cached_from: t.cached_from.as_ref().map(|r| r.to_string()),
            display_name: row.stat.display_name.clone(),
            shape: row.stat.shape_json.clone(),
            address: t.address.clone(),
        }
    }
}

/// Binds a task's row, its columns in [`TASK_COLS`]' order, in either backend's SQL.
pub(crate) fn push_task<'q, 'a, DB>(
    mut b: sqlx::query_builder::Separated<'q, 'a, DB, &'static str>,
    row: &'a TaskRow,
) where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i32>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let v = TaskValues::from(row);
    b.push_bind(v.run_id)
        .push_bind(v.idx)
        .push_bind(v.name)
        .push_bind(v.image)
        .push_bind(v.depends_on)
        .push_bind(v.state)
        .push_bind(v.attempt)
        .push_bind(v.lease_id)
        .push_bind(v.worker_id)
        .push_bind(v.cancel_requested)
        .push_bind(v.inputs)
        .push_bind(v.spec)
        .push_bind(v.outputs)
        .push_bind(v.exit_code)
        .push_bind(v.error)
        .push_bind(v.ready_at)
        .push_bind(v.started_at)
        .push_bind(v.finished_at)
        .push_bind(v.image_digest)
        .push_bind(v.retry_at)
        .push_bind(v.attempts)
        .push_bind(v.condition_false)
        .push_bind(v.cached_from)
        .push_bind(v.display_name)
        .push_bind(v.shape)
        .push_bind(v.address);
}

/// Tasks' rows by column, in [`TASK_COLS`]' order: PostgreSQL takes each column as one array
/// (`UNNEST`), so that a batch of any size is one prepared statement.
#[derive(Default)]
pub(crate) struct TaskColumns {
    pub run_id: Vec<String>,
    pub idx: Vec<i64>,
    pub name: Vec<String>,
    pub image: Vec<String>,
    pub depends_on: Vec<String>,
    pub state: Vec<&'static str>,
    pub attempt: Vec<i64>,
    pub lease_id: Vec<Option<String>>,
    pub worker_id: Vec<Option<String>>,
    pub cancel_requested: Vec<bool>,
    pub inputs: Vec<Option<String>>,
    pub spec: Vec<Option<String>>,
    pub outputs: Vec<Option<String>>,
    pub exit_code: Vec<Option<i32>>,
    pub error: Vec<Option<String>>,
    pub ready_at: Vec<Option<i64>>,
    pub started_at: Vec<Option<i64>>,
    pub finished_at: Vec<Option<i64>>,
    pub image_digest: Vec<Option<String>>,
    pub retry_at: Vec<Option<i64>>,
    pub attempts: Vec<Option<String>>,
    pub condition_false: Vec<bool>,
    pub cached_from: Vec<Option<String>>,
    pub display_name: Vec<Option<String>>,
    pub shape: Vec<String>,
    pub address: Vec<Option<String>>,
}

impl TaskColumns {
    pub(crate) fn push(&mut self, row: &TaskRow) {
        let v = TaskValues::from(row);
        self.run_id.push(v.run_id);
        self.idx.push(v.idx);
        self.name.push(v.name);
        self.image.push(v.image);
        self.depends_on.push(v.depends_on);
        self.state.push(v.state);
        self.attempt.push(v.attempt);
        self.lease_id.push(v.lease_id);
        self.worker_id.push(v.worker_id);
        self.cancel_requested.push(v.cancel_requested);
        self.inputs.push(v.inputs);
        self.spec.push(v.spec);
        self.outputs.push(v.outputs);
        self.exit_code.push(v.exit_code);
        self.error.push(v.error);
        self.ready_at.push(v.ready_at);
        self.started_at.push(v.started_at);
        self.finished_at.push(v.finished_at);
        self.image_digest.push(v.image_digest);
        self.retry_at.push(v.retry_at);
        self.attempts.push(v.attempts);
        self.condition_false.push(v.condition_false);
        self.cached_from.push(v.cached_from);
        self.display_name.push(v.display_name);
        self.shape.push(v.shape);
        self.address.push(v.address);
    }
}

/// Binds a new run's task in its short row, [`FRESH_TASK_COLS`]: everything else is unset yet.
pub(crate) fn push_fresh_task<'q, 'a, DB>(
    mut b: sqlx::query_builder::Separated<'q, 'a, DB, &'static str>,
    r: &'a TaskRow,
) where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    b.push_bind(&*r.run_id)
        .push_bind(r.idx as i64)
        .push_bind(r.stat.name.as_str())
        .push_bind(r.stat.image.as_str())
        .push_bind(r.stat.depends_on_json.as_str())
        .push_bind("pending")
        .push_bind(r.stat.display_name.as_deref())
        .push_bind(r.stat.shape_json.as_str());
}

/// A new run's task's columns, as [`push_fresh_task`] binds them.
pub(crate) const FRESH_TASK_COLS: &str =
    "run_id, idx, name, image, depends_on, state, display_name, shape";

/// An artifact a task made: its run, its task's index, the record, when it was made.
pub(crate) type ArtifactOf<'a> = (&'a str, usize, &'a ArtifactRecord, i64);

/// The artifacts the succeeded tasks of a batch made.
pub(crate) fn artifacts_made(batch: &WriteBatch) -> Vec<ArtifactOf<'_>> {
    batch
        .tasks
        .iter()
        .filter(|r| r.task.state == TaskState::Succeeded)
        .flat_map(|r| {
            r.task
                .outputs
                .artifacts
                .iter()
                .map(move |a| (&*r.run_id, r.idx, a, r.task.finished_at.unwrap_or(0)))
        })
        .collect()
}

/// Binds an artifact's row, [`ARTIFACT_COLS`].
pub(crate) fn push_artifact<'q, 'a, DB>(
    mut b: sqlx::query_builder::Separated<'q, 'a, DB, &'static str>,
    (run, idx, a, at): &ArtifactOf<'a>,
) where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    b.push_bind(*run)
        .push_bind(*idx as i64)
        .push_bind(a.name.as_str())
        .push_bind(a.uri.as_str())
        .push_bind(a.size as i64)
        .push_bind(a.digest.as_str())
        .push_bind(a.metadata.as_ref().map(|m| m.to_string()))
        .push_bind(a.kind.as_deref())
        .push_bind(*at);
}

pub(crate) const ARTIFACT_COLS: &str =
    "run_id, task_idx, name, uri, size, digest, metadata, kind, created_at";

/// What each task of a batch that ran to its end read (lineage): its run, its index, the input.
pub(crate) fn inputs_read(batch: &WriteBatch) -> Vec<(&str, usize, &InputArtifact)> {
    batch
        .tasks
        .iter()
        .filter(|r| matches!(r.task.state, TaskState::Succeeded | TaskState::Failed))
        .flat_map(|r| {
            r.task
                .spec
                .iter()
                .flat_map(|s| &s.input_artifacts)
                .map(move |a| (&*r.run_id, r.idx, a))
        })
        .collect()
}

/// Whether a batch's task is a new run's, still pending (written in its short row).
pub(crate) fn is_fresh(batch: &WriteBatch, r: &TaskRow) -> bool {
    r.task.state == TaskState::Pending
        && r.task.attempt == 0
        && batch.new_runs.iter().any(|n| *n.id == *r.run_id)
}

/// A row read through its `FromRow` struct; a column that does not decode makes the row corrupt.
pub(crate) fn read<'r, R: Row, T: FromRow<'r, R>>(r: &'r R) -> Result<T> {
    T::from_row(r).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A column of a row, or why it does not read as `T`: a corrupt row is an error, never a panic.
pub(crate) fn col<'r, R: Row, T>(r: &'r R, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
{
    r.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column `{name}`: {e}")))
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    s: Option<String>,
    what: &str,
) -> Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))))
        .transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunCols {
    id: String,
    name: String,
    pipeline_name: String,
    pipeline_version_id: Option<String>,
    pipeline_version: Option<i64>,
    digest: String,
    params: String,
    state: String,
    error: Option<String>,
    end_reason: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
    cache: bool,
    outputs: Option<String>,
    labels: Option<String>,
    archived: bool,
    metrics: Option<String>,
    experiment_id: String,
    schedule_id: Option<String>,
    scheduled_at: Option<i64>,
    inputs: Option<String>,
}

pub(crate) fn run_row<'r, R: Row>(r: &'r R) -> Result<RunRow>
where
    RunCols: FromRow<'r, R>,
{
    let c: RunCols = read(r)?;
    Ok(RunRow {
        id: c.id,
        name: c.name,
        pipeline_name: c.pipeline_name,
        pipeline_version_id: c.pipeline_version_id,
        pipeline_version: c
            .pipeline_version
            .map(|v| u32::try_from(v).map_err(|_| corrupt("run pipeline version", v)))
            .transpose()?,
        digest: c.digest,
        params: from_json(Some(c.params), "run params")?.unwrap_or_default(),
        state: RunState::parse(&c.state).ok_or_else(|| corrupt("run state", &c.state))?,
        error: c.error,
        end_reason: c
            .end_reason
            .map(|e| EndReason::parse(&e).ok_or_else(|| corrupt("run end reason", &e)))
            .transpose()?,
        created_at: c.created_at,
        finished_at: c.finished_at,
        cache: c.cache,
        outputs: from_json(c.outputs, "run outputs")?.unwrap_or_default(),
        inputs: from_json(c.inputs, "run inputs")?.unwrap_or_default(),
        labels: from_json(c.labels, "run labels")?.unwrap_or_default(),
        archived: c.archived,
        metrics: from_json(c.metrics, "run metrics")?.unwrap_or_default(),
        steps: None,
        experiment_id: c.experiment_id,
        schedule_id: c.schedule_id,
        scheduled_at: c.scheduled_at,
    })
}

pub(crate) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} `{value}`"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskCols {
    run_id: String,
    idx: i64,
    name: String,
    image: String,
    depends_on: String,
    state: String,
    attempt: i64,
    lease_id: Option<String>,
    worker_id: Option<String>,
    cancel_requested: bool,
    inputs: Option<String>,
    spec: Option<String>,
    outputs: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
    ready_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    image_digest: Option<String>,
    retry_at: Option<i64>,
    attempts: Option<String>,
    condition_false: bool,
    cached_from: Option<String>,
    display_name: Option<String>,
    shape: Option<String>,
    address: Option<String>,
}

pub(crate) fn task_row<'r, R: Row>(r: &'r R) -> Result<TaskRow>
where
    TaskCols: FromRow<'r, R>,
{
    let c: TaskCols = read(r)?;
    Ok(TaskRow {
        run_id: Arc::from(c.run_id),
        idx: usize::try_from(c.idx).map_err(|_| corrupt("task index", c.idx))?,
        stat: Arc::new(TaskStatic::new(
            c.name,
            c.image,
            from_json(Some(c.depends_on), "task dependencies")?.unwrap_or_default(),
            c.display_name,
            from_json(c.shape, "task shape")?.unwrap_or_default(),
        )),
        task: Task {
            state: TaskState::parse(&c.state).ok_or_else(|| corrupt("task state", &c.state))?,
            attempt: u32::try_from(c.attempt).map_err(|_| corrupt("task attempt", c.attempt))?,
            lease: c.lease_id.map(|id| LeaseInfo {
                id: id.into(),
                worker: c.worker_id.unwrap_or_default().into(),
                expires_at: 0,
            }),
            cancel_requested: c.cancel_requested,
            inputs: from_json(c.inputs, "task inputs")?.unwrap_or_default(),
            spec: from_json(c.spec, "task spec")?,
            image_digest: c.image_digest,
            outputs: TaskOutputs {
                params: from_json(c.outputs, "task outputs")?.unwrap_or_default(),
                artifacts: Vec::new(),
            },
            exit_code: c.exit_code,
            error: c.error,
            ready_at: c.ready_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            retry_at: c.retry_at,
            attempts: from_json(c.attempts, "task attempts")?.unwrap_or_default(),
            condition_false: c.condition_false,
            cached_from: c.cached_from.map(Into::into),
            address: c.address,
        },
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct CacheCols {
    key: String,
    image_digest: String,
    run_id: String,
    task: String,
    outputs: String,
    artifacts: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyCols {
    key: String,
    request: String,
    run_id: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ArtifactCols {
    task_idx: i64,
    name: String,
    uri: String,
    size: i64,
    digest: String,
    metadata: Option<String>,
    kind: Option<String>,
}

impl CacheCols {
    pub(crate) fn entry(self) -> Result<CacheEntry> {
        Ok(CacheEntry {
            key: self.key,
            image_digest: self.image_digest,
            run_id: self.run_id,
            task: self.task,
            outputs: from_json(Some(self.outputs), "cached outputs")?.unwrap_or_default(),
            artifacts: from_json(Some(self.artifacts), "cached artifacts")?.unwrap_or_default(),
            created_at: self.created_at,
        })
    }
}

impl From<IdempotencyCols> for IdempotencyKey {
    fn from(c: IdempotencyCols) -> IdempotencyKey {
        IdempotencyKey {
            key: c.key,
            request: c.request,
            run_id: c.run_id,
            created_at: c.created_at,
        }
    }
}

/// Puts each artifact row on its task (rows of tasks that are not there are passed over).
pub(crate) fn attach_artifacts(tasks: &mut [TaskRow], arts: Vec<ArtifactCols>) -> Result<()> {
    for a in arts {
        if let Some(t) = usize::try_from(a.task_idx)
            .ok()
            .and_then(|i| tasks.get_mut(i))
        {
            t.task.outputs.artifacts.push(ArtifactRecord {
                name: a.name,
                uri: a.uri,
                size: u64::try_from(a.size).map_err(|_| corrupt("artifact size", a.size))?,
                digest: sluice_spec::digest::normalize(a.digest),
                metadata: match a.metadata {
                    Some(m) => Some(
                        serde_json::from_str(&m)
                            .map_err(|_| corrupt("artifact metadata", a.task_idx))?,
                    ),
                    None => None,
                },
                kind: a.kind,
            });
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
pub(crate) struct LogCols {
    #[sqlx(try_from = "i64")]
    attempt: u32,
    #[sqlx(try_from = "i64")]
    seq: u64,
    ts: i64,
    stream: String,
    line: String,
}

impl LogCols {
    pub(crate) fn line(self, task_name: &str) -> Result<(LogCursor, LogLine)> {
        let stream = match self.stream.as_str() {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            other => return Err(StoreError::Corrupt(format!("log stream `{other}`"))),
        };
        Ok((
            LogCursor::of(self.attempt, self.seq),
            LogLine {
                task: task_name.to_string(),
                attempt: self.attempt,
                seq: self.seq,
                ts: format_ts(self.ts),
                stream,
                line: self.line,
            },
        ))
    }
}

/// How a log line's stream is kept.
pub(crate) fn stream_name(s: Stream) -> &'static str {
    match s {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PipelineCols {
    id: String,
    name: String,
    description: Option<String>,
    #[sqlx(try_from = "i64")]
    latest: u32,
    created_at: i64,
    updated_at: i64,
}

impl From<PipelineCols> for PipelineSummary {
    fn from(c: PipelineCols) -> PipelineSummary {
        PipelineSummary {
            id: c.id,
            name: c.name,
            description: c.description,
            latest_version: c.latest,
            created_at: format_ts(c.created_at),
            updated_at: format_ts(c.updated_at),
        }
    }
}

/// A pipeline with its latest version number; `WHERE` or `ORDER BY` follows.
pub(crate) const PIPELINE_SELECT: &str = "SELECT p.*, (SELECT MAX(version) FROM pipeline_versions v WHERE v.pipeline_id = p.id) AS latest FROM pipelines p";

#[derive(sqlx::FromRow)]
pub(crate) struct VersionCols {
    id: String,
    pipeline_id: String,
    name: String,
    #[sqlx(try_from = "i64")]
    version: u32,
    digest: String,
    created_at: i64,
    yaml: String,
}

impl From<VersionCols> for PipelineVersion {
    fn from(c: VersionCols) -> PipelineVersion {
        PipelineVersion {
            id: c.id,
            pipeline_id: c.pipeline_id,
            pipeline_name: c.name,
            version: c.version,
            digest: c.digest,
            created_at: format_ts(c.created_at),
            yaml: c.yaml,
            created: false,
        }
    }
}

/// A pipeline version with its pipeline's name and its file; `WHERE` follows.
pub(crate) const VERSION_SELECT: &str = "SELECT v.id, v.pipeline_id, p.name, v.version, v.digest, v.created_at, s.yaml \
     FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id JOIN sources s ON s.digest = v.digest";

#[derive(sqlx::FromRow)]
pub(crate) struct TokenCols {
    id: String,
    name: String,
    role: String,
    pipelines: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TokenCols {
    pub(crate) fn row(self) -> Result<TokenRow> {
        Ok(TokenRow {
            pipelines: from_json(self.pipelines, "column `pipelines`")?,
            id: self.id,
            name: self.name,
            role: self.role,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

pub(crate) const TOKEN_COLS: &str = "id, name, role, pipelines, created_at, revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SecretCols {
    name: String,
    #[sqlx(try_from = "i64")]
    version: u32,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    updated_at: i64,
}

impl From<SecretCols> for SecretRow {
    fn from(c: SecretCols) -> SecretRow {
        SecretRow {
            name: c.name,
            version: c.version,
            nonce: c.nonce,
            ciphertext: c.ciphertext,
            updated_at: c.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkerCols {
    id: String,
    name: String,
    #[sqlx(try_from = "i64")]
    capacity: u32,
    registered_at: i64,
    last_seen_at: i64,
    credential_hash: Option<String>,
    artifact_root: Option<String>,
    labels: Option<String>,
    #[sqlx(try_from = "i64")]
    gpus: u32,
}

impl TryFrom<WorkerCols> for WorkerRow {
    type Error = StoreError;

    fn try_from(c: WorkerCols) -> Result<WorkerRow> {
        Ok(WorkerRow {
            id: c.id,
            name: c.name,
            capacity: c.capacity,
            registered_at: c.registered_at,
            last_seen_at: c.last_seen_at,
            credential_hash: c.credential_hash,
            artifact_root: c.artifact_root,
            labels: from_json(c.labels, "worker labels")?.unwrap_or_default(),
            gpus: c.gpus,
        })
    }
}

/// Every state a run has not ended in, as kept.
pub(crate) const ACTIVE_STATES: &str = "('running', 'cancelling')";

/// What a lineage query reads, for both directions.
pub(crate) fn artifact_use<'r, R: Row>(r: &'r R) -> Result<sluice_sdk::api::ArtifactUse>
where
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
{
    let state: String = col(r, "state")?;
    let size: Option<i64> = col(r, "size")?;
    Ok(sluice_sdk::api::ArtifactUse {
        run: col(r, "run_id")?,
        run_name: col(r, "run_name")?,
        pipeline: col(r, "pipeline_name")?,
        task: col(r, "task")?,
        name: col(r, "name")?,
        state: TaskState::parse(&state).ok_or_else(|| corrupt("task state", &state))?,
        at: col::<R, Option<i64>>(r, "at")?.map(format_ts),
        digest: col::<R, Option<String>>(r, "digest")?.map(sluice_spec::digest::normalize),
        size: size
            .map(|n| u64::try_from(n).map_err(|_| corrupt("artifact size", n)))
            .transpose()?,
    })
}
