//! The PostgreSQL store (`--database postgres://…`): the same tables as SQLite's, written in
//! PostgreSQL's SQL. Every write is one transaction on the pool (PostgreSQL has many writers, so
//! several servers can share one database); rows are read through the shared `cols` structs.
//! The schema lives in `migrations/postgres/`.

mod access;
mod lock;
mod runs;
mod throwaway;

pub use lock::SchedulerLock;
pub use throwaway::Postgres as ThrowawayPostgres;

use super::cols::{json, read, WorkerCols};
use super::{NewWorker, Result, Store, StoreError, WorkerRow, WorkerStore};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST/DB`, or a unix
    /// socket's directory as `?host=/run/postgresql`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)?.application_name("sluice");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The pool, for what only PostgreSQL does (the scheduler's lock).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection to write on (PostgreSQL has many writers: one of the pool's).
    pub(crate) async fn writer(&self) -> Result<PgWriter> {
        Ok(PgWriter(self.pool.acquire().await?))
    }
}

/// A connection of the pool, written on.
pub(crate) struct PgWriter(sqlx::pool::PoolConnection<sqlx::Postgres>);

impl PgWriter {
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.0
    }

    pub(crate) fn done(self) {}
}

super::catalog_sql::impl_catalog!(PgStore, super::catalog_sql::numbered);

#[async_trait]
impl Store for PgStore {
    /// PostgreSQL keeps its own house (autovacuum): nothing to do.
    async fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn backup(&self, _dest: &Path) -> Result<()> {
        Err(StoreError::Unsupported(
            "a PostgreSQL database is backed up with PostgreSQL's own tools: `pg_dump --format=custom DBNAME > sluice.dump` (restore with `pg_restore`), or continuous archiving; keep the data directory's secrets.key with it".into(),
        ))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl WorkerStore for PgStore {
    async fn register_worker(&self, n: &NewWorker<'_>, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, name, capacity, registered_at, last_seen_at, \
             credential_hash, artifact_root, labels, gpus) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)",
        )
        .bind(n.id)
        .bind(n.name)
        .bind(n.capacity as i64)
        .bind(now)
        .bind(n.credential_hash)
        .bind(n.artifact_root)
        .bind((!n.labels.is_empty()).then(|| json(n.labels)))
        .bind(n.gpus as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_worker(&self, id: &str) -> Result<Option<WorkerRow>> {
        let row = sqlx::query("SELECT * FROM workers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| read::<_, WorkerCols>(r).and_then(WorkerRow::try_from))
            .transpose()
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query("SELECT * FROM workers ORDER BY last_seen_at DESC LIMIT 1000")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| read::<_, WorkerCols>(r).and_then(WorkerRow::try_from))
            .collect()
    }
}
