//! The SQLite store: every SQL statement sluice runs against SQLite, in WAL mode under the data
//! directory. Writes are serialised (SQLite has one writer); reads run alongside on a pool. Rows
//! are read through `FromRow` structs of their columns, then checked into the store's types: a
//! corrupt row is an error naming its column, never a panic.

mod access;
mod browse;
mod logs;
mod pipelines;
mod runs;
mod workers;

use super::{Result, Store, StoreError};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    writer: Arc<Writer>,
}

/// The one connection writes go through (SQLite has one writer). A connection whose write
/// failed (on a full disk, say) may still hold its transaction, and with it the database's write
/// lock: it is closed, and the next write opens a fresh one. So the store recovers by itself
/// once the cause is gone.
struct Writer {
    opts: SqliteConnectOptions,
    conn: tokio::sync::Mutex<Option<sqlx::SqliteConnection>>,
}

/// The writer, held: [`WriteGuard::done`] once the write succeeded, else its connection is
/// closed when the guard goes.
pub(crate) struct WriteGuard<'a> {
    conn: tokio::sync::MutexGuard<'a, Option<sqlx::SqliteConnection>>,
    done: bool,
}

impl WriteGuard<'_> {
    pub(crate) fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.conn.as_mut().expect("the writer is open while held")
    }

    /// The write went through: the connection is kept for the next.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.take();
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `sluice.db` under `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(data_dir.join("sluice.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-32000")
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "20000");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(Writer {
                opts,
                conn: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The writer, opened if it is not (writes are serialised through it).
    pub(crate) async fn writer(&self) -> Result<WriteGuard<'_>> {
        use sqlx::ConnectOptions;
        let mut conn = self.writer.conn.lock().await;
        if conn.is_none() {
            *conn = Some(self.writer.opts.connect().await?);
        }
        Ok(WriteGuard { conn, done: false })
    }
}

super::catalog_sql::impl_catalog!(SqliteStore, super::catalog_sql::unnumbered);

#[async_trait]
impl Store for SqliteStore {
    /// Copies the write-ahead log back into the database file.
    async fn checkpoint(&self) -> Result<()> {
        let mut w = self.writer().await?;
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(w.conn())
            .await?;
        w.done();
        Ok(())
    }

    /// SQLite's `VACUUM INTO`: one read transaction, so writers go on while it copies; the
    /// copy is compacted and has no write-ahead log to carry.
    async fn backup(&self, dest: &Path) -> Result<()> {
        let Some(dest) = dest.to_str() else {
            return Err(StoreError::Unsupported(format!(
                "cannot back up to {}: not a UTF-8 path",
                dest.display()
            )));
        };
        sqlx::query("VACUUM INTO ?")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        if let Some(c) = self.writer.conn.lock().await.take() {
            let _ = sqlx::Connection::close(c).await;
        }
        self.pool.close().await;
    }
}

use super::cols::{col, json, read};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PipelineStore, WorkerStore};

    #[tokio::test]
    async fn a_row_that_does_not_read_back_is_an_error_naming_its_column_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let w1 = crate::store::NewWorker {
            id: "w1",
            name: "one",
            capacity: 4,
            credential_hash: "00",
            artifact_root: None,
            labels: &Default::default(),
            gpus: 0,
        };
        store.register_worker(&w1, 10).await.unwrap();
        let v = store
            .put_pipeline_version("p", None, "name: p\n", "sha256:1", 10)
            .await
            .unwrap();
        let mut w = store.writer().await.unwrap();
        sqlx::query("UPDATE workers SET capacity = 'lots'")
            .execute(w.conn())
            .await
            .unwrap();
        sqlx::query("UPDATE pipeline_versions SET version = -1")
            .execute(w.conn())
            .await
            .unwrap();
        w.done();
        let e = store.get_worker("w1").await.unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("capacity"), "{e}");
        let e = store.list_workers().await.unwrap_err().to_string();
        assert!(e.contains("capacity"), "{e}");
        let e = store
            .get_version(&v.pipeline_id, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("corrupt") && e.contains("version"), "{e}");
    }
}
