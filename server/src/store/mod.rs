//! The store: where runs, tasks, logs, pipelines and workers are kept, behind the [`Store`] trait.
//! [`SqliteStore`] (SQLite in WAL mode under the data directory, the embedded default) and
//! [`PgStore`] (PostgreSQL, for a team and for several servers over one database) implement it;
//! every SQL statement lives in them, and both read rows through the same column structs
//! (`cols`). The schemas live in `migrations/` (SQLite) and `migrations/postgres/`.
//!
//! Writes go through one path, [`RunStore::apply`]: the scheduler's step, one transaction; the
//! other writes are registrations, pipeline versions and housekeeping.

pub mod catalog;
mod catalog_sql;
mod cols;
mod postgres;
mod rows;
mod sqlite;

use async_trait::async_trait;
pub use catalog::{CatalogStore, ExperimentRow, Holds, HookRow, ScheduleRow};
pub use postgres::{PgStore, SchedulerLock, ThrowawayPostgres};
pub use rows::*;
use sluice_sdk::api::{ArtifactUse, LogLine, PipelineSummary, PipelineVersion};
use sluice_spec::state::RunState;
pub use sqlite::SqliteStore;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// What was asked names more than one thing.
    #[error("{0}")]
    Ambiguous(String),
    /// What was asked is not something this store does.
    #[error("{0}")]
    Unsupported(String),
}

impl StoreError {
    /// The database could not be written because its disk is full (SQLite's `SQLITE_FULL`).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(d)) => d.code().as_deref() == Some("13"),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Runs and their tasks: the scheduler's writes and the reads behind the API.
#[async_trait]
pub trait RunStore {
    /// Writes everything one scheduler step changed, in one transaction.
    async fn apply(&self, batch: &WriteBatch) -> Result<()>;
    async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRow>>;
    async fn get_run(&self, id: &str) -> Result<Option<StoredRun>>;
    /// The ids of the runs that have not ended, for the scheduler to take up again after a
    /// restart (each is read with [`RunStore::get_run`], so that one that cannot be read stops
    /// only itself).
    async fn active_run_ids(&self) -> Result<Vec<String>>;
    /// How many runs are kept in each state (states with none left out).
    async fn count_runs_by_state(&self) -> Result<Vec<(RunState, u64)>>;
    /// Fails a run that cannot be taken up again (its rows do not read back), with the reason.
    async fn fail_run(&self, id: &str, error: &str, at: i64) -> Result<()>;
    /// The newest cached result under `key` made at or after `since` (milliseconds), for any
    /// image digest or for `digest` only.
    async fn cached(
        &self,
        key: &str,
        digest: Option<&str>,
        since: i64,
    ) -> Result<Option<CacheEntry>>;
    /// What an idempotency key was used for, if it was.
    async fn idempotency_key(&self, key: &str) -> Result<Option<IdempotencyKey>>;
    /// Forgets the idempotency keys made before `before`. Returns how many.
    async fn forget_idempotency_keys(&self, before: i64) -> Result<u64>;
    /// Archives a run (or brings it back). Returns whether there was such a run.
    async fn set_archived(&self, id: &str, archived: bool) -> Result<bool>;
    /// Forgets an ended run: its row, tasks, logs, artifact records and cached results.
    /// Returns whether there was such a run.
    async fn delete_run(&self, id: &str) -> Result<bool>;
    /// The tasks that recorded the artifact at `uri` as an output (oldest first) and those
    /// that read it (newest first, at most `limit`).
    async fn lineage(&self, uri: &str, limit: u32) -> Result<(Vec<ArtifactUse>, Vec<ArtifactUse>)>;
}

/// Task logs: appended through [`RunStore::apply`], read back in pages.
#[async_trait]
pub trait LogStore {
    /// Up to `limit` lines of a task's log after `after`, in order.
    async fn read_logs(
        &self,
        run_id: &str,
        task_idx: usize,
        task_name: &str,
        after: LogCursor,
        limit: u32,
    ) -> Result<Vec<(LogCursor, LogLine)>>;
}

/// Pipelines, their immutable versions, and the content-addressed pipeline files behind them.
#[async_trait]
pub trait PipelineStore {
    /// Stores a pipeline file as the next version of the pipeline it names, unless the very same
    /// bytes are already a version of it, in which case that version is returned.
    async fn put_pipeline_version(
        &self,
        name: &str,
        description: Option<&str>,
        yaml: &str,
        digest: &str,
        now: i64,
    ) -> Result<PipelineVersion>;
    async fn list_pipelines(&self) -> Result<Vec<PipelineSummary>>;
    async fn get_pipeline(&self, name_or_id: &str) -> Result<Option<PipelineSummary>>;
    async fn list_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>>;
    /// A version of a pipeline, or its latest with `None`.
    async fn get_version(
        &self,
        pipeline_id: &str,
        version: Option<u32>,
    ) -> Result<Option<PipelineVersion>>;
    /// A pipeline file by its digest.
    async fn source(&self, digest: &str) -> Result<Option<String>>;
}

/// Worker registrations.
#[async_trait]
pub trait WorkerStore {
    async fn register_worker(&self, w: &NewWorker<'_>, now: i64) -> Result<()>;
    async fn get_worker(&self, id: &str) -> Result<Option<WorkerRow>>;
    async fn list_workers(&self) -> Result<Vec<WorkerRow>>;
}

/// Who may do what: API tokens (kept as hashes) and secrets (kept encrypted).
#[async_trait]
pub trait AccessStore {
    /// Keeps a new token under the hash of its secret.
    async fn create_token(&self, t: &TokenRow, hash: &str) -> Result<()>;
    /// The token whose secret hashes to `hash`, unless it was revoked.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;
    /// Every token, revoked ones included, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRow>>;
    /// Revokes the token with this id (or, if only one has it, this name). Returns the tokens
    /// revoked: none when no live token has that id or name.
    async fn revoke_token(&self, id_or_name: &str, now: i64) -> Result<Vec<TokenRow>>;
    /// How many tokens are live (not revoked).
    async fn live_tokens(&self) -> Result<u64>;
    /// Keeps `name`'s new encrypted value as its next version (1 for a new secret), made by
    /// `seal` from that version number (the version is sealed with the value). Returns the version.
    async fn put_secret(
        &self,
        name: &str,
        seal: &(dyn Fn(u32) -> (Vec<u8>, Vec<u8>) + Send + Sync),
        now: i64,
    ) -> Result<u32>;
    async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>>;
    /// Every secret's name, version and time of change (never a value).
    async fn list_secrets(&self) -> Result<Vec<(String, u32, i64)>>;
    /// Forgets a secret. Returns whether there was one.
    async fn delete_secret(&self, name: &str) -> Result<bool>;
}

/// Everything sluice keeps.
#[async_trait]
pub trait Store:
    RunStore
    + LogStore
    + PipelineStore
    + WorkerStore
    + AccessStore
    + CatalogStore
    + Send
    + Sync
    + 'static
{
    /// Housekeeping a backend does in the background (SQLite: copying its write-ahead log back
    /// into the database file), so that commits on the hot path never pay for it.
    async fn checkpoint(&self) -> Result<()>;
    /// Answers when the database does (a readiness probe).
    async fn ping(&self) -> Result<()>;
    /// Writes a consistent copy of the database to `dest` (a new file) while it is in use.
    async fn backup(&self, dest: &std::path::Path) -> Result<()>;
    async fn close(&self);
}

/// The store a server runs on, shared.
pub type DynStore = Arc<dyn Store>;

/// Whether `database` names a PostgreSQL database.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// Opens the store `database` names: a `postgres://` (or `postgresql://`) URL, or, with none,
/// SQLite's `sluice.db` under `data_dir` (the embedded default).
pub async fn open(database: Option<&str>, data_dir: &std::path::Path) -> Result<DynStore> {
    match database {
        None => Ok(Arc::new(SqliteStore::open(data_dir).await?)),
        Some(url) if is_postgres(url) => Ok(Arc::new(PgStore::open(url).await?)),
        Some(url) => {
            let scheme = url.split_once("://").map_or(url, |(s, _)| s);
            Err(StoreError::Unsupported(format!(
                "--database `{scheme}`: sluice keeps its state in SQLite (the default, no --database) or PostgreSQL (postgres://USER@HOST/DB)"
            )))
        }
    }
}

/// Checkpoints every `every`, forever; spawn it once per server.
pub async fn checkpoint_loop(store: DynStore, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "database checkpoint failed");
        }
    }
}
